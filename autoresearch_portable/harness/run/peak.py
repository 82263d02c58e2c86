"""The device's peak FLOP/s for MFU: the datasheet figure when the plan has one (known GPUs in
their tensor-core dtype), otherwise a measured dense matmul rate in the compute dtype, cached per
device so it costs a second once (not cached when measured under load: detect/load.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from autoresearch_portable import paths
from autoresearch_portable.detect.plan import device_name
from autoresearch_portable.detect.load import cached_measurement
from autoresearch_portable.fsutil import read_json


def device_key(probe: dict, plan: dict) -> str:
    """A file-name-safe identity of 'this device running this plan'."""
    raw = f"{plan['backend']}-{plan['device']}-{device_name(probe, plan['backend'])}-{plan['dtype']}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("_")[:120]


def known_peak(probe: dict, plan: dict) -> tuple[float, str] | None:
    """The peak without measuring anything: the datasheet's, else the cached measurement, else
    None. What the parent hands train.py's process (which, confined, cannot read the cache)."""
    if plan.get("peak_flops"):
        return float(plan["peak_flops"]), plan.get("peak_flops_source", "datasheet")
    try:
        record = read_json(_cache_file(probe, plan)) or {}  # KeyError: a plan without a device
        return float(record["flops"]), str(record["source"])
    except (KeyError, TypeError, ValueError):
        return None


def peak_for_run(probe: dict, plan: dict) -> tuple[float, str] | None:
    """The peak the parent hands a run (known_peak), measured first when nothing is known yet: in
    a process of its own (`python -I -m` this module), since the parent loads no backend and
    train.py's process, confined, may not write the cache. Once per device; None if it fails."""
    known = known_peak(probe, plan)
    if known is not None or "dtype" not in plan:
        return known
    try:
        run = subprocess.run([sys.executable, "-I", "-m", "autoresearch_portable.harness.run.peak",
                              json.dumps(dict(probe=probe, plan=plan))],
                             capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        flops, source = json.loads(run.stdout.strip().splitlines()[-1])
        return float(flops), str(source)
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError, TypeError):
        return None


def forget_if_below(probe: dict, plan: dict, rate: float | None) -> None:
    """A run sustained `rate`: a cached peak below it was measured while the machine was busy, so
    the next run measures again (peak_flops keeps the larger)."""
    known = known_peak(probe, plan)
    if rate and known is not None and not plan.get("peak_flops") and known[0] < rate:
        _cache_file(probe, plan).unlink(missing_ok=True)


def peak_flops(backend, probe: dict, plan: dict, measure_size: int | None = None,
               at_least: float = 0.0, log=None) -> tuple[float, str]:
    """The plan's datasheet peak, else the cached measurement, else a new one. `at_least` is a
    rate this device was just seen to sustain: a cached peak below it was measured while the
    machine was busy, so it is measured again (and the larger value kept). A measurement taken
    while other processes loaded the machine serves this run only (`log` says so)."""
    if plan.get("peak_flops"):
        return float(plan["peak_flops"]), plan.get("peak_flops_source", "datasheet")
    n = measure_size or (1024 if plan["device"] == "cpu" else 4096)
    source = f"measured: {n}x{n} {plan['dtype']} matmul on this device"

    def measure(stale: dict | None) -> dict:
        # best of a few short trials: a burst of load slows some of them, never speeds one up;
        # a stored peak below a rate just sustained was measured while busy: keep the larger
        flops = max(backend.matmul_flops(n, plan["dtype"]) for _ in range(3))
        return {"flops": max(flops, float((stale or {}).get("flops", 0))), "source": source, "n": n}

    record = cached_measurement(_cache_file(probe, plan), measure,
                                "matmul peak", log=log, fresh=lambda r: float(r["flops"]) >= at_least)
    return float(record["flops"]), record["source"]


def _cache_file(probe: dict, plan: dict) -> Path:
    return paths.probes_dir() / f"matmul-{device_key(probe, plan)}.json"


def main(argv: list[str]) -> int:
    """`python -m autoresearch_portable.harness.run.peak '{"probe": ..., "plan": ...}'`: measure (or
    read) the peak and print `[flops, source]` as JSON (peak_for_run)."""
    from autoresearch_portable.backends import load_backend
    from autoresearch_portable.detect.plan import Plan

    job = json.loads(argv[0])
    backend = load_backend(Plan.from_dict(job["plan"]))
    print(json.dumps(list(peak_flops(backend, job["probe"], job["plan"]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
