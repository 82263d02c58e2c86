"""Other processes and clock limits on NVIDIA GPUs, for the load monitor (detect/load.py): what
the driver tells through pynvml when importable, else nvidia-smi, else nothing. Never required."""

from __future__ import annotations

import os
import shutil
import subprocess

import psutil

# NVML clock-limit reasons that mean throttling. The software power cap is left out: a busy GPU
# sits at its power limit by design, on quiet runs and in calibration alike.
GPU_THROTTLE_BITS = {0x8: "hardware slowdown", 0x20: "software thermal slowdown",
                     0x40: "hardware thermal slowdown", 0x80: "hardware power brake"}
GPU_EVERY = 5  # query the GPU every 5th load sample: nvidia-smi costs tens of milliseconds of CPU


def _mib(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # "[N/A]" where the driver does not say (some platforms, MIG)
        return 0.0


def visible_indices(value: str | None, uuids: list[str]) -> list[int]:
    """NVML indices of the GPUs this process may use: those CUDA_VISIBLE_DEVICES names (indices or
    UUID prefixes, read as CUDA does: up to the first it does not know), all when it is unset.
    Ray sets it to one GPU per experiment, so the experiments on a node's other GPUs are not load
    on this one. Indices are taken in NVML's (PCI bus) order, which is CUDA's where a node's GPUs
    are all one model (CUDA otherwise lists the fastest first)."""
    if value is None:
        return list(range(len(uuids)))
    out: list[int] = []
    for item in (x.strip() for x in value.split(",")):
        found = ([int(item)] if item.isdigit() and int(item) < len(uuids) else
                 [i for i, u in enumerate(uuids) if item and not item.isdigit() and u.startswith(item)][:1])
        if not found or found[0] in out:
            break
        out += found
    return out


class GpuWatch:
    """Other processes on NVIDIA GPUs, by pynvml when importable (memory, SM utilisation, clock
    limits), else nvidia-smi (memory, clock limits), else nothing. Processes whose pid does not
    exist here belong to another pid namespace (a container): the run's own may be among them,
    so they are only noted."""

    def __init__(self):
        self.nvml = self.smi = None
        self.handles: list = []
        self.last_ts: dict[int, int] = {}
        self.others: dict[int, dict] = {}
        self.utils: list[float] = []
        self.util_known = False
        self.foreign: set[int] = set()
        self.throttle: set[str] = set()
        self.sampled = False  # a query answered
        try:
            import pynvml

            pynvml.nvmlInit()
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            if visible is not None:  # only this run's GPUs (one per experiment under arp submit)
                uuids = [u.decode() if isinstance(u, bytes) else str(u)
                         for u in (pynvml.nvmlDeviceGetUUID(h) for h in self.handles)]
                self.handles = [self.handles[i] for i in visible_indices(visible, uuids)]
            self.nvml = pynvml
        except Exception:
            self.smi = shutil.which("nvidia-smi")
        self.reasons_field = "clocks_event_reasons.active"

    def sample(self, tree_pids: set[int]) -> None:
        if self.nvml is None and self.smi is None:
            return
        try:
            procs, util_by_pid, reasons = self._query_nvml() if self.nvml else self._query_smi()
        except Exception:
            return
        self.sampled = True
        others_util = 0.0
        for pid, mem_mb in procs:
            if pid in tree_pids:
                continue
            if not psutil.pid_exists(pid):
                self.foreign.add(pid)
                continue
            try:
                name = psutil.Process(pid).name()
            except psutil.Error:
                name = "?"
            seen = self.others.setdefault(pid, dict(pid=pid, name=name, memory_mb=0.0))
            seen["memory_mb"] = max(seen["memory_mb"], mem_mb or 0.0)
            others_util += util_by_pid.get(pid, 0.0)
        if self.util_known:
            self.utils.append(others_util)
        self.throttle |= {name for bit, name in GPU_THROTTLE_BITS.items() if any(r & bit for r in reasons)}

    def _query_nvml(self):
        nv, procs, util, reasons = self.nvml, [], {}, []
        for i, h in enumerate(self.handles):
            procs += [(p.pid, (p.usedGpuMemory or 0) / 2**20) for p in nv.nvmlDeviceGetComputeRunningProcesses(h)]
            try:
                samples = nv.nvmlDeviceGetProcessUtilization(h, self.last_ts.get(i, 0))
                self.util_known = True
                for s in samples:  # several per process since the last query: their mean
                    util.setdefault(s.pid, []).append(float(s.smUtil))
                    self.last_ts[i] = max(self.last_ts.get(i, 0), s.timeStamp)
            except nv.NVMLError as e:  # NOT_FOUND: no samples since the last query
                self.util_known = self.util_known or "Not Found" in str(e)
            get = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or nv.nvmlDeviceGetCurrentClocksThrottleReasons
            reasons.append(int(get(h)))
        return procs, {pid: sum(v) / len(v) for pid, v in util.items()}, reasons

    def _query_smi(self):
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        only = ["-i", visible] if visible else []  # nvidia-smi takes indices and UUIDs alike

        def smi(*args):
            return subprocess.run([self.smi, *args, "--format=csv,noheader,nounits", *only], capture_output=True,
                                  text=True, timeout=10)
        out = smi("--query-compute-apps=pid,used_memory").stdout
        procs = [(int(a), _mib(b)) for a, b in (l.split(",")[:2] for l in out.splitlines() if "," in l)
                 if a.strip().isdigit()]
        r = smi(f"--query-gpu={self.reasons_field}")
        if r.returncode != 0 and self.reasons_field.startswith("clocks_event"):
            self.reasons_field = "clocks_throttle_reasons.active"  # drivers before the rename
            r = smi(f"--query-gpu={self.reasons_field}")
        reasons = [int(l.strip(), 16) for l in r.stdout.splitlines() if l.strip().startswith("0x")]
        return procs, {}, reasons

    def finish(self, r) -> tuple[bool, list[str]]:
        """Fill the LoadReport `r`'s GPU fields: (whether the driver answered, throttle reasons seen)."""
        r.gpu_others = sorted(self.others.values(), key=lambda p: -p["memory_mb"])
        r.gpu_others_util_mean = sum(self.utils) / len(self.utils) if self.utils else None
        if self.foreign:
            r.notes.append(f"{len(self.foreign)} GPU process(es) from another pid namespace (a container?): "
                           "cannot tell whether they are the run's own")
        if self.nvml is None and self.smi is None:
            r.notes.append("GPU load unknown: neither pynvml nor nvidia-smi is available")
        if self.nvml is not None:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass
        return self.sampled, sorted(self.throttle)
