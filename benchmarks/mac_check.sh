#!/usr/bin/env bash
# The Mac check (issue 18): the one script a Mac user runs, about 10-15 minutes on an M-series
# Mac. No Mac is available to the developers, so it checks on real Apple Silicon what CI checks
# only by proxy (docs/platforms.md) and writes ONE file to attach to a GitHub issue:
# mac-check/mac-check.json. Steps (each is recorded, a failing step does not stop the others):
#   1. arp doctor --json                       what was detected and chosen, and why
#   2. the MLX parity tests on the Metal GPU   Linux CI runs mlx[cpu], whose rope, rms_norm and
#                                              attention are fallback kernels: Metal's own are
#                                              checked here only
#   3. arp init + a 60 s arp train, on mlx and on mps: sizing within Metal's working set, the
#                                              batch autotune, evaluation (no float64 on MPS),
#                                              peak memory, the all-"L" window pattern
#   4. bf16 vs fp32 matmul rate on the GPU, through mlx and through torch MPS
# Usage:  bash scripts/setup.sh dev && bash benchmarks/mac_check.sh
#   MAC_CHECK_BUDGET=60   seconds per training run      OUT=mac-check   output folder
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
if [ "$(uname -s)" != "Darwin" ] || [ "$(uname -m)" != "arm64" ]; then
  if [ -z "${MAC_CHECK_ANY_MACHINE:-}" ]; then
    echo "error: this check is for Apple Silicon Macs (this is $(uname -s) $(uname -m)); MAC_CHECK_ANY_MACHINE=1 runs it anyway" >&2
    exit 2
  fi
fi
PY=${PYTHON:-$REPO/.venv/bin/python}
if ! [ -x "$PY" ]; then
  echo "error: no Python environment at $PY; run: bash scripts/setup.sh dev" >&2
  exit 2
fi
BUDGET=${MAC_CHECK_BUDGET:-60}
OUT=${OUT:-mac-check}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
export ARP_CACHE_DIR=${ARP_CACHE_DIR:-$OUT/cache} PYTHONUNBUFFERED=1
: > "$OUT/steps.tsv"

# run NAME CMD...: CMD's output into NAME.log, its exit code and seconds into steps.tsv
run() {
  local name=$1 start rc
  shift
  echo "== $name: $*"
  start=$(date +%s)
  "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - start ))" >> "$OUT/steps.tsv"
  tail -n 4 "$OUT/$name.log"
}

run doctor bash -c "'$PY' -m autoresearch_portable doctor --json > '$OUT/doctor.json'"
run parity env ARP_MLX_TEST_DEVICE=gpu "$PY" -m pytest -q -p no:cacheprovider tests/test_mlx_parity.py
run prepare "$PY" -m autoresearch_portable prepare
for backend in mlx mps; do
  rm -rf "$OUT/ws-$backend"
  run "init-$backend" "$PY" -m autoresearch_portable init "$OUT/ws-$backend" --backend "$backend" --budget "$BUDGET"
  if [ -f "$OUT/ws-$backend/train.py" ]; then
    run "train-$backend" bash -c "cd '$OUT/ws-$backend' && '$PY' -m autoresearch_portable train --backend $backend --budget $BUDGET"
  fi
done
run matmul "$PY" - "$OUT/matmul.json" <<'PY'
"""bf16 vs fp32 matmul FLOP/s on the GPU, through each backend's own timing (best of 3; 4096^2,
or 1024^2 where the backend has no GPU here)."""
import json
import sys

from autoresearch_portable.backends import load_backend
from autoresearch_portable.detect import make_plan, probe

found, out = probe(measure=False), {}
for name in ("mlx", "mps"):
    try:
        plan = make_plan(found, name, {})
        backend, n = load_backend(plan), 1024 if plan.device == "cpu" else 4096
        out[name] = {dt: max(backend.matmul_flops(n, dt) for _ in range(3)) for dt in ("float32", "bfloat16")}
        out[name].update(n=n, device=plan.device, bf16_over_fp32=out[name]["bfloat16"] / out[name]["float32"])
    except Exception as e:  # a backend this Mac lacks is a result too
        out[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
    print(name, out[name])
json.dump(out, open(sys.argv[1], "w"), indent=2)
PY

"$PY" - "$OUT" "$REPO" <<'PY'
"""Everything above in one JSON: mac-check.json."""
import json
import platform
import subprocess
import sys
from pathlib import Path

out, repo = Path(sys.argv[1]), Path(sys.argv[2])


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def tail(name, lines=40):
    try:
        return (out / f"{name}.log").read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return None


def last_ledger_record(folder):
    try:
        return json.loads((folder / "results" / "ledger.jsonl").read_text().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=repo).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


steps = {}
for line in (out / "steps.tsv").read_text().splitlines():
    name, rc, seconds = line.split("\t")
    steps[name] = dict(exit_code=int(rc), seconds=int(seconds))
report = dict(
    mac_check=1,
    git_commit=sh("git", "rev-parse", "HEAD"),
    macos=platform.mac_ver()[0] or None,
    chip=sh("sysctl", "-n", "machdep.cpu.brand_string"),
    python=platform.python_version(),
    steps=steps,
    doctor=read_json(out / "doctor.json"),
    parity=dict(exit_code=steps.get("parity", {}).get("exit_code"), tail=tail("parity", 30)),
    matmul=read_json(out / "matmul.json"),
)
for backend in ("mlx", "mps"):
    ws = out / f"ws-{backend}"
    report[f"train_{backend}"] = dict(
        init_tail=tail(f"init-{backend}", 12),
        workspace=read_json(ws / ".arp.json"),
        run=last_ledger_record(ws),
        tail=tail(f"train-{backend}", 30),
    )
(out / "mac-check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
failed = [name for name, s in steps.items() if s["exit_code"] != 0]
print(f"wrote {out / 'mac-check.json'}" + (f"; steps that failed: {', '.join(failed)}" if failed else "; every step passed"))
print("Please open an issue on the project's GitHub repository titled 'mac check: <your chip>' and attach that file.")
PY
