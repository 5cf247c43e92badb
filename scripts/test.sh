#!/usr/bin/env bash
# Runs every test: formatting and lints, the native tests (core, hub API, simulation), the
# browser tests in headless Chromium against a real hub, and the end-to-end tests of the
# optimised package (the demo till, and the Superstore replay on a subset).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"

echo "==> format and lints"
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo clippy --lib --test browser --test browser_read --target wasm32-unknown-unknown -- -D warnings

echo "==> native tests"
cargo test

echo "==> browser tests (wasm-bindgen-test in headless Chromium, against a real hub)"
cargo build --bin pos-sync-hub
tmp=$(mktemp -d)
target/debug/pos-sync-hub serve --db "$tmp/browser-tests.db" --addr 127.0.0.1:0 --cors-origin '*' \
  > "$tmp/hub.out" 2> "$tmp/hub.err" &
hub=$!
trap 'kill -TERM "$hub" 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do grep -q listening "$tmp/hub.out" 2>/dev/null && break; sleep 0.1; done
POS_SYNC_TEST_HUB=$(awk '/listening on/ {print $4}' "$tmp/hub.out")
[ -n "$POS_SYNC_TEST_HUB" ] || { cat "$tmp/hub.err"; echo "the test hub did not start" >&2; exit 1; }
export POS_SYNC_TEST_HUB
# The browser's temporary directories (chromedriver's Chromium leaves some) go in $tmp too.
TMPDIR="$tmp" cargo test --target wasm32-unknown-unknown --test browser --test browser_read

echo "==> end-to-end tests (the optimised package in headless Chromium)"
bash scripts/build.sh --engine-only
bash scripts/check-size.sh
POS_SYNC_HUB_BIN=target/debug/pos-sync-hub node --test --test-concurrency=1 www/tests/
