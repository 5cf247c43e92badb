#!/usr/bin/env bash
# Builds the engine's npm package into pkg/ and the hub binary.
#   scripts/build.sh            release wasm, optimised with wasm-opt -Oz; release hub
#   scripts/build.sh --dev      debug wasm and hub (faster)
#   scripts/build.sh --engine-only   release wasm only (the tests use a debug hub)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile=release
hub=yes
case "${1:-}" in
  --dev) profile=dev ;;
  --engine-only) hub=no ;;
  "") ;;
  *) echo "usage: scripts/build.sh [--dev | --engine-only]" >&2; exit 2 ;;
esac
if [ "$profile" = release ]; then
  wasm_flag="--profile wasm-release"; wasm_dir=wasm-release; hub_flag=--release
else
  wasm_flag=""; wasm_dir=debug; hub_flag=""
fi

# The optimiser and the package template need the npm dependencies (and the rest of setup).
bash scripts/setup.sh >/dev/null

echo "==> building the engine (wasm32, $profile)"
if [ "$profile" = release ]; then
  # The release engine is built for size with the standard library rebuilt from source
  # (rustup's rust-src, the same version as the compiler): std optimised for size, and a panic
  # aborts at once instead of formatting a message nobody reads (the engine's own errors are
  # Results, so nothing a page sees changes). These are unstable cargo and rustc flags, allowed
  # on the stable toolchain by RUSTC_BOOTSTRAP for this one build only; together they take
  # about a tenth off the gzipped wasm. RUSTFLAGS here reach only the wasm32 artifacts, not
  # build scripts or proc macros. Should a later toolchain change the flags, the plain build
  # follows, loudly, and the CI size check tells.
  if ! RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort" \
      cargo build --lib --target wasm32-unknown-unknown $wasm_flag \
        -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size; then
    echo "build.sh: the size build (std from source) failed; building the plain release instead" >&2
    cargo build --lib --target wasm32-unknown-unknown $wasm_flag
  fi
else
  cargo build --lib --target wasm32-unknown-unknown $wasm_flag
fi
rm -rf pkg && mkdir -p pkg
wasm-bindgen --target web --remove-name-section --out-dir pkg --out-name pos_sync \
  "target/wasm32-unknown-unknown/$wasm_dir/pos_sync.wasm"
if [ "$profile" = release ]; then
  # npm's binaryen: Debian's wasm-opt 108 produces a module Chromium rejects.
  node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    pkg/pos_sync_bg.wasm -o pkg/pos_sync_bg.wasm
fi
node tools/package-json.mjs
cp pkg-config/README.md pkg/README.md
cp pkg-config/pos_sync_extra.d.ts pkg/ 2>/dev/null || true

if [ "$hub" = yes ]; then
  echo "==> building the hub ($profile)"
  cargo build --bin pos-sync-hub $hub_flag
fi
printf 'engine: pkg/ (%s bytes of wasm, %s gzipped)\n' \
  "$(wc -c < pkg/pos_sync_bg.wasm)" "$(gzip -9 -c pkg/pos_sync_bg.wasm | wc -c)"
