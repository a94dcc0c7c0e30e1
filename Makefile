# Confide: `make run` serves the app, `make test` runs every test. Both install what they
# need first (see scripts/setup.sh) and skip what is already there.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(HOME)/.cargo/bin:$(PATH)
# Same value cargo-leptos sets, so plain cargo commands reuse its build of the dependencies.
export LEPTOS_OUTPUT_NAME := confide
# Release builds erase component types too, as debug builds always do: the browser bundle is
# about a tenth smaller (1,073 -> 979 kB of wasm) and the code that ships is the code the
# browser tests exercise.
RELEASE_FLAGS := RUSTFLAGS="--cfg erase_components"
# Every build splits the pages few visits open (sign-in, sessions, notes) into wasm chunks
# loaded on first use (`#[lazy_route]`); the tests run the split build too.
# Release builds also store a brotli and a gzip copy of every static file beside it, and
# the server sends the one the browser accepts: the wasm travels as 338 kB (brotli) or
# 443 kB (gzip), not 1,203 kB. cargo-leptos writes both; its gzip is redone at -9 (it is
# 17 % larger).
RELEASE_BUILD := $(RELEASE_FLAGS) cargo leptos build --release --split --precompress && \
  find target/site -type f ! -name '*.gz' ! -name '*.br' -exec gzip -9 -k -f {} +

.PHONY: help setup setup-test run build release test test-unit test-e2e bench soak fuzz fmt lint clean screenshots

help:
	@echo "make run        build (release) and serve on http://127.0.0.1:3000"
	@echo "make test       unit + integration + Playwright tests"
	@echo "make test-unit  Rust tests only"
	@echo "make test-e2e   Playwright tests only (builds the app first)"
	@echo "make bench      load tool, bundle weight, micro-benchmarks (release)"
	@echo "make screenshots  the README's pictures, from the running app"
	@echo "make soak       1,000 users while Redis, PostgreSQL, a Redis Cluster master and Confide fail (release)"

setup:
	@scripts/setup.sh build

setup-test:
	@scripts/setup.sh test

run: setup
	$(RELEASE_BUILD)
	./target/release/confide

build: setup
	cargo leptos build --split

release: setup
	$(RELEASE_BUILD)

# One build of everything the tests run, the wasm beside the host (scripts/build-tests.sh),
# then the Rust tests beside the browser tests (scripts/test-rust.sh says why).
test: setup-test
	scripts/build-tests.sh
	scripts/test-rust.sh --with-browser

# The soak smoke test drives the debug server binary; `make test` has it from cargo-leptos.
test-unit: setup
	RUSTFLAGS="--cfg erase_components" cargo build -p server --bin confide
	$(MAKE) --no-print-directory test-unit-only

test-e2e: setup-test
	cargo leptos build --split
	$(MAKE) --no-print-directory e2e-examples
	$(MAKE) --no-print-directory test-e2e-only

.PHONY: test-unit-only test-e2e-only e2e-examples
# What the browser tests run beside `confide`: the fake identity provider they sign in with
# and the tool-using example app with its MCP server.
e2e-examples:
	RUSTFLAGS="--cfg erase_components" cargo build -p server --example fake_oidc --example tools --example mcp_notes

# cargo-leptos builds debug code with `--cfg erase_components`; the tests use the same flag
# so they share its compiled dependencies instead of building them a second time. The script
# builds every test binary (and the examples some tests start) once, then runs the store
# tests, the HTTP tests and the other packages' side by side: they mostly wait.
test-unit-only:
	scripts/test-rust.sh

test-e2e-only:
	cd end2end && CI=$${CI:-} npx playwright test

# Release build, then the load tool (all three stores + a bare-axum baseline, same run),
# the client-weight report and the micro-benchmarks. Figures go to BENCHMARKS.md by hand.
bench: setup-test
	$(RELEASE_BUILD)
	$(RELEASE_FLAGS) cargo build --release -p confide-bench --bin confide-load
	./target/release/confide-load --users $${USERS:-200} --turns $${TURNS:-10} --json target/bench-load.json
	scripts/weight.sh
	cargo bench -p confide-bench --bench core

# Soak with faults (the quick test run has a short version, bench/tests/soak_smoke.rs): the
# release server, USERS simulated users on one address for SOAK_SECONDS per scenario
# (SCENARIOS: redis, sqlite, postgres, redis-cluster; all by default), while the store
# (Redis, PostgreSQL: SIGKILL and restart; a Redis Cluster master: failed over under load)
# and one of the Confide instances are struck. Fails on a lost acknowledged message, a cross-session leak, a
# wrong answer, a reply stuck with no fault to explain it, or a fault never recovered from.
# Only the server binary is needed (the API works without the site assets), so no wasm
# build. Figures go to BENCHMARKS.md by hand.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
soak: setup-test
	$(RELEASE_FLAGS) cargo build --release -p server --bin confide
	$(RELEASE_FLAGS) cargo build --release -p confide-bench --bin confide-soak
	$(TARGET_DIR)/release/confide-soak --users $${USERS:-1000} --duration $${SOAK_SECONDS:-75} \
	  --scenarios $${SCENARIOS:-all} --server-bin $(TARGET_DIR)/release/confide \
	  --json $(TARGET_DIR)/soak.json

# Coverage-guided fuzzing (libFuzzer via cargo-fuzz, nightly): each target for FUZZ_SECONDS.
# What libFuzzer finds goes to fuzz/target/corpus (not committed); the committed seeds are
# read-only input. Crashes land in fuzz/artifacts.
FUZZ_TARGETS := session_id proof_cookie guard_headers api_json markdown sse upload
fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/target/corpus/$$t; \
	  cargo +nightly fuzz run $$t fuzz/target/corpus/$$t fuzz/corpus/$$t -- -max_total_time=$${FUZZ_SECONDS:-60} || exit 1; \
	done

# The README's screenshots: the debug build on a free port with a fresh in-memory store.
screenshots: setup-test
	cargo leptos build --split
	port=$$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'); \
	CONFIDE_ADDR=127.0.0.1:$$port CONFIDE_SITE_ROOT=target/site CONFIDE_STORE=memory CONFIDE_ECHO_DELAY=0 CONFIDE_LOG=warn \
	  ./target/debug/confide & pid=$$!; \
	trap 'kill $$pid' EXIT; \
	until curl -fs http://127.0.0.1:$$port/healthz >/dev/null; do sleep 0.2; done; \
	cd end2end && node scripts/screenshots.mjs http://127.0.0.1:$$port ../docs

fmt:
	cargo fmt --all

lint:
	cargo fmt --all --check
	cargo clippy -p confide-core -p app -p server -p confide-bench --features app/ssr --tests -- -D warnings
	scripts/check-features.sh

clean:
	cargo clean
	rm -rf end2end/test-results end2end/playwright-report
