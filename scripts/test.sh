#!/usr/bin/env bash
# Set up (if needed) and run the test suite on this machine's CPU: all of it (CI), or with
# --quick only the tests that are not end-to-end runs (pytest -m "not slow"), the tier to run
# while editing. Other arguments go to pytest.
#
# On Linux the tests run in one pytest worker per core (up to 4, pytest-xdist), each worker pinned
# to cores of its own (tests/conftest.py), so a run's load watch never sees the other worker's
# runs. The tests marked `serial` need the whole machine; they run afterwards, one at a time.
# Elsewhere (macOS cannot pin a process to cores) everything runs in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
select="not slow"
if [ "${1:-}" = "--quick" ]; then
    shift
else
    select="slow or not slow"
fi
workers=$(.venv/bin/python -c 'import os; print(min(4, len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else 1)')
if [ "$workers" -le 1 ]; then
    exec .venv/bin/python -m pytest -q -m "$select" "$@"
fi
parallel=0
.venv/bin/python -m pytest -q -n "$workers" --dist loadfile -m "($select) and not serial" "$@" || parallel=$?
serial=0
.venv/bin/python -m pytest -q -m "($select) and serial" "$@" || serial=$?
# pytest's 5 is "no tests collected": fine for one part, not for both
if [ "$parallel" -eq 5 ] && [ "$serial" -eq 5 ]; then exit 5; fi
[ "$parallel" -eq 5 ] && parallel=0
[ "$serial" -eq 5 ] && serial=0
[ "$parallel" -ne 0 ] && exit "$parallel"
exit "$serial"
