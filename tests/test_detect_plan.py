"""make_plan on recorded probes: the plan a GPU/Mac engineer would choose for each machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autoresearch_portable.detect.plan import (
    BACKENDS,
    CPU_BF16_MIN_SPEEDUP,
    Plan,
    PlanError,
    cpu_bf16_decision,
    make_plan,
    resolve_backend,
)
from autoresearch_portable.detect.probe import DeviceProbe
from autoresearch_portable.errors import UserError

PROBES = Path(__file__).parent / "probes"
NO_ENV: dict[str, str] = {}


def load(name: str) -> DeviceProbe:
    return DeviceProbe.from_dict(json.loads((PROBES / f"{name}.json").read_text()))


def plan_of(name: str, backend: str | None = None, env=NO_ENV) -> Plan:
    return make_plan(load(name), backend, env)


ALL = sorted(p.stem for p in PROBES.glob("*.json"))

# name: backend, device, dtype, dtype_mode, grad_scaler, attention, compile, pin_memory, peak_flops
EXPECTED = {
    "h100_sxm": ("cuda", "cuda:0", "bfloat16", "autocast", False, "flex", True, True, 989.5e12),
    "a100": ("cuda", "cuda:0", "bfloat16", "autocast", False, "flex", True, True, 312e12),
    "rtx4090": ("cuda", "cuda:0", "bfloat16", "autocast", False, "flex", True, True, 165.2e12),
    "t4": ("cuda", "cuda:0", "float16", "autocast", True, "sdpa_mask", True, True, 65e12),
    "unknown_nvidia_a10g": ("cuda", "cuda:0", "bfloat16", "autocast", False, "flex", True, True, None),
    "mi300x": ("cuda", "cuda:0", "bfloat16", "autocast", False, "sdpa_mask", True, True, 1307.4e12),
    "m1_mlx": ("mlx", "gpu", "float32", "none", False, "mlx_fast", True, False, None),
    "m3_max_mlx": ("mlx", "gpu", "bfloat16", "explicit", False, "mlx_fast", True, False, None),
    "m4_max_mlx": ("mlx", "gpu", "bfloat16", "explicit", False, "mlx_fast", True, False, None),
    "m1_nomlx": ("mps", "mps", "float32", "none", False, "sdpa_mask", False, False, None),
    "m3_max_nomlx": ("mps", "mps", "float32", "none", False, "sdpa_mask", False, False, None),
    "m4_max_nomlx": ("mps", "mps", "float32", "none", False, "sdpa_mask", False, False, None),
    "cpu_sapphire_rapids": ("cpu", "cpu", "bfloat16", "autocast", False, "sdpa_mask", False, False, None),
    "cpu_epyc_ci": ("cpu", "cpu", "bfloat16", "autocast", False, "sdpa_mask", False, False, None),
    "cpu_graviton3": ("cpu", "cpu", "bfloat16", "autocast", False, "sdpa_mask", False, False, None),
    "cpu_skylake": ("cpu", "cpu", "float32", "none", False, "sdpa_mask", False, False, None),
}
FIELDS = ("backend", "device", "dtype", "dtype_mode", "grad_scaler", "attention", "compile", "pin_memory", "peak_flops")


def test_every_recorded_probe_has_an_expected_plan():
    assert sorted(EXPECTED) == ALL


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_auto_plan_for_recorded_probe(name):
    plan = plan_of(name)
    assert tuple(getattr(plan, f) for f in FIELDS) == EXPECTED[name]


@pytest.mark.parametrize("name", ALL)
def test_plan_invariants(name):
    plan = plan_of(name)
    assert plan.backend in BACKENDS[1:]
    # every decision carries a one-line reason for the doctor
    for f in FIELDS:
        assert plan.reasons.get(f), f"no reason for {f}"
        assert "\n" not in plan.reasons[f]
    assert plan.grad_scaler == (plan.dtype == "float16" and plan.dtype_mode == "autocast")
    assert not plan.pin_memory or plan.backend == "cuda"
    if plan.peak_flops is None:
        assert plan.peak_flops_source.startswith("measure")
    else:
        assert plan.peak_flops_source.startswith("datasheet: ")
        assert plan.dtype in ("bfloat16", "float16")
    if plan.dtype == "float32":
        assert plan.dtype_mode == "none"
    # JSON round trip
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_h100_datasheet_peak():
    plan = plan_of("h100_sxm")
    assert plan.peak_flops == 989.5e12
    assert plan.peak_flops_source == "datasheet: NVIDIA H100 SXM (989.5 TFLOP/s bf16 dense)"
    assert "8 GPUs" in plan.reasons["device"]


def test_t4_has_no_bf16_and_uses_a_grad_scaler():
    plan = plan_of("t4")
    assert plan.dtype == "float16" and plan.grad_scaler
    assert "no bf16" in plan.reasons["dtype"]
    assert "fp16" in plan.peak_flops_source


def test_unknown_gpu_peak_is_measured_never_made_up():
    plan = plan_of("unknown_nvidia_a10g")
    assert plan.peak_flops is None
    assert plan.peak_flops_source.startswith("measure")
    assert "A10G" in plan.reasons["peak_flops"]


def test_pre_volta_gpu_runs_fp32_eager():
    d = load("t4").to_dict()
    d["gpus"][0].update(name="Tesla P100-PCIE-16GB", compute_capability="6.0", total_memory=17071734784)
    plan = make_plan(DeviceProbe.from_dict(d), env=NO_ENV)
    assert (plan.dtype, plan.dtype_mode, plan.grad_scaler, plan.compile) == ("float32", "none", False, False)
    assert plan.peak_flops is None


def test_windows_gpu_without_triton_does_not_compile():
    d = load("rtx4090").to_dict()
    d.update(os="Windows", os_version="10.0.22631", machine="AMD64", triton_available=False)
    plan = make_plan(DeviceProbe.from_dict(d), env=NO_ENV)
    assert plan.backend == "cuda" and plan.dtype == "bfloat16"
    assert plan.compile is False and plan.attention == "sdpa_mask"
    assert "triton" in plan.reasons["compile"]


def test_rocm_gpu_without_bf16_uses_fp16_and_scaler():
    d = load("mi300x").to_dict()
    d.update(cuda_bf16=False, gpus=[dict(name="AMD Instinct MI50", total_memory=34342961152,
                                         compute_capability="9.0", multiprocessors=60, arch="gfx906:sramecc+:xnack-")])
    plan = make_plan(DeviceProbe.from_dict(d), env=NO_ENV)
    assert (plan.dtype, plan.grad_scaler, plan.attention, plan.peak_flops) == ("float16", True, "sdpa_mask", None)


def test_mac_without_mlx_uses_mps_and_says_why():
    plan = plan_of("m3_max_nomlx")
    assert plan.backend == "mps"
    assert "mlx not installed" in plan.reasons["backend"]


def test_m1_mlx_is_fp32_and_m2_plus_bf16():
    assert plan_of("m1_mlx").dtype == "float32"
    assert "M1" in plan_of("m1_mlx").reasons["dtype"]
    assert plan_of("m4_max_mlx").dtype == "bfloat16"


def test_apple_without_mlx_or_mps_falls_back_to_cpu():
    d = load("m1_nomlx").to_dict()
    d.update(mps_available=False)
    assert make_plan(DeviceProbe.from_dict(d), env=NO_ENV).backend == "cpu"


# --- CPU bf16 decision -------------------------------------------------------------------


def test_cpu_without_native_bf16_is_fp32_even_if_measured_faster():
    d = load("cpu_skylake").to_dict()
    d["cpu_matmul_gflops"] = {"float32": 100.0, "bfloat16": 300.0}
    use, why = cpu_bf16_decision(DeviceProbe.from_dict(d))
    assert not use and "no native bf16" in why


def test_cpu_native_bf16_but_measured_slower_is_fp32():
    # An M3 Max's CPU has BF16 instructions; if torch's bf16 matmul measures slower than fp32
    # there (the rates below are a hypothetical measurement, not a recorded one), fp32 wins.
    d = load("m3_max_mlx").to_dict()
    d["cpu_matmul_gflops"] = {"float32": 1700.0, "bfloat16": 240.0}
    plan = make_plan(DeviceProbe.from_dict(d), "cpu", NO_ENV)
    assert plan.backend == "cpu" and plan.dtype == "float32"
    assert "but" in plan.reasons["dtype"]


def test_mac_probes_say_they_are_reconstructed_and_use_a_supported_mlx():
    for name in ALL:
        d = json.loads((PROBES / f"{name}.json").read_text())
        if d["os"] != "Darwin":
            continue
        assert d["provenance"].startswith("Reconstructed, not recorded")
        if d["mlx_version"] is not None:
            assert tuple(int(x) for x in d["mlx_version"].split(".")[:2]) >= (0, 25)  # pyproject's floor
            assert d["mlx_metal_info"]["max_recommended_working_set_size"] < d["memory_bytes"]
        assert d["mps_recommended_max_memory"] < d["memory_bytes"]


def test_cpu_native_bf16_marginal_speedup_is_fp32():
    d = load("cpu_sapphire_rapids").to_dict()
    d["cpu_matmul_gflops"] = {"float32": 400.0, "bfloat16": 400.0 * (CPU_BF16_MIN_SPEEDUP - 0.05)}
    assert make_plan(DeviceProbe.from_dict(d), env=NO_ENV).dtype == "float32"


def test_cpu_native_bf16_unmeasured_trusts_the_flags():
    d = load("cpu_sapphire_rapids").to_dict()
    d["cpu_matmul_gflops"] = None
    plan = make_plan(DeviceProbe.from_dict(d), env=NO_ENV)
    assert plan.dtype == "bfloat16" and "not measured" in plan.reasons["dtype"]


def test_m1_cpu_backend_is_fp32():
    assert plan_of("m1_nomlx", "cpu").dtype == "float32"


# --- overrides and errors ------------------------------------------------------------------


def test_explicit_backend_wins_over_env_and_env_over_auto():
    assert plan_of("h100_sxm", env={"ARP_BACKEND": "cpu"}).backend == "cpu"
    assert plan_of("h100_sxm", "cuda", env={"ARP_BACKEND": "cpu"}).backend == "cuda"
    assert plan_of("h100_sxm", env={"ARP_BACKEND": ""}).backend == "cuda"
    assert plan_of("h100_sxm", "auto", env={"ARP_BACKEND": "cpu"}).backend == "cuda"
    assert "ARP_BACKEND=cpu" in plan_of("h100_sxm", env={"ARP_BACKEND": "cpu"}).reasons["backend"]


def test_env_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("ARP_BACKEND", "CPU")
    assert make_plan(load("h100_sxm")).backend == "cpu"
    monkeypatch.delenv("ARP_BACKEND")
    assert make_plan(load("h100_sxm")).backend == "cuda"


def test_backend_names_are_case_insensitive():
    assert plan_of("m3_max_mlx", " MPS ").backend == "mps"
    assert resolve_backend("Cuda", NO_ENV) == ("cuda", "--backend Cuda")


@pytest.mark.parametrize("bad", ["tpu", "gpu", "metal", "cuda:1"])
def test_unknown_backend_is_a_one_line_user_error(bad):
    with pytest.raises(PlanError) as e:
        plan_of("h100_sxm", bad)
    msg = str(e.value)
    assert isinstance(e.value, UserError) and "\n" not in msg
    assert "auto|cuda|mps|mlx|cpu" in msg and bad in msg


def test_unknown_env_backend_names_the_variable():
    with pytest.raises(PlanError, match=r"ARP_BACKEND=nonsense.*auto\|cuda\|mps\|mlx\|cpu"):
        plan_of("cpu_epyc_ci", env={"ARP_BACKEND": "nonsense"})


def test_cuda_on_a_cpu_machine_says_what_was_found():
    with pytest.raises(PlanError) as e:
        plan_of("cpu_epyc_ci", "cuda")
    msg = str(e.value)
    assert msg.startswith("--backend cuda: no CUDA GPU found (this machine: AMD EPYC, 2 cores, torch ")
    assert "built without CUDA" in msg and "\n" not in msg


def test_cuda_build_without_a_visible_gpu():
    d = load("t4").to_dict()
    d.update(cuda_available=False, gpus=[], cuda_bf16=None)
    with pytest.raises(PlanError, match=r"no CUDA GPU found.*\(CUDA 12\.1\) sees no GPU"):
        make_plan(DeviceProbe.from_dict(d), "cuda", NO_ENV)
    assert make_plan(DeviceProbe.from_dict(d), None, NO_ENV).backend == "cpu"


def test_mps_on_linux_and_cuda_on_a_mac_are_errors():
    with pytest.raises(PlanError, match="MPS needs an Apple Silicon Mac"):
        plan_of("h100_sxm", "mps")
    with pytest.raises(PlanError, match="no CUDA GPU found.*Apple M4 Max"):
        plan_of("m4_max_mlx", "cuda")


def test_mlx_not_installed():
    with pytest.raises(PlanError, match=r"mlx is not installed \(pip install mlx\)"):
        plan_of("m1_nomlx", "mlx")
    with pytest.raises(PlanError, match=r"pip install 'mlx\[cpu\]'"):
        plan_of("h100_sxm", "mlx")


def test_mlx_on_linux_runs_on_its_cpu_device():
    plan = plan_of("cpu_epyc_ci", "mlx")
    assert (plan.backend, plan.device, plan.dtype, plan.dtype_mode, plan.compile, plan.attention) == (
        "mlx", "cpu", "float32", "none", False, "mlx_fast")


def test_mps_explicit_on_a_mac_with_mlx():
    assert plan_of("m3_max_mlx", "mps").backend == "mps"


def test_no_torch_falls_back_to_mlx_or_fails():
    d = load("cpu_epyc_ci").to_dict()
    d.update(torch_version=None, torch_cpu_capability=None)
    assert make_plan(DeviceProbe.from_dict(d), env=NO_ENV).backend == "mlx"
    with pytest.raises(PlanError, match="torch is not installed"):
        make_plan(DeviceProbe.from_dict(d), "cpu", NO_ENV)
    d.update(mlx_version=None)
    with pytest.raises(PlanError, match="neither torch nor mlx"):
        make_plan(DeviceProbe.from_dict(d), env=NO_ENV)


def test_planning_is_pure_and_imports_no_framework():
    """Plans for every recorded probe without importing torch or mlx (no hardware access)."""
    code = (
        "import sys, json, pathlib\n"
        "from autoresearch_portable.detect import make_plan, DeviceProbe\n"
        f"for f in sorted(pathlib.Path({str(PROBES)!r}).glob('*.json')):\n"
        "    make_plan(DeviceProbe.from_dict(json.loads(f.read_text())), None, {})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'mlx')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- window pattern ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_window_pattern_is_chosen_with_a_reason(name):
    plan = plan_of(name)
    assert plan.window_pattern in ("SSSL", "L")
    assert plan.reasons["window_pattern"] and "\n" not in plan.reasons["window_pattern"]


def test_apple_gpus_train_all_layers_full_causal():
    # MPS and mlx on Metal build the full scores in training: short windows would save nothing
    for name in ("m1_mlx", "m3_max_mlx", "m4_max_mlx", "m1_nomlx", "m3_max_nomlx", "m4_max_nomlx"):
        plan = plan_of(name)
        assert plan.window_pattern == "L" and "whatever the window" in plan.reasons["window_pattern"]
    assert plan_of("h100_sxm").window_pattern == "SSSL"  # flex_attention skips masked blocks
    assert plan_of("cpu_epyc_ci").window_pattern == "SSSL"
    assert plan_of("m1_mlx", "cpu").window_pattern == "SSSL"


def test_a_plan_recorded_before_window_patterns_reads_as_sssl():
    d = plan_of("m1_nomlx").to_dict()
    del d["window_pattern"]
    assert Plan.from_dict(d).window_pattern == "SSSL"
