#!/usr/bin/env bash
# Builds what the benchmarks need (release engine and hub, the hub load generator) and runs them.
#   bash bench/run.sh [--quick]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
bash scripts/build.sh
cargo build --release --example hub_load
node bench/run.mjs "$@"
