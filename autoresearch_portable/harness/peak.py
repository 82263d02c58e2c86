"""The device's peak FLOP/s for MFU: the datasheet figure when the plan has one (known GPUs in
their tensor-core dtype), otherwise a measured dense matmul rate in the compute dtype, cached per
device so it costs a second once (not cached when measured under load: harness/load.py)."""

from __future__ import annotations

import re

from autoresearch_portable import paths
from autoresearch_portable.detect.plan import device_name
from autoresearch_portable.harness.load import cached_measurement


def device_key(probe: dict, plan: dict) -> str:
    """A file-name-safe identity of 'this device running this plan'."""
    raw = f"{plan['backend']}-{plan['device']}-{device_name(probe, plan['backend'])}-{plan['dtype']}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("_")[:120]


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

    record = cached_measurement(paths.probes_dir() / f"matmul-{device_key(probe, plan)}.json", measure,
                                "matmul peak", log=log, fresh=lambda r: float(r["flops"]) >= at_least)
    return float(record["flops"]), record["source"]
