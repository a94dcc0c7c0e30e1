#!/usr/bin/env bash
# Installs what building (and, with `test`, testing) Confide needs, skipping whatever is
# already present at the right version. Only crates.io, npm and Debian packages are used.
#
#   scripts/setup.sh build   # Rust target, cargo-leptos, wasm-bindgen-cli, wasm-opt
#   scripts/setup.sh test    # the above plus Redis, PostgreSQL, Chromium and the Playwright packages
set -euo pipefail

CARGO_LEPTOS_VERSION=0.3.10
# Must equal the `wasm-bindgen` crate pinned in Cargo.toml.
WASM_BINDGEN_VERSION=$(sed -n 's/^wasm-bindgen = "=\(.*\)"$/\1/p' "$(dirname "$0")/../Cargo.toml")
BINARYEN_VERSION=132.0.0

export PATH="$HOME/.cargo/bin:$PATH"
say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if ! cargo leptos --version 2>/dev/null | grep -qx "cargo-leptos $CARGO_LEPTOS_VERSION"; then
  # no_downloads: it must use the tools below from PATH instead of fetching binaries.
  say "building cargo-leptos $CARGO_LEPTOS_VERSION (takes a while, once)"
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
fi

if ! wasm-bindgen --version 2>/dev/null | grep -q "^wasm-bindgen $WASM_BINDGEN_VERSION\$"; then
  # Not --locked: its lockfile names a webpki-roots release the registry no longer serves.
  say "building wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

command -v npm >/dev/null || { say "installing Node.js and npm"; apt_install nodejs npm; }

# Debian's binaryen is too old: its wasm-opt yields bundles that fail to instantiate.
if ! wasm-opt --version 2>/dev/null | grep -q "version ${BINARYEN_VERSION%%.*}"; then
  say "installing wasm-opt (binaryen $BINARYEN_VERSION from npm)"
  as_root npm install -g --no-audit --no-fund "binaryen@$BINARYEN_VERSION" >/dev/null
fi

if [ "${1:-build}" = test ]; then
  if ! command -v redis-server >/dev/null; then
    # The tests start their own throwaway servers from this binary; nothing runs as a service.
    say "installing redis-server (Debian package)"
    apt_install redis-server
    as_root sh -c 'systemctl disable --now redis-server 2>/dev/null || service redis-server stop 2>/dev/null || true'
  fi
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
    # Likewise for PostgreSQL: the tests run initdb into a temporary directory on a free port.
    say "installing PostgreSQL (Debian package)"
    apt_install postgresql
    as_root sh -c 'systemctl disable --now postgresql 2>/dev/null || service postgresql stop 2>/dev/null || true'
  fi
  if ! command -v chromium-headless-shell >/dev/null; then
    # Chromium's headless shell, as Playwright itself uses for headless runs: the same Blink
    # and V8 without the full browser around them, a third less CPU for the browser tests.
    say "installing Chromium's headless shell (Debian package)"
    apt_install chromium-headless-shell
  fi
  if [ ! -d end2end/node_modules/@playwright/test ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
    say "installing the Playwright test runner (npm ci; no browser download)"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
fi
say "tools ready: $(cargo leptos --version), $(wasm-bindgen --version), wasm-opt $(wasm-opt --version | awk '{print $3}')"
