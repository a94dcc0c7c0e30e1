#!/usr/bin/env bash
# What a first visit downloads (HTML + JS + wasm + CSS, raw and gzip -9) from a release
# build, and the server's cold start (process spawn to the first /healthz 200).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/confide
[ -x "$bin" ] || { echo "build first: cargo leptos build --release" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
start=$(date +%s%N)
CONFIDE_ADDR=127.0.0.1:$port CONFIDE_STORE=memory CONFIDE_CONFIG=/nonexistent CONFIDE_LOG=warn "$bin" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
until curl -sf -o /dev/null "$base/healthz"; do sleep 0.001; done
end=$(date +%s%N)
echo "cold start (spawn to first /healthz 200, incl. curl polling): $(( (end - start) / 1000000 )) ms"

tmp=$(mktemp -d)
curl -s "$base/" -o "$tmp/index.html"
printf '%-28s %10s %10s\n' "file" "raw B" "gzip -9 B"
total_raw=0; total_gz=0
row() {
  local name=$1 file=$2
  local raw gz
  raw=$(wc -c <"$file"); gz=$(gzip -9 -c "$file" | wc -c)
  total_raw=$((total_raw + raw)); total_gz=$((total_gz + gz))
  printf '%-28s %10d %10d\n' "$name" "$raw" "$gz"
}
row "/ (HTML)" "$tmp/index.html"
for asset in /pkg/confide.js /pkg/confide.wasm /pkg/confide.css; do
  curl -s "$base$asset" -o "$tmp/asset"
  row "$asset" "$tmp/asset"
done
printf '%-28s %10d %10d\n' "first page load, total" "$total_raw" "$total_gz"
rm -rf "$tmp"
