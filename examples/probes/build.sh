#!/usr/bin/env bash
# Builds the example probes in other languages, each with its own toolchain from its
# registry, against the WIT package the healthprobe binary prints (`healthprobe wit`):
#   python      componentize-py (PyPI), into a virtual environment
#   javascript  componentize-js (npm), its default build (`fetch` through wasi:http)
#   c           Debian's clang and wasi-libc, with wit-bindgen's C generator and
#               wit-component from crates.io (c/componentize) for the component steps
# Usage: examples/probes/build.sh [python|javascript|c]...   (default: all)
# Writes target/example-probes/<probe>.wasm; the tools are kept in target/example-probe-tools.
# HEALTHPROBE names the binary (default: target/debug/healthprobe, built if missing).
set -euo pipefail
# componentize-py imports the app; its bytecode would land beside the source.
export PYTHONDONTWRITEBYTECODE=1
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/examples/probes
out=$root/target/example-probes
tools=$root/target/example-probe-tools
mkdir -p "$out" "$tools"

healthprobe=${HEALTHPROBE:-$root/target/debug/healthprobe}
if [[ ! -x $healthprobe ]]; then
    cargo build --locked --manifest-path "$root/Cargo.toml" -p healthprobe
fi
"$healthprobe" wit -o "$tools/wit" >/dev/null

python() {
    command -v python3 >/dev/null || { echo "build.sh: python3 is needed" >&2; exit 3; }
    if [[ ! -x $tools/venv/bin/componentize-py ]]; then
        python3 -m venv "$tools/venv"
        "$tools/venv/bin/pip" install --quiet --disable-pip-version-check 'componentize-py==0.25.1'
    fi
    (cd "$here/python" &&
        "$tools/venv/bin/componentize-py" -d "$tools/wit" -w probe componentize app \
            -o "$out/prometheus-threshold.wasm")
}

javascript() {
    command -v npm >/dev/null || { echo "build.sh: node and npm are needed" >&2; exit 3; }
    mkdir -p "$tools/js"
    if [[ ! -x $tools/js/node_modules/.bin/componentize-js ]]; then
        cp "$here/javascript/package.json" "$here/javascript/package-lock.json" "$tools/js/"
        (cd "$tools/js" && npm ci --no-fund --no-audit --loglevel=error)
    fi
    "$tools/js/node_modules/.bin/componentize-js" --wit "$tools/wit" --world-name probe \
        -o "$out/actuator-health.wasm" "$here/javascript/app.js"
}

c() {
    command -v clang >/dev/null && [[ -e /usr/lib/wasm32-wasi/libc.a ]] || {
        echo "build.sh: clang and wasi-libc are needed (Debian: clang lld wasi-libc libclang-rt-dev-wasm32)" >&2
        exit 3
    }
    # `wit-bindgen c WIT --world probe` and `wasm-tools component new --adapt`, through
    # the libraries they are made of (see c/componentize/Cargo.toml).
    cargo build --quiet --locked --manifest-path "$here/c/componentize/Cargo.toml" \
        --target-dir "$tools/c-componentize"
    local componentize=$tools/c-componentize/debug/c-componentize
    "$componentize" bindgen "$tools/wit" "$tools/c-bindings"
    # A WASI preview-1 reactor (a library: no main), which the adapter turns into a
    # preview-2 component exporting the probe world.
    clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror \
        -I "$tools/c-bindings" -o "$tools/http-latency.core.wasm" \
        "$here/c/latency.c" "$tools/c-bindings/probe.c" "$tools/c-bindings/probe_component_type.o"
    "$componentize" new "$tools/http-latency.core.wasm" "$out/http-latency.wasm"
}

for language in "${@:-python javascript c}"; do
    for l in $language; do
        case "$l" in
            python | javascript | c) "$l" ;;
            *) echo "build.sh: unknown language $l (python, javascript, c)" >&2; exit 3 ;;
        esac
        echo "build.sh: built the $l example"
    done
done
ls -l "$out"
