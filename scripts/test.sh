#!/usr/bin/env bash
# Set up (if needed) and run the test suite on this machine's CPU: all of it (CI), or with
# --quick only the tests that are not end-to-end runs (pytest -m "not slow"), the tier to run
# while editing. Other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
if [ "${1:-}" = "--quick" ]; then
    shift
    exec .venv/bin/python -m pytest -q -m "not slow" "$@"
fi
exec .venv/bin/python -m pytest -q "$@"
