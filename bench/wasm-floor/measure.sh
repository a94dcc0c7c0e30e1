#!/usr/bin/env bash
# The first load of the smallest client of Confide's shape, built as Confide's client is
# (`--cfg erase_components`, the `wasm-release` profile, wasm-bindgen, `wasm-opt -Oz`), in
# three sizes: the framework alone (a counter), with server functions and a resource, and
# with the router too. Prints each file's bytes raw, gzip -9 and brotli (quality 11, as
# cargo-leptos writes it; needs Python's `brotli`, else "-").
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH" RUSTFLAGS="--cfg erase_components"
target=../../target/wasm-floor
for variant in counter:"" data:data shape:router,data; do
  name=${variant%%:*}
  cargo build -q --release --lib --target wasm32-unknown-unknown --target-dir "$target" \
    --no-default-features --features "${variant#*:}"
  out=$target/out-$name
  wasm-bindgen --target web --no-typescript --out-dir "$out" \
    "$target/wasm32-unknown-unknown/release/wasm_floor.wasm"
  wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    "$out/wasm_floor_bg.wasm" -o "$out/floor.wasm"
  for f in floor.wasm wasm_floor.js; do
    printf '%-7s %-14s raw %8d  gzip -9 %7d  brotli %7s\n' "$name" "$f" \
      "$(wc -c <"$out/$f")" "$(gzip -9 -c "$out/$f" | wc -c)" \
      "$(python3 -c 'import brotli,sys; print(len(brotli.compress(open(sys.argv[1],"rb").read(), quality=11)))' "$out/$f" 2>/dev/null || echo -)"
  done
done
