"""Read the machine into a plain record (`DeviceProbe`).

Everything a plan is chosen from lives in this record and nothing else, so `make_plan` can be a
pure function tested with recorded probes of machines we do not have. Every step here is guarded:
a missing torch or mlx, an unreadable /proc file or a failing driver query gives None/False and a
line in `notes`, never an exception. torch and mlx are imported lazily, only inside `probe()`.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

SCHEMA = 1

# CPU flags that matter for choosing a compute dtype and kernels; the rest of /proc/cpuinfo is noise.
X86_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c",
    "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
)
ARM_FLAGS = ("asimd", "asimdhp", "fphp", "sve", "sve2", "bf16", "i8mm", "sme")

# macOS reports ARM features as sysctl hw.optional.* keys; map them to Linux's flag names.
_MAC_ARM_FLAGS = {
    "hw.optional.AdvSIMD": "asimd",
    "hw.optional.neon": "asimd",
    "hw.optional.arm.FEAT_FP16": "fphp",
    "hw.optional.arm.FEAT_BF16": "bf16",
    "hw.optional.arm.FEAT_I8MM": "i8mm",
    "hw.optional.arm.FEAT_SME": "sme",
}

# Linux on ARM has no "model name" in /proc/cpuinfo; name the common server cores by part number.
_ARM_PARTS = {
    ("0x41", "0xd0c"): "ARM Neoverse-N1",
    ("0x41", "0xd40"): "ARM Neoverse-V1",
    ("0x41", "0xd49"): "ARM Neoverse-N2",
    ("0x41", "0xd4f"): "ARM Neoverse-V2",
    ("0x41", "0xd8e"): "ARM Neoverse-N3",
    ("0x41", "0xd84"): "ARM Neoverse-V3",
}


@dataclass
class GpuInfo:
    """One accelerator as torch's CUDA API sees it (NVIDIA, or AMD through ROCm)."""

    name: str
    total_memory: int | None = None  # bytes
    compute_capability: str | None = None  # "9.0"; on ROCm torch maps gfx942 to "9.4"
    multiprocessors: int | None = None
    arch: str | None = None  # ROCm gcnArchName, e.g. "gfx942:sramecc+:xnack-"

    @classmethod
    def from_dict(cls, d: dict) -> "GpuInfo":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class DeviceProbe:
    """What was found on one machine. All fields are JSON-plain; unknown = None."""

    schema: int = SCHEMA
    # operating system and interpreter
    os: str = ""  # platform.system(): "Linux" | "Darwin" | "Windows"
    os_version: str | None = None  # "Debian GNU/Linux 12 (bookworm)", "14.6.1", ...
    kernel: str | None = None  # platform.release()
    machine: str = ""  # "x86_64" | "arm64" | "aarch64" | "AMD64"
    python_version: str = ""
    # CPU and memory
    cpu_model: str | None = None
    logical_cores: int | None = None
    usable_cores: int | None = None  # cores this process may run on (containers, taskset)
    memory_bytes: int | None = None
    cpu_flags: list[str] = field(default_factory=list)
    # torch
    torch_version: str | None = None  # None: torch not importable
    torch_cuda: str | None = None  # torch.version.cuda
    torch_hip: str | None = None  # torch.version.hip (ROCm build)
    torch_cpu_capability: str | None = None  # "AVX512", "AVX2", "DEFAULT", ...
    triton_available: bool | None = None  # torch.compile's GPU code generator
    cuda_available: bool = False
    gpus: list[GpuInfo] = field(default_factory=list)
    cuda_bf16: bool | None = None  # native bf16 on GPU 0 (emulation not counted)
    mps_built: bool = False
    mps_available: bool = False
    mps_recommended_max_memory: int | None = None  # bytes: Metal's recommendedMaxWorkingSetSize
    # mlx
    mlx_version: str | None = None  # None: mlx not importable
    mlx_metal: bool = False
    mlx_metal_info: dict | None = None  # mx.device_info() on Metal: architecture, memory_size, ...
    # quick CPU matmul measurement (CPU-only and Apple machines): GFLOP/s per dtype
    cpu_matmul_gflops: dict[str, float] | None = None
    cpu_matmul_load: str | None = None  # set when measured while the machine was busy: not cached, why
    notes: list[str] = field(default_factory=list)  # probe steps that failed, and why
    provenance: str | None = None  # recorded probes: how this record was made (None when probed live)

    # --- derived facts, used by the plan and the doctor ---

    @property
    def is_apple_silicon(self) -> bool:
        # A Rosetta python reports x86_64, but the brand string still names the Apple chip.
        return self.os == "Darwin" and (
            self.machine == "arm64" or (self.cpu_model or "").startswith("Apple")
        )

    @property
    def is_rocm(self) -> bool:
        return self.torch_hip is not None

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)

    @property
    def cpu_native_bf16(self) -> bool:
        """The CPU executes bf16 dot products in hardware (x86 AVX512-BF16 or AMX, ARM BF16)."""
        flags = set(self.cpu_flags)
        return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})

    def summary(self) -> str:
        """One line naming the machine, for error messages."""
        parts = [self.cpu_model or f"{self.os} {self.machine}".strip() or "unknown CPU"]
        if self.logical_cores:
            parts.append(f"{self.logical_cores} cores")
        if self.gpus:
            parts.append(f"{self.gpu_count}x {self.gpus[0].name}")
        if self.torch_version is None:
            parts.append("torch not installed")
        elif self.torch_cuda is None and self.torch_hip is None:
            parts.append(f"torch {self.torch_version} built without CUDA")
        elif not self.cuda_available:
            build = f"CUDA {self.torch_cuda}" if self.torch_cuda else f"ROCm {self.torch_hip}"
            parts.append(f"torch {self.torch_version} ({build}) sees no GPU")
        else:
            parts.append(f"torch {self.torch_version}")
        if self.mlx_version is not None:
            parts.append(f"mlx {self.mlx_version}" + (" with Metal" if self.mlx_metal else ""))
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DeviceProbe":
        """Tolerant of missing keys (recorded probes may leave fields out) and of extra ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["gpus"] = [g if isinstance(g, GpuInfo) else GpuInfo.from_dict(g) for g in kw.get("gpus") or []]
        return cls(**kw)


# --------------------------------------------------------------------------------------------
# probing


def probe(measure: bool = True) -> DeviceProbe:
    """Probe this machine. With `measure`, and no CUDA GPU, also time a few CPU matmuls in fp32
    and bf16 (about 0.3 s) so the plan can check that bf16 really is faster here."""
    p = DeviceProbe(
        os=platform.system(),
        kernel=platform.release() or None,
        machine=platform.machine(),
        python_version=platform.python_version(),
    )
    _guard(p, "os version", _probe_os_version, p)
    _guard(p, "cpu", _probe_cpu, p)
    _guard(p, "torch", _probe_torch, p)
    _guard(p, "mlx", _probe_mlx, p)
    if measure and not p.cuda_available and p.torch_version is not None:
        _guard(p, "cpu matmul measurement", _cached_cpu_matmul, p)
    return p


def _guard(p: DeviceProbe, what: str, fn, *args) -> Any:
    try:
        return fn(*args)
    except Exception as e:  # a failing query must never stop the probe
        p.notes.append(f"{what}: {type(e).__name__}: {e}".splitlines()[0][:200])
        return None


def _probe_os_version(p: DeviceProbe) -> None:
    if p.os == "Darwin":
        p.os_version = platform.mac_ver()[0] or None
    elif p.os == "Linux":
        try:
            with open("/etc/os-release", encoding="utf-8") as f:
                for line in f:
                    if line.startswith("PRETTY_NAME="):
                        p.os_version = line.split("=", 1)[1].strip().strip('"') or None
        except OSError:
            p.os_version = None
    else:
        p.os_version = platform.version() or None


def _probe_cpu(p: DeviceProbe) -> None:
    p.logical_cores = os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        p.usable_cores = len(os.sched_getaffinity(0))
    else:
        p.usable_cores = p.logical_cores
    if p.os == "Linux":
        _probe_cpu_linux(p)
    elif p.os == "Darwin":
        _probe_cpu_macos(p)
    elif p.os == "Windows":
        _probe_cpu_windows(p)
    if p.memory_bytes is None and hasattr(os, "sysconf"):
        try:
            p.memory_bytes = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            pass


def parse_cpuinfo(text: str) -> tuple[str | None, list[str]]:
    """CPU model and the relevant flags from Linux /proc/cpuinfo (x86 `flags`, ARM `Features`)."""
    model = None
    flags: set[str] = set()
    implementer = part = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and model is None:
            model = value
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
        elif key == "CPU implementer" and implementer is None:
            implementer = value.lower()
        elif key == "CPU part" and part is None:
            part = value.lower()
    if model is None and implementer:
        model = _ARM_PARTS.get((implementer, part or ""), f"ARM implementer {implementer} part {part}")
    wanted = X86_FLAGS + ARM_FLAGS
    return model, [f for f in wanted if f in flags]


def _probe_cpu_linux(p: DeviceProbe) -> None:
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
        p.cpu_model, p.cpu_flags = parse_cpuinfo(f.read())
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    p.memory_bytes = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass


def parse_sysctl(text: str) -> dict[str, str]:
    """`sysctl a b c` output ("name: value" lines) as a dict."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _probe_cpu_macos(p: DeviceProbe) -> None:
    keys = ["machdep.cpu.brand_string", "hw.memsize", "hw.logicalcpu", "hw.optional",
            "machdep.cpu.features", "machdep.cpu.leaf7_features"]
    # One call for all keys; keys this chip lacks print to stderr and are simply absent.
    r = subprocess.run(["sysctl", *keys], capture_output=True, text=True, timeout=5)
    s = parse_sysctl(r.stdout)
    p.cpu_model = s.get("machdep.cpu.brand_string") or None
    if s.get("hw.memsize", "").isdigit():
        p.memory_bytes = int(s["hw.memsize"])
    if s.get("hw.logicalcpu", "").isdigit():
        p.logical_cores = int(s["hw.logicalcpu"])
    flags = {flag for key, flag in _MAC_ARM_FLAGS.items() if s.get(key) == "1"}
    # Intel Macs list x86 features in upper case ("AVX2", "AVX512F", "FMA").
    for key in ("machdep.cpu.features", "machdep.cpu.leaf7_features"):
        flags |= {w.lower().replace(".", "_") for w in s.get(key, "").split()}
    p.cpu_flags = [f for f in X86_FLAGS + ARM_FLAGS if f in flags]


def _probe_cpu_windows(p: DeviceProbe) -> None:
    import ctypes
    import winreg  # type: ignore[import-not-found]

    try:
        with winreg.OpenKey(
            winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
        ) as k:
            p.cpu_model = str(winreg.QueryValueEx(k, "ProcessorNameString")[0]).strip()
    except OSError:
        p.cpu_model = platform.processor() or None

    class MemStatus(ctypes.Structure):
        _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                    ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                    ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                    ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                    ("sullAvailExtendedVirtual", ctypes.c_ulonglong)]

    m = MemStatus()
    m.dwLength = ctypes.sizeof(MemStatus)
    if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(m)):  # type: ignore[attr-defined]
        p.memory_bytes = int(m.ullTotalPhys)
    # Windows has no flag list to read; _probe_torch fills the bf16/AMX flags from torch's cpuinfo.


def _probe_torch(p: DeviceProbe) -> None:
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install raising OSError on its libraries
        p.notes.append(f"torch: not importable ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
        return
    p.torch_version = str(torch.__version__)
    p.torch_cuda = getattr(torch.version, "cuda", None)
    p.torch_hip = getattr(torch.version, "hip", None)
    p.torch_cpu_capability = _guard(p, "torch cpu capability", torch.backends.cpu.get_cpu_capability)
    _guard(p, "torch cpu features", _torch_cpu_flags, p, torch)
    import importlib.util

    p.triton_available = importlib.util.find_spec("triton") is not None
    p.cuda_available = bool(_guard(p, "torch.cuda.is_available", torch.cuda.is_available))
    if p.cuda_available:
        _guard(p, "cuda devices", _probe_cuda_devices, p, torch)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None:
        p.mps_built = bool(_guard(p, "mps built", mps.is_built))
        p.mps_available = bool(_guard(p, "mps available", mps.is_available))
    recommended = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)  # torch >= 2.5
    if p.mps_available and recommended is not None:
        p.mps_recommended_max_memory = _guard(p, "mps recommended max memory", lambda: int(recommended()))


def _torch_cpu_flags(p: DeviceProbe, torch) -> None:
    """torch's own cpuinfo, for systems whose flags we could not read (Windows)."""
    if p.cpu_flags or p.machine.lower() not in ("x86_64", "amd64", "x86"):
        return
    cpu = torch.cpu
    found = []
    if getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
        found += ["avx512f", "avx512_bf16"]
    if getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        found += ["amx_tile", "amx_bf16"]  # every AMX CPU so far has AMX-BF16
    if found:
        p.cpu_flags = [f for f in X86_FLAGS if f in found]
        p.notes.append("cpu flags: read from torch (no OS flag list)")


def _probe_cuda_devices(p: DeviceProbe, torch) -> None:
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        major, minor = getattr(props, "major", None), getattr(props, "minor", None)
        p.gpus.append(
            GpuInfo(
                name=str(props.name),
                total_memory=int(props.total_memory),
                compute_capability=f"{major}.{minor}" if major is not None else None,
                multiprocessors=getattr(props, "multi_processor_count", None),
                arch=getattr(props, "gcnArchName", None) if p.torch_hip else None,
            )
        )
    try:
        # Recent torch reports emulated bf16 (slow, e.g. on T4) as supported unless told not to.
        p.cuda_bf16 = bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:
        p.cuda_bf16 = bool(torch.cuda.is_bf16_supported())


def _probe_mlx(p: DeviceProbe) -> None:
    try:
        import mlx.core as mx
    except Exception as e:
        if not isinstance(e, ImportError):
            p.notes.append(f"mlx: not importable ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
        return
    version = getattr(mx, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = _guard(p, "mlx version", dist_version, "mlx") or "unknown"
    p.mlx_version = str(version)
    p.mlx_metal = bool(_guard(p, "mlx metal", mx.metal.is_available))
    if p.mlx_metal:
        info_fn = getattr(mx, "device_info", None) or getattr(mx.metal, "device_info", None)
        info = _guard(p, "mlx device info", info_fn) if info_fn else None
        if isinstance(info, dict):
            p.mlx_metal_info = {k: v for k, v in info.items() if isinstance(v, (str, int, float))}


MEASURE_BUDGET_S = 0.25  # timed reps of the CPU matmul measurement, both dtypes together


def _cached_cpu_matmul(p: DeviceProbe) -> None:
    """The measurement decides the CPU's dtype, and the dtype is part of the device's identity
    (its calibration profile), so one noisy measurement under background load must not flip it
    from run to run: it is measured once per CPU and torch version and cached, but not when other
    processes loaded the machine while it measured (then it serves this command only, with a
    note). A cached result is measured again only after `arp doctor --remeasure` deletes it."""
    import re

    from autoresearch_portable import paths
    from autoresearch_portable.detect.load import cached_measurement

    def measure(_stale) -> dict | None:
        _measure_cpu_matmul(p)
        return {"gflops": p.cpu_matmul_gflops} if p.cpu_matmul_gflops else None

    key = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{p.cpu_model}-{p.usable_cores}-{p.torch_version}")[:120]
    # the why goes into the probe (`arp doctor` shows it, the ledger keeps it), not onto stderr:
    # every command probes, and a failing one must say one line, its error
    record = cached_measurement(paths.probes_dir() / f"cpu-matmul-{key}.json", measure, "CPU matmul rates",
                                log=lambda why: setattr(p, "cpu_matmul_load", why))
    if record:
        p.cpu_matmul_gflops = record["gflops"]


def _measure_cpu_matmul(p: DeviceProbe) -> None:
    """Best-of-N square matmul GFLOP/s in fp32 and bf16. The dtypes alternate rep by rep, so a
    burst of background load hits both alike and their ratio (what the plan uses) stays fair."""
    import torch

    cases = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        case = _guard(p, f"{name} matmul", _matmul_case, torch, dtype, MEASURE_BUDGET_S / 8)
        if case is not None:
            cases[name] = case
    start, reps = time.perf_counter(), 0
    with torch.no_grad():
        while cases and (reps < 2 or (time.perf_counter() - start < MEASURE_BUDGET_S and reps < 10)):
            for case in cases.values():
                case["best"] = min(case["best"], _time_mm(torch, case["a"], case["b"]))
            reps += 1
    p.cpu_matmul_gflops = {
        name: round(2 * c["n"] ** 3 / max(c["best"], 1e-9) / 1e9, 1) for name, c in cases.items()
    }


def _time_mm(torch, a, b) -> float:
    t = time.perf_counter()
    torch.mm(a, b)
    return time.perf_counter() - t


def _matmul_case(torch, dtype, max_call_s: float) -> dict:
    """Operands for the measurement. A 256² scout picks the largest size (up to 1024²) whose call
    fits `max_call_s`, so a CPU that runs bf16 hundreds of times slower (no native support) still
    finishes in a fraction of a second."""
    with torch.no_grad():
        n = 256
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        _time_mm(torch, a, b)  # the first call pays for kernel selection / JIT
        best = _time_mm(torch, a, b)
        for size in (1024, 512):
            if best * (size / 256) ** 3 < max_call_s:
                n, best = size, float("inf")
                a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
                _time_mm(torch, a, b)
                break
    return {"a": a, "b": b, "n": n, "best": best}


if __name__ == "__main__":  # python -m autoresearch_portable.detect.probe > my_machine.json
    import json

    json.dump(probe().to_dict(), sys.stdout, indent=2)
    print()
