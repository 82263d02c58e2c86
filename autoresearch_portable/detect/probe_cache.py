"""The probe, once per boot. Every `arp train` plans from a probe, and probing imports torch: 2.5-3 s
on a 2-core CPU, paid in the parent before train.py may start. Nothing the probe reads changes
while the machine stays up with the same interpreter, the same packages, the same visible devices
and the same cores, so the record is kept under a key made of exactly those: a reboot, another
torch, a CUDA_VISIBLE_DEVICES or a taskset probes afresh. `arp doctor` always probes afresh."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import sys

import psutil

from autoresearch_portable import paths
from autoresearch_portable.detect.probe import DeviceProbe, probe
from autoresearch_portable.fsutil import atomic_write_json, read_json

PACKAGES = ("torch", "mlx", "mlx-metal", "triton")  # what the probe imports or looks for
DEVICE_ENV = ("CUDA_", "HIP_", "ROCR_", "MLX_", "PYTORCH_")  # what changes which devices torch sees


def probe_key() -> str:
    parts = [sys.executable, sys.version, f"boot {psutil.boot_time():.0f}", f"cores {_usable_cores()}"]
    for name in PACKAGES:
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name} -")
    parts += sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith(DEVICE_ENV))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def probe_this_boot() -> DeviceProbe:
    """The probe of this machine, taken once per key. A probe with a failed step (`notes`) or a CPU
    measurement made under load serves this command only: the next one probes again."""
    path = paths.probes_dir() / f"device-{probe_key()}.json"
    kept = read_json(path)
    if kept is not None:
        try:
            return DeviceProbe.from_dict(kept)
        except (ValueError, TypeError):
            pass
    found = probe()
    if not found.notes and not found.cpu_matmul_load:
        atomic_write_json(path, found.to_dict())
    return found


def _usable_cores() -> int | None:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
