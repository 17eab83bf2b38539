#!/usr/bin/env bash
# Builds the example probes in other languages, each with its own toolchain from its
# registry, against the WIT package the healthprobe binary prints (`healthprobe wit`):
#   python      componentize-py (PyPI), into a virtual environment
#   javascript  componentize-js (npm), its default build (`fetch` through wasi:http)
# Usage: examples/probes/build.sh [python|javascript]...   (default: all)
# Writes target/example-probes/<probe>.wasm; the tools are kept in target/example-probe-tools.
# HEALTHPROBE names the binary (default: target/debug/healthprobe, built if missing).
set -euo pipefail
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

for language in "${@:-python javascript}"; do
    for l in $language; do
        case "$l" in
            python | javascript) "$l" ;;
            *) echo "build.sh: unknown language $l (python, javascript)" >&2; exit 3 ;;
        esac
        echo "build.sh: built the $l example"
    done
done
ls -l "$out"
