#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite on this machine's CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
exec .venv/bin/python -m pytest -q "$@"
