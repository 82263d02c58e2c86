"""Datasheet peak FLOP/s of known GPUs, for MFU.

Dense (no 2:4 sparsity) tensor-core peaks, per torch device, from the vendors' public datasheets.
Matched on the name torch reports. A GPU that is not here (or a variant whose figure differs,
such as laptop parts or the H200 NVL) gets no number: the harness measures a matmul peak instead.
Never add a figure that is not on a datasheet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Peak:
    pattern: str  # regex searched in torch's device name
    label: str
    flops: float  # dense FLOP/s in each of `dtypes`
    dtypes: tuple[str, ...]  # compute dtypes the figure applies to
    note: str = ""


_BF16_FP16 = ("bfloat16", "float16")

# Order matters: the first match wins, so specific variants come before the general name.
PEAKS: tuple[Peak, ...] = (
    # Hopper. torch calls the SXM part "NVIDIA H100 80GB HBM3".
    Peak(r"\bH100\b.*\bNVL\b", "NVIDIA H100 NVL", 835e12, _BF16_FP16),
    Peak(r"\bH100\b.*\bPCIe\b", "NVIDIA H100 PCIe", 756e12, _BF16_FP16),
    Peak(r"\bH100\b.*(\bHBM3\b|\bSXM)", "NVIDIA H100 SXM", 989.5e12, _BF16_FP16),
    Peak(r"\bH200\b(?!.*\bNVL\b)", "NVIDIA H200", 989.5e12, _BF16_FP16),
    # Ampere / Ada / Blackwell
    Peak(r"\bA100\b", "NVIDIA A100", 312e12, _BF16_FP16),
    Peak(r"\bL40S\b", "NVIDIA L40S", 362e12, _BF16_FP16),
    Peak(r"\bL4\b", "NVIDIA L4", 121e12, _BF16_FP16),
    # Desktop cards only: laptop parts, the 4090 D and the 3090 Ti have other figures.
    Peak(r"\bRTX 5090\b(?!\s*(D\b|Laptop))", "NVIDIA GeForce RTX 5090", 209.5e12, _BF16_FP16),
    Peak(r"\bRTX 4090\b(?!\s*(D\b|Laptop))", "NVIDIA GeForce RTX 4090", 165.2e12, _BF16_FP16),
    Peak(r"\bRTX 3090\b(?!\s*(Ti\b|Laptop))", "NVIDIA GeForce RTX 3090", 71e12, _BF16_FP16),
    # Turing / Volta: no bf16, so the figure is fp16 only.
    Peak(r"\bT4\b", "NVIDIA T4", 65e12, ("float16",)),
    Peak(r"\bV100S\b", "NVIDIA V100S PCIe", 130e12, ("float16",)),
    Peak(r"\bV100\b.*\bPCIE\b", "NVIDIA V100 PCIe", 112e12, ("float16",)),
    Peak(r"\bV100\b", "NVIDIA V100 SXM2", 125e12, ("float16",)),
    # AMD Instinct
    Peak(r"\bMI300X\b", "AMD Instinct MI300X", 1307.4e12, _BF16_FP16),
    # An MI250X package (383 TFLOP/s) is two GCDs, and torch shows each GCD as its own device.
    Peak(r"\bMI250X\b", "AMD Instinct MI250X", 383e12 / 2, _BF16_FP16,
         note="one GCD, half of the 383 TFLOP/s package"),
)


def lookup_peak(gpu_name: str) -> Peak | None:
    """The datasheet entry for a torch device name, or None for a GPU we have no figure for."""
    for peak in PEAKS:
        if re.search(peak.pattern, gpu_name, flags=re.IGNORECASE):
            return peak
    return None


def datasheet_peak(gpu_name: str, dtype: str) -> tuple[float | None, str]:
    """(peak FLOP/s, source) for `dtype` on `gpu_name`; (None, "measure: ...") where no datasheet
    figure applies, meaning the harness measures a matmul peak on the device."""
    peak = lookup_peak(gpu_name)
    if peak is None:
        return None, f"measure: no datasheet figure for {gpu_name!r}; matmul peak measured on this device"
    if dtype not in peak.dtypes:
        return None, f"measure: the {peak.label} datasheet figure is for {'/'.join(peak.dtypes)}, not {dtype}; matmul peak measured on this device"
    short = {"bfloat16": "bf16", "float16": "fp16"}[dtype]
    extra = f"; {peak.note}" if peak.note else ""
    return peak.flops, f"datasheet: {peak.label} ({peak.flops / 1e12:g} TFLOP/s {short} dense{extra})"
