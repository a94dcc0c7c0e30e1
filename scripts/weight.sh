#!/usr/bin/env bash
# What a first visit downloads (HTML + JS + wasm + CSS, raw and gzip -9) from a release
# build, and the server's cold start (process spawn to the first /healthz 200).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/confide
[ -x "$bin" ] || { echo "build first: make release" >&2; exit 1; }
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
# raw and gzip -9 of each file, then what the server actually sends a browser that accepts
# brotli (the release build stores compressed copies; pages themselves go uncompressed, see
# SECURITY.md on BREACH).
printf '%-42s %10s %10s %10s\n' "file" "raw B" "gzip -9 B" "sent (br)"
total_raw=0; total_gz=0; total_sent=0
row() {
  local name=$1 file=$2 url=$3
  local raw gz sent
  raw=$(wc -c <"$file"); gz=$(gzip -9 -c "$file" | wc -c)
  sent=$(curl -s -H 'Accept-Encoding: br, gzip' -o /dev/null -w '%{size_download}' "$url")
  total_raw=$((total_raw + raw)); total_gz=$((total_gz + gz)); total_sent=$((total_sent + sent))
  printf '%-42s %10d %10d %10d\n' "$name" "$raw" "$gz" "$sent"
}
row "/ (HTML)" "$tmp/index.html" "$base/"
# The entry script, the modules it imports up front (the split-chunk loader), the main wasm
# and the stylesheet. Chunks of lazily loaded pages are not part of the first load.
curl -s "$base/pkg/confide.js" -o "$tmp/entry.js"
imports=$(grep -oE 'from ?"\./[^"]+\.js"' "$tmp/entry.js" | sed -E 's/.*"\.\/(.*)"/\1/' | sort -u)
for asset in /pkg/confide.js $(for m in $imports; do echo "/pkg/$m"; done) /pkg/confide.wasm /pkg/confide.css; do
  curl -s "$base$asset" -o "$tmp/asset"
  row "$asset" "$tmp/asset" "$base$asset"
done
printf '%-42s %10d %10d %10d\n' "first page load, total" "$total_raw" "$total_gz" "$total_sent"
rm -rf "$tmp"
