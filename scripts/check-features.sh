#!/usr/bin/env bash
# Fails when a dependency is built with other features for the tests than for the server
# the browser tests run (`cargo leptos build`) or for the examples beside it: each such
# crate, and everything above it, would be compiled twice by `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each package's resolved features, one "name version features" line per package.
tree() { cargo tree "$@" --format '{p} {f}' --prefix none | sed 's/ (\*)$//; s/ (proc-macro)//' | sort -u; }
bin=$(tree -p server --no-default-features -e normal,build)
examples=$(tree -p server -e normal,build,dev)
# `scripts/test-rust.sh` builds every test binary in one command, then runs the server's tests
# and the other packages' in separate ones.
all_tests=$(tree -p server -p confide-core -p app -p confide-bench --features app/ssr -e normal,build,dev)
server_tests=$(tree -p server --features app/ssr -e normal,build,dev)
other_tests=$(tree -p confide-core -p app -p confide-bench --features app/ssr -e normal,build,dev)
status=0
for pair in "examples:$examples" "test build:$all_tests" "server tests:$server_tests" "other tests:$other_tests"; do
  name=${pair%%:*}
  other=${pair#*:}
  diff=$(python3 - "$bin" "$other" <<'PY'
import sys
def load(text):
    d = {}
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) < 2:
            continue
        key = parts[0] + " " + parts[1]
        feats = parts[2] if len(parts) > 2 and not parts[2].startswith("(") else ""
        d.setdefault(key, set()).add(feats)
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
for k in sorted(a):
    if k in b and a[k] != b[k]:
        print(f"  {k}: server {sorted(a[k])}, other {sorted(b[k])}")
PY
)
  if [ -n "$diff" ]; then
    echo "features differ between the server build and the $name build:"
    echo "$diff"
    status=1
  fi
done
[ $status -eq 0 ] && echo "one build of the dependencies serves the server, the examples and the tests"
exit $status
