#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite on this machine's CPU.
# Two parts: most tests on two workers (pytest-xdist; a test file stays on one worker, so its
# trained workspace is made once), then the tests marked `alone`, which measure the machine's
# load and must have it to themselves. Arguments go to both parts (e.g. a test file, -x, -k).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
status=0
.venv/bin/python -m pytest -q -n 2 --dist loadfile -m "not alone" "$@" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 5 ]; then exit "$status"; fi  # 5: nothing selected here
second=0
.venv/bin/python -m pytest -q -m alone "$@" || second=$?
if [ "$second" -eq 5 ] && [ "$status" -eq 0 ]; then exit 0; fi
exit "$second"
