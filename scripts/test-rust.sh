#!/usr/bin/env bash
# The Rust tests: one build of every test binary, then three groups side by side. Most of
# the tests' time is waiting (real session lifetimes on every store, servers starting, a
# short soak), not computing, so the groups overlap well on two cores:
# - the server's store tests (`store::`), 16 at once: each waits out expiries in Redis or
#   PostgreSQL, which cannot be faked;
# - the server's HTTP tests, one per core: they start servers and render pages, which is
#   work, and it runs beside the browser tests;
# - the other packages (core, app, bench with its soak smoke test).
# Each group's output goes to a file and is printed whole when all are done, failures last.
#
# With `--with-browser` (`make test`) the browser tests run in the foreground meanwhile, their
# output live: they keep both cores busy, and the Rust groups, mostly asleep, fit in beside
# them instead of taking a minute of their own before them.
set -uo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg erase_components"
cargo test -p server -p confide-core -p app -p confide-bench --features app/ssr --no-run || exit 1

logs=target/test-logs
mkdir -p "$logs"
names=(store http other)
RUST_TEST_THREADS=16 cargo test -p server --features app/ssr --lib store:: >"$logs/store.log" 2>&1 &
pids[0]=$!
cargo test -p server --features app/ssr -- --skip store:: >"$logs/http.log" 2>&1 &
pids[1]=$!
cargo test -p confide-core -p app -p confide-bench --features app/ssr >"$logs/other.log" 2>&1 &
pids[2]=$!

failed=()
if [ "${1:-}" = --with-browser ]; then
  (cd end2end && CI=${CI:-} npx playwright test) || failed+=(browser)
fi
for i in 0 1 2; do
  if wait "${pids[$i]}"; then
    echo "=== ${names[$i]} tests: passed ==="
    grep -E '^\s+Running|^test result' "$logs/${names[$i]}.log" || true
  else
    failed+=("${names[$i]}")
  fi
done
for name in "${failed[@]}"; do
  if [ "$name" = browser ]; then
    echo "=== browser tests: FAILED (above; report in end2end/playwright-report) ==="
  else
    echo "=== $name tests: FAILED ($logs/$name.log) ==="
    cat "$logs/$name.log"
  fi
done
[ ${#failed[@]} -eq 0 ]
