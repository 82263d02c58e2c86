#!/usr/bin/env bash
# The main job: set up, prepare the bundled corpus, create a workspace sized for this device and
# train its baseline for the default 300 s budget. Extra arguments go to `arp train`
# (e.g. --budget 60, --backend mlx).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ARP=.venv/bin/arp
$ARP prepare
[ -f runs/baseline/train.py ] || $ARP init runs/baseline
cd runs/baseline
exec ../../.venv/bin/arp train "$@"
