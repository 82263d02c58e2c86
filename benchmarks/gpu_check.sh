#!/usr/bin/env bash
# The prepared GPU check (issue 7): one call on a lent GPU machine, under 8 minutes.
#   doctor -> CUDA unit tests -> throughput at the original's configuration -> throughput at our
#   H100 baseline sizing. Everything lands in $OUT (or ./gpu-results without one).
# The device image has torch with CUDA, triton, numpy, typer, tiktoken, pyarrow but not
# platformdirs or rustbpe: carry them as wheels in .whl (see the device tool's README), e.g.
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 -d .whl platformdirs rustbpe
# and run:  bash benchmarks/gpu_check.sh    (with carry: [".whl"])
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 ARP_CACHE_DIR=/tmp/arp-cache
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "$OUT/nvidia-smi.txt"
python3 -m autoresearch_portable doctor --json > "$OUT/doctor.json"; python3 -m autoresearch_portable doctor
python3 -m pytest -q tests/test_cuda.py tests/test_attention.py tests/test_detect_plan.py 2>&1 | tail -n 15 | tee "$OUT/tests.txt"
# The original's configuration: depth 8, width 512, seq 2048, vocab 8192, device batch 128,
# 2^19 tokens per step, SSSL. MFU is reported by the harness against the datasheet peak.
timeout 300 python3 benchmarks/bench_train.py --depth 8 --dim 512 --seq-len 2048 --vocab 8192 \
  --device-batch 128 --total-batch 524288 --budget 120 --out "$OUT/original_config.json" 2>&1 | tail -n 8
# Our baseline sizing for this device from the measured throughput (climbmix shape: vocab 8192,
# seq 2048, 300 s budget), then a throughput run at that size.
python3 - "$OUT/original_config.json" > "$OUT/sizing.json" <<'PY'
import json, sys
from autoresearch_portable.harness.baseline.sizing import choose_baseline
r = json.load(open(sys.argv[1]))
flops = r["tokens_per_second"] * r["flops_per_token"]
print(json.dumps(dict(measured_flops_per_second=flops, sizes=choose_baseline(flops, 300, 2048, 8192, 80e9))))
PY
cat "$OUT/sizing.json"
read -r D W B T < <(python3 -c "import json;s=json.load(open('$OUT/sizing.json'))['sizes'];print(s['DEPTH'],s['MODEL_DIM'],s['DEVICE_BATCH_SIZE'],s['TOTAL_BATCH_SIZE'])")
timeout 240 python3 benchmarks/bench_train.py --depth "$D" --dim "$W" --seq-len 2048 --vocab 8192 \
  --device-batch "$B" --total-batch "$T" --budget 90 --out "$OUT/our_sizing.json" 2>&1 | tail -n 8
