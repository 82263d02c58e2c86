"""Choose a backend and its kernels from a probe: a pure function of the record.

`make_plan` never touches the hardware, so every branch (H100, T4, M1 without mlx, CPUs with and
without native bf16, ...) is tested on a CPU-only machine with recorded probes.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Mapping

from autoresearch_portable.detect.peaks import datasheet_peak
from autoresearch_portable.detect.probe import DeviceProbe
from autoresearch_portable.errors import UserError

BACKENDS = ("auto", "cuda", "mps", "mlx", "cpu")

# bf16 autocast on a CPU also pays for casts and for ops that stay fp32; take it only when the
# measured bf16 matmul is clearly faster than fp32, not within measurement noise.
CPU_BF16_MIN_SPEEDUP = 1.2


class PlanError(UserError):
    """A backend that is not a valid choice, or one this machine cannot run."""


@dataclass
class Plan:
    backend: str  # "cuda" | "mps" | "mlx" | "cpu"
    device: str  # torch device string ("cuda:0", "mps", "cpu") or mlx device ("gpu", "cpu")
    dtype: str  # "bfloat16" | "float16" | "float32": compute dtype of matmuls
    dtype_mode: str  # "autocast" (torch autocast), "explicit" (casts, mlx), "none" (plain fp32)
    grad_scaler: bool  # True only with float16 autocast
    attention: str  # sliding-window layers: "flex" | "sdpa_mask" | "mlx_fast"
    compile: bool  # torch.compile / mx.compile the model
    pin_memory: bool  # only ever True on cuda
    peak_flops: float | None  # dense datasheet peak in `dtype` for known GPUs; None: measure
    peak_flops_source: str
    reasons: dict[str, str] = field(default_factory=dict)  # field -> one-line why, for doctor
    # the baseline's WINDOW_PATTERN (S = short sliding window, L = full causal), written by `arp init`
    window_pattern: str = "SSSL"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "Plan":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["reasons"] = dict(kw.get("reasons") or {})
        return cls(**kw)


def resolve_backend(backend: str | None, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(backend, where it came from). The explicit argument wins over ARP_BACKEND, then "auto".
    Raises PlanError for a name that is not a backend; no hardware needed, so callers can check
    the name before probing."""
    env = os.environ if env is None else env
    if backend is not None and str(backend).strip():
        raw, source = str(backend), f"--backend {backend}"
    elif env.get("ARP_BACKEND", "").strip():
        raw, source = env["ARP_BACKEND"], f"ARP_BACKEND={env['ARP_BACKEND']}"
    else:
        return "auto", "auto"
    name = raw.strip().lower()
    if name not in BACKENDS:
        raise PlanError(f"{source}: unknown backend {raw.strip()!r}; choose one of {'|'.join(BACKENDS)}")
    return name, source


def make_plan(
    probe: DeviceProbe, backend: str | None = None, env: Mapping[str, str] | None = None
) -> Plan:
    """The plan for `probe`. `backend` (the --backend flag) wins over env["ARP_BACKEND"]; `env`
    defaults to os.environ. Raises PlanError for an unknown backend or one this machine lacks."""
    name, source = resolve_backend(backend, env)
    if name == "auto":
        name, why = _auto_backend(probe)
    else:
        _check_available(probe, name, source)
        why = f"requested by {source}"
    plan = {"cuda": _cuda_plan, "mps": _mps_plan, "mlx": _mlx_plan, "cpu": _cpu_plan}[name](probe)
    plan.reasons = {"backend": why, **plan.reasons}
    return plan


# --------------------------------------------------------------------------------------------
# backend choice


def _auto_backend(p: DeviceProbe) -> tuple[str, str]:
    if p.cuda_available and p.gpus:
        kind = "AMD GPU through ROCm" if p.is_rocm else "NVIDIA GPU"
        return "cuda", f"auto: {kind} found ({p.gpus[0].name})"
    if p.is_apple_silicon:
        if p.mlx_version is not None and p.mlx_metal:
            return "mlx", f"auto: Apple Silicon with mlx {p.mlx_version} and Metal"
        if p.mps_available:
            missing = "mlx not installed" if p.mlx_version is None else "mlx has no Metal device"
            return "mps", f"auto: Apple Silicon, {missing}, PyTorch MPS available"
    if p.torch_version is None:
        if p.mlx_version is not None:
            return "mlx", "auto: torch not installed, mlx is (runs on its CPU device)"
        raise PlanError(f"no usable backend: neither torch nor mlx is installed (this machine: {p.summary()})")
    if p.is_apple_silicon:
        return "cpu", "auto: Apple Silicon but neither mlx with Metal nor MPS is usable"
    return "cpu", "auto: no CUDA/ROCm GPU and not an Apple Silicon Mac"


def _check_available(p: DeviceProbe, name: str, source: str) -> None:
    """Raise a one-line PlanError, naming what was found, if this machine cannot run `name`."""
    found = f"(this machine: {p.summary()})"
    if name in ("cuda", "mps", "cpu") and p.torch_version is None:
        raise PlanError(f"{source}: torch is not installed {found}")
    if name == "cuda" and not (p.cuda_available and p.gpus):
        raise PlanError(f"{source}: no CUDA GPU found {found}")
    if name == "mps" and not p.mps_available:
        if not p.is_apple_silicon:
            raise PlanError(f"{source}: MPS needs an Apple Silicon Mac {found}")
        why = "torch was built without MPS" if not p.mps_built else "MPS is not available (macOS 12.3+ needed)"
        raise PlanError(f"{source}: {why} {found}")
    if name == "mlx" and p.mlx_version is None:
        hint = "pip install mlx" if p.is_apple_silicon else "pip install 'mlx[cpu]'"
        raise PlanError(f"{source}: mlx is not installed ({hint}) {found}")


# --------------------------------------------------------------------------------------------
# per-backend policies


def _capability(cc: str | None) -> tuple[int, int] | None:
    m = re.match(r"^(\d+)\.(\d+)", cc or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def _cuda_plan(p: DeviceProbe) -> Plan:
    gpu = p.gpus[0]
    cc = _capability(gpu.compute_capability)
    where = f"{gpu.name} (compute capability {gpu.compute_capability})"
    reasons = {
        "device": f"first of {p.gpu_count} GPUs" if p.gpu_count > 1 else "the only GPU",
        "pin_memory": "pinned host memory makes host-to-GPU batch copies asynchronous",
    }
    # torch.compile's GPU code generator is triton: bundled with Linux CUDA/ROCm wheels, absent
    # from Windows ones unless installed separately; and triton needs compute capability 7.0+.
    can_compile = p.triton_available is not False and (p.is_rocm or cc is None or cc >= (7, 0))
    if p.is_rocm:
        bf16 = bool(p.cuda_bf16)
        why = f"{where} via ROCm " + ("supports bf16" if bf16 else "has no native bf16")
        attention, attn_why = "sdpa_mask", "ROCm: SDPA with a window mask (flex_attention's kernels are tuned and tested on NVIDIA)"
    elif cc is not None and cc >= (8, 0):
        bf16, why = True, f"{where}: Ampere or newer has bf16 tensor cores"
        attention, attn_why = "flex", "flex_attention skips masked-out blocks of the sliding window (block sparsity)"
    elif cc is None:
        bf16 = bool(p.cuda_bf16)
        why = f"{gpu.name}: compute capability unknown; torch says bf16 is {'' if bf16 else 'not '}supported"
        attention, attn_why = "sdpa_mask", "compute capability unknown: SDPA with a window mask works everywhere"
    elif cc >= (7, 0):
        bf16, why = False, f"{where}: Volta/Turing has fp16 tensor cores but no bf16"
        attention, attn_why = "sdpa_mask", "Volta/Turing: SDPA with a window mask (flex_attention's triton kernels target Ampere and newer)"
    else:
        bf16, why = None, f"{where}: no tensor cores; fp16 would be slow"
        attention, attn_why = "sdpa_mask", "pre-Volta GPU: SDPA with a window mask"
    if attention == "flex" and not can_compile:
        attention, attn_why = "sdpa_mask", "flex_attention is only fast compiled, and torch.compile is unavailable here"

    if bf16:
        dtype, mode, scaler = "bfloat16", "autocast", False
        reasons["grad_scaler"] = "bf16 has fp32's exponent range: no loss scaling needed"
    elif bf16 is False:
        dtype, mode, scaler = "float16", "autocast", True
        reasons["grad_scaler"] = "fp16 gradients underflow without loss scaling"
    else:
        dtype, mode, scaler = "float32", "none", False
        reasons["grad_scaler"] = "fp32: no loss scaling needed"
    reasons["dtype"] = why
    reasons["dtype_mode"] = "torch autocast: matmuls in low precision, reductions and weights in fp32" if mode == "autocast" else "plain fp32"
    reasons["attention"] = attn_why
    if can_compile:
        reasons["compile"] = "torch.compile fuses the small ops; compile time is excluded from the budget"
    elif p.triton_available is False:
        reasons["compile"] = "triton is not installed (torch.compile's GPU backend), so eager mode"
    else:
        reasons["compile"] = "triton does not support GPUs before compute capability 7.0"
    peak, source = datasheet_peak(gpu.name, dtype)
    reasons["peak_flops"] = source
    reasons["window_pattern"] = (
        "the original's pattern: flex_attention skips the blocks a short window masks out" if attention == "flex"
        else "the original's pattern (a dense window mask saves no time here; kept, not measured)")
    return Plan(
        backend="cuda", device="cuda:0", dtype=dtype, dtype_mode=mode, grad_scaler=scaler,
        attention=attention, compile=can_compile, pin_memory=True,
        peak_flops=peak, peak_flops_source=source, reasons=reasons, window_pattern="SSSL",
    )


_MEASURE = "measure: matmul peak measured on this device"


def _mps_plan(p: DeviceProbe) -> Plan:
    reasons = {
        "device": "the Apple GPU through PyTorch MPS",
        "dtype": "fp32: Apple GPUs gain little from bf16, and MPS rejects some mixed-dtype in-place ops",
        "dtype_mode": "plain fp32, no autocast",
        "grad_scaler": "fp32: no loss scaling needed",
        "attention": "SDPA with a sliding-window mask (flex_attention is CUDA-only)",
        "compile": "torch.compile is unreliable on MPS",
        "pin_memory": "pinned memory is CUDA-only (unified memory needs no staging)",
        "peak_flops": "no datasheet figure for Apple GPUs: matmul peak measured on this device",
        "window_pattern": "all layers full causal: MPS has no fused attention backward, so training builds the "
                          "full (T, T) scores whatever the window, and a window mask only adds work",
    }
    return Plan(
        backend="mps", device="mps", dtype="float32", dtype_mode="none", grad_scaler=False,
        attention="sdpa_mask", compile=False, pin_memory=False,
        peak_flops=None, peak_flops_source=_MEASURE, reasons=reasons, window_pattern="L",
    )


def device_name(probe: Mapping, backend: str) -> str:
    """What a result calls the device (a recorded probe as a dict, the plan's backend): the GPU's
    name on CUDA, otherwise the CPU's model (on a Mac, the chip), with fallbacks so it is never
    empty."""
    gpus = probe.get("gpus") or []
    if backend == "cuda" and gpus:
        return gpus[0].get("name") or "cuda"
    if backend in ("mps", "mlx") and probe.get("os") == "Darwin" and not probe.get("cpu_model"):
        return "Apple Silicon"
    return probe.get("cpu_model") or probe.get("machine") or "cpu"


def apple_chip_generation(cpu_model: str | None) -> int | None:
    """1 for "Apple M1 Pro", 4 for "Apple M4 Max", None if not an M-series name."""
    m = re.search(r"\bApple M(\d+)\b", cpu_model or "")
    return int(m.group(1)) if m else None


def _mlx_plan(p: DeviceProbe) -> Plan:
    reasons = {
        "grad_scaler": "mlx: no loss scaling (bf16 or fp32 only)",
        "attention": "mx.fast.scaled_dot_product_attention with a window mask",
        "pin_memory": "not a torch/CUDA backend",
        "peak_flops": "no datasheet figure for Apple GPUs or CPUs: matmul peak measured on this device",
    }
    if p.mlx_metal:
        gen = apple_chip_generation(p.cpu_model)
        if gen is not None:
            native_bf16, chip = gen >= 2, p.cpu_model
        else:  # unnamed Apple chip: the CPU's BF16 feature arrived with the GPU's, on M2
            native_bf16, chip = "bf16" in p.cpu_flags, p.cpu_model or "Apple GPU"
        device = "gpu"
        reasons["device"] = "the Apple GPU through Metal"
        if native_bf16:
            dtype, mode = "bfloat16", "explicit"
            reasons["dtype"] = f"{chip}: M2 and later have native bf16; halves memory traffic"
            reasons["dtype_mode"] = "mlx has no autocast: weights and activations cast to bf16, optimizer state in fp32"
        else:
            dtype, mode = "float32", "none"
            reasons["dtype"] = f"{chip}: M1 has no native bf16, emulated bf16 is slower than fp32"
            reasons["dtype_mode"] = "plain fp32"
        compile_, reasons["compile"] = True, "mx.compile fuses elementwise ops into fewer Metal kernels"
        window, reasons["window_pattern"] = "L", (
            "all layers full causal: mlx's fused attention has no backward on Metal, so training builds the "
            "full (T, T) scores whatever the window, and a window mask only adds work")
    else:
        device, dtype, mode = "cpu", "float32", "none"
        reasons["device"] = "mlx's CPU device (no Metal here): for correctness and parity, not speed"
        reasons["dtype"] = "fp32: the CPU device serves correctness and parity checks, where fp32 is the reference"
        reasons["dtype_mode"] = "plain fp32"
        compile_, reasons["compile"] = False, "mx.compile gains little on the CPU device and costs start-up time"
        window, reasons["window_pattern"] = "SSSL", "the original's pattern, as the torch CPU baseline it is checked against"
    return Plan(
        backend="mlx", device=device, dtype=dtype, dtype_mode=mode, grad_scaler=False,
        attention="mlx_fast", compile=compile_, pin_memory=False,
        peak_flops=None, peak_flops_source=_MEASURE, reasons=reasons, window_pattern=window,
    )


def cpu_bf16_decision(p: DeviceProbe) -> tuple[bool, str]:
    """Whether a CPU run should use bf16 autocast, and why. Needs native bf16 (without it bf16
    runs emulated, up to hundreds of times slower) and, if measured, a real matmul speed-up."""
    if not p.cpu_native_bf16:
        have = ", ".join(f for f in p.cpu_flags if f.startswith(("avx512f", "avx2", "asimd", "sve"))) or "no relevant flags"
        return False, f"no native bf16 on this CPU ({have}; needs avx512_bf16, amx_bf16 or arm bf16): fp32"
    native = ", ".join(f for f in p.cpu_flags if f in ("avx512_bf16", "amx_bf16", "bf16"))
    m = p.cpu_matmul_gflops or {}
    fp32, bf16 = m.get("float32"), m.get("bfloat16")
    if not fp32 or not bf16:
        return True, f"native bf16 ({native}); not measured"
    ratio = bf16 / fp32
    measured = f"bf16 matmul {bf16:.0f} vs fp32 {fp32:.0f} GFLOP/s ({ratio:.2f}x)"
    if ratio >= CPU_BF16_MIN_SPEEDUP:
        return True, f"native bf16 ({native}) and {measured}"
    return False, f"native bf16 ({native}) but {measured}, under the {CPU_BF16_MIN_SPEEDUP}x needed: fp32"


def _cpu_plan(p: DeviceProbe) -> Plan:
    use_bf16, why = cpu_bf16_decision(p)
    cores = p.usable_cores or p.logical_cores
    reasons = {
        "device": "the CPU" + (f" ({cores} cores)" if cores else ""),
        "dtype": why,
        "dtype_mode": "torch autocast to bf16 on the CPU" if use_bf16 else "plain fp32",
        "grad_scaler": "no fp16: no loss scaling needed",
        "attention": "SDPA with a sliding-window mask (flex_attention is fast only on CUDA)",
        "compile": f"compiling on {cores or 'a few'} cores would eat much of the start-up budget",
        "pin_memory": "pinned memory is CUDA-only",
        "peak_flops": "no datasheet figure for CPUs: matmul peak measured on this device",
        "window_pattern": "the original's pattern; the measured CPU baselines (benchmarks/) use it",
    }
    return Plan(
        backend="cpu", device="cpu",
        dtype="bfloat16" if use_bf16 else "float32",
        dtype_mode="autocast" if use_bf16 else "none",
        grad_scaler=False, attention="sdpa_mask", compile=False, pin_memory=False,
        peak_flops=None, peak_flops_source=_MEASURE, reasons=reasons,
    )


# --- what memory a run may use on this device (sizing and the batch autotune respect it) ---

def attention_materialized(plan: dict) -> bool:
    """Whether training builds the full attention scores. MPS: torch's SDPA there has no fused
    backward. MLX on Metal: mx.fast.scaled_dot_product_attention has no fused backward either
    (its VJP falls back to the composed ops; mlx PR #2762 added a fused one for CUDA only), and
    mlx's CPU device runs the same fallback. CUDA uses flash/flex kernels; the CPU's memory is
    RAM, where the per-token estimate has served."""
    return plan["backend"] in ("mps", "mlx")


# MPSNDArray refuses (a hard abort) any array above 2**32 bytes: "total bytes of NDArray > 2**32"
MPS_MAX_ARRAY_BYTES = 2**32


def memory_cap(probe: dict, plan: dict) -> tuple[float | None, str]:
    """(bytes a run may use on this device, where that number comes from)."""
    gpus = probe.get("gpus") or []
    if plan["backend"] == "cuda" and gpus and gpus[0].get("total_memory"):
        return float(gpus[0]["total_memory"]), f"memory of {gpus[0].get('name', 'GPU 0')}"
    metal = probe.get("mlx_metal_info") or {}
    if plan["backend"] == "mps" and probe.get("mps_recommended_max_memory"):
        return float(probe["mps_recommended_max_memory"]), "Metal's recommended working set (torch.mps)"
    if plan["backend"] in ("mps", "mlx") and plan["device"] != "cpu" and metal.get("max_recommended_working_set_size"):
        return float(metal["max_recommended_working_set_size"]), "Metal's recommended working set (mlx)"
    if probe.get("memory_bytes"):
        return float(probe["memory_bytes"]), "total RAM"
    return None, "unknown"


def largest_array_bytes(probe: dict, plan: dict) -> float | None:
    """The largest single array the device allows, where that limit can bite: MPS's 4 GiB, and
    Metal's maxBufferLength for MLX (mlx device_info)."""
    if plan["backend"] == "mps":
        return float(MPS_MAX_ARRAY_BYTES)
    if plan["backend"] == "mlx" and plan["device"] != "cpu":
        limit = (probe.get("mlx_metal_info") or {}).get("max_buffer_length")
        return float(limit) if limit else None
    return None
