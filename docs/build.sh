#!/usr/bin/env bash
# Build the HTML documentation offline, warnings as errors (as CI and Read the Docs do).
#   docs/build.sh            # -> docs/_build/html/index.html
#   docs/build.sh --clean    # from scratch (removes docs/_build and the generated API pages)
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg PYTHONWARNINGS="ignore::SyntaxWarning"
if [[ "${1:-}" == "--clean" ]]; then
  rm -rf docs/_build docs/generated docs/_generated docs/tutorials
fi
start=$(date +%s)
sphinx-build -W --keep-going -q -b html docs docs/_build/html
echo "docs built with no warnings in $(( $(date +%s) - start )) s: docs/_build/html/index.html"
