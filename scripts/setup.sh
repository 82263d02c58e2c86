#!/usr/bin/env bash
# Creates .venv (if missing) and installs autoresearch-portable into it, editable.
#   bash scripts/setup.sh          # runtime only
#   bash scripts/setup.sh dev      # plus test dependencies (pytest, mlx's CPU build on Linux)
# Torch: if the venv has none, installs the version we test with (ARP_TORCH_VERSION, default
# 2.13.0); pip picks the right build for the platform (CUDA on Linux, MPS-enabled on macOS).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==${ARP_TORCH_VERSION:-2.13.0}"
fi
if [ "${1:-}" = "dev" ]; then
  .venv/bin/python -m pip install -q -e ".[dev]"
else
  .venv/bin/python -m pip install -q -e .
fi
