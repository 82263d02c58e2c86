"""Datasheet peaks matched on the names torch reports; anything else is measured, never guessed."""

from __future__ import annotations

import pytest

from autoresearch_portable.detect.peaks import datasheet_peak, lookup_peak


@pytest.mark.parametrize(
    "name, dtype, flops",
    [
        ("NVIDIA H100 80GB HBM3", "bfloat16", 989.5e12),
        ("NVIDIA H100 PCIe", "bfloat16", 756e12),
        ("NVIDIA H100 NVL", "bfloat16", 835e12),
        ("NVIDIA H200", "bfloat16", 989.5e12),
        ("NVIDIA A100-SXM4-80GB", "bfloat16", 312e12),
        ("NVIDIA A100-PCIE-40GB", "float16", 312e12),
        ("NVIDIA A100 80GB PCIe", "bfloat16", 312e12),
        ("NVIDIA L40S", "bfloat16", 362e12),
        ("NVIDIA L4", "bfloat16", 121e12),
        ("NVIDIA GeForce RTX 4090", "bfloat16", 165.2e12),
        ("NVIDIA GeForce RTX 3090", "bfloat16", 71e12),
        ("NVIDIA GeForce RTX 5090", "bfloat16", 209.5e12),
        ("Tesla T4", "float16", 65e12),
        ("Tesla V100-SXM2-16GB", "float16", 125e12),
        ("AMD Instinct MI300X", "bfloat16", 1307.4e12),
        ("AMD Instinct MI250X", "bfloat16", 383e12 / 2),  # per GCD, as torch counts devices
    ],
)
def test_known_gpus(name, dtype, flops):
    peak, source = datasheet_peak(name, dtype)
    assert peak == flops
    assert source.startswith("datasheet: ")


@pytest.mark.parametrize(
    "name",
    [
        "NVIDIA A10G",
        "NVIDIA L40",  # not the L40S
        "NVIDIA H200 NVL",  # not the SXM H200
        "NVIDIA H100",  # SXM or PCIe? unknown, so measured
        "NVIDIA GeForce RTX 4090 D",
        "NVIDIA GeForce RTX 4090 Laptop GPU",
        "NVIDIA GeForce RTX 3090 Ti",
        "NVIDIA RTX A1000",
        "NVIDIA RTX 6000 Ada Generation",
        "AMD Instinct MI300A",
        "Apple M3 Max",
    ],
)
def test_unknown_or_ambiguous_gpus_are_measured(name):
    peak, source = datasheet_peak(name, "bfloat16")
    assert peak is None
    assert source.startswith("measure: ") and name in source


def test_figure_only_in_its_dtype():
    assert datasheet_peak("Tesla T4", "bfloat16")[0] is None  # T4 has no bf16
    assert datasheet_peak("NVIDIA H100 80GB HBM3", "float32")[0] is None
    assert datasheet_peak("NVIDIA H100 80GB HBM3", "bfloat16")[1] == (
        "datasheet: NVIDIA H100 SXM (989.5 TFLOP/s bf16 dense)"
    )


def test_lookup_is_case_insensitive():
    assert lookup_peak("nvidia h100 80gb hbm3").label == "NVIDIA H100 SXM"
