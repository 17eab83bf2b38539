#!/usr/bin/env bash
# Runs the native tests, then builds {{name}}.wasm: C bindings of wit/ and the component
# step through componentize/ (a small Rust program made of the libraries `wit-bindgen c`
# and `wasm-tools component new --adapt` are made of, from crates.io), and clang with
# wasi-libc for a WASI preview-1 reactor (Debian: clang lld wasi-libc libclang-rt-dev-wasm32).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p target
native_cc=${CC:-$(command -v cc || command -v clang)}
"$native_cc" -std=c11 -Wall -Wextra -Werror -o target/test test.c
target/test
cargo build --quiet --locked --manifest-path componentize/Cargo.toml \
    --target-dir "${CARGO_TARGET_DIR:-target/componentize}"
componentize=${CARGO_TARGET_DIR:-target/componentize}/debug/c-componentize
"$componentize" bindgen wit target/bindings
clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror \
    -I target/bindings -o target/{{name}}.core.wasm \
    probe.c target/bindings/probe.c target/bindings/probe_component_type.o
"$componentize" new target/{{name}}.core.wasm {{name}}.wasm
echo "built {{name}}.wasm"
