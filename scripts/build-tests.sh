#!/usr/bin/env bash
# Everything `make test` runs, built once: the client as it ships (cargo-leptos, release, in
# its own target directory) and, side by side with it, every host artefact in one cargo
# graph: the debug server, the examples the browser tests start and every test binary. Built
# one after another, the server's long chain of crates (leptos -> app -> server) left a core
# idle for minutes; in one graph the test-only crates and the test builds fill that time.
#
# The browser tests run the release client: it is what users get (LTO, `wasm-opt`, the same
# split into chunks), and Chromium runs it far faster than the 11 MB debug module, so the
# suite takes about 2.6 minutes instead of 4.3 for some 40 seconds more building (BENCHMARKS,
# "The browser tests on the release client"). The debug server behind it renders the same
# views from the same source, with the same `--cfg erase_components`.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg erase_components"
cargo leptos build --release --split --frontend-only &
front=$!
trap 'kill $front 2>/dev/null || true' EXIT
# Integration tests make cargo build the package's binaries too: `target/debug/confide` is
# the server the browser tests start.
cargo test -p server -p confide-core -p app -p confide-bench --features app/ssr --no-run
make --no-print-directory e2e-examples
wait $front
trap - EXIT
