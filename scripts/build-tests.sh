#!/usr/bin/env bash
# Everything `make test` runs, built once: the wasm (cargo-leptos, in its own target
# directory) and, side by side with it, every host artefact in one cargo graph: the server,
# the examples the browser tests start and every test binary. Built one after another, the
# server's long chain of crates (leptos -> app -> server) left a core idle for minutes; in
# one graph the test-only crates and the test builds fill that time. cargo-leptos then finds
# the server built and only assembles the site.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo leptos build --split --frontend-only &
front=$!
trap 'kill $front 2>/dev/null || true' EXIT
# The same flag cargo-leptos gives debug builds, so its server build is this one.
export RUSTFLAGS="--cfg erase_components"
cargo test -p server -p confide-core -p app -p confide-bench --features app/ssr --no-run
make --no-print-directory e2e-examples
wait $front
trap - EXIT
unset RUSTFLAGS
cargo leptos build --split
