#!/usr/bin/env bash
# Installs what pos-sync needs and skips what is already there:
#   - the wasm32-unknown-unknown Rust target and the standard library's source (rustup; the
#     release engine rebuilds std for size, see scripts/build.sh);
#   - wasm-bindgen-cli at exactly the version Cargo.lock pins;
#   - Debian's chromium and chromium-driver (browser tests, the demo's smoke test, the replay);
#   - the npm dependencies (wasm-opt from npm's binaryen, playwright-core, the Superstore data).
# Sourced or run by scripts/run.sh and scripts/test.sh; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; return 1; fi
}

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust with rustup first (https://rustup.rs)" >&2
  exit 1
fi

if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "wasm32 target: present"
else
  say "wasm32 target: installing"
  rustup target add wasm32-unknown-unknown
fi

if rustup component list --installed | grep -q '^rust-src'; then
  say "rust-src: present"
else
  say "rust-src: installing"
  rustup component add rust-src
fi

want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" = "$want" ] && command -v wasm-bindgen-test-runner >/dev/null; then
  say "wasm-bindgen-cli $want: present"
else
  say "wasm-bindgen-cli $want: installing (about two minutes; was '${have:-none}')"
  # No --locked: one locked dependency of the CLI can be newer than the registry mirror.
  cargo install wasm-bindgen-cli --version "$want" --force
fi

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  say "chromium and chromedriver: present"
else
  say "chromium and chromedriver: installing from Debian"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi

if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ] \
   && [ -x node_modules/.bin/wasm-opt ] && [ -d node_modules/playwright-core ]; then
  say "npm dependencies: present"
else
  say "npm dependencies: installing"
  npm ci --no-audit --no-fund
fi
