#!/usr/bin/env bash
# Builds the component, then runs the native tests and the end-to-end tests (which run
# the component under `healthprobe`: on the PATH, or named by HEALTHPROBE).
set -euo pipefail
cd "$(dirname "$0")"
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2
cargo test
echo "built ${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{crate}}.wasm"
