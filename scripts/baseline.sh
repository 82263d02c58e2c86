#!/usr/bin/env bash
# The main job: set up, prepare the bundled corpus, create a workspace sized for this device and
# train its baseline for the default 300 s budget. Extra arguments go to `arp train`
# (e.g. --budget 60, --backend mlx); a --budget also sizes the workspace when it is created.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ARP=.venv/bin/arp
$ARP prepare
# the workspace is sized for the budget it trains (a --budget among the arguments, else 300 s)
BUDGET=""
PREV=""
for a in "$@"; do
    case "$a" in --budget=*) BUDGET="${a#--budget=}" ;; esac
    if [ "$PREV" = "--budget" ]; then BUDGET="$a"; fi
    PREV="$a"
done
if [ ! -f runs/baseline/train.py ]; then
    if [ -n "$BUDGET" ]; then $ARP init runs/baseline --budget "$BUDGET"; else $ARP init runs/baseline; fi
fi
cd runs/baseline
exec ../../.venv/bin/arp train "$@"
