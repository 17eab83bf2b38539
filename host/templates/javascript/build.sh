#!/usr/bin/env bash
# Runs the native tests under Node, then builds {{name}}.wasm with componentize-js (from
# npm, into node_modules unless COMPONENTIZE_JS names one already installed).
set -euo pipefail
cd "$(dirname "$0")"
node --test test.mjs
componentize=${COMPONENTIZE_JS:-}
if [[ -z $componentize ]]; then
    [[ -x node_modules/.bin/componentize-js ]] || npm install --no-fund --no-audit --loglevel=error
    componentize=node_modules/.bin/componentize-js
fi
"$componentize" --wit wit --world-name probe -o {{name}}.wasm app.js
echo "built {{name}}.wasm"
