#!/usr/bin/env bash
# Creates .venv (if missing) and installs autoresearch-portable into it, editable.
#   bash scripts/setup.sh                  # runtime only
#   bash scripts/setup.sh dev              # plus test dependencies (pytest, mlx's CPU build on Linux, ray)
#   bash scripts/setup.sh --which-python   # only print the Python it would create .venv with
# Python: $PYTHON if set, else the first of python3.13, python3.12, python3.11, python3.10, python3
# that is 3.10 or newer. A stock macOS `python3` is often 3.9, where the install would fail part way.
# Torch: if the venv has none, installs the version we test with (ARP_TORCH_VERSION, default
# 2.13.0); pip picks the right build for the platform (CUDA on Linux, MPS-enabled on macOS).
set -euo pipefail
cd "$(dirname "$0")/.."

version_of() {  # "3.12" for an interpreter, nothing if it does not run
  "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}

new_enough() {
  local v major minor
  v=$(version_of "$1") || return 1
  major=${v%%.*}; minor=${v#*.}
  [ "$major" -gt 3 ] || { [ "$major" -eq 3 ] && [ "$minor" -ge 10 ]; }
}

find_python() {
  local candidates py seen=""
  if [ -n "${PYTHON:-}" ]; then candidates=("$PYTHON"); else candidates=(python3.13 python3.12 python3.11 python3.10 python3); fi
  for py in "${candidates[@]}"; do
    command -v "$py" >/dev/null 2>&1 || continue
    if new_enough "$py"; then echo "$py"; return 0; fi
    seen+=", $py is $(version_of "$py" || echo 'not runnable')"
  done
  [ -n "$seen" ] && seen=${seen:2} || seen="none of ${candidates[*]} found"
  echo "error: autoresearch-portable needs Python 3.10 or newer ($seen); install one (macOS: brew install python@3.12) or set PYTHON=/path/to/python3.12" >&2
  return 2
}

PY=$(find_python) || exit 2
if [ "${1:-}" = "--which-python" ]; then
  echo "$PY"
  exit 0
fi
if [ -x .venv/bin/python ] && ! new_enough .venv/bin/python; then
  echo "error: .venv has Python $(version_of .venv/bin/python || echo '?'), below 3.10; remove it (rm -rf .venv) and run this script again" >&2
  exit 2
fi
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
