#!/usr/bin/env bash
# Runs the native tests, then builds {{name}}.wasm with componentize-py (from PyPI, into
# .venv unless COMPONENTIZE_PY names one already installed).
set -euo pipefail
cd "$(dirname "$0")"
export PYTHONDONTWRITEBYTECODE=1
python3 -m unittest --quiet
componentize=${COMPONENTIZE_PY:-}
if [[ -z $componentize ]]; then
    [[ -x .venv/bin/componentize-py ]] || {
        python3 -m venv .venv
        .venv/bin/pip install --quiet --disable-pip-version-check 'componentize-py==0.25.1'
    }
    componentize=.venv/bin/componentize-py
fi
"$componentize" -d wit -w probe componentize app -o {{name}}.wasm
echo "built {{name}}.wasm"
