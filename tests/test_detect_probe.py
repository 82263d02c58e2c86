"""probe(): the live record of this machine, the OS parsers, and the guards around every step."""

from __future__ import annotations

import importlib
import json
import subprocess
from pathlib import Path

import pytest

from autoresearch_portable.detect import DeviceProbe, GpuInfo, make_plan, probe
from autoresearch_portable.detect.plan import CPU_BF16_MIN_SPEEDUP, cpu_bf16_decision

# `detect.probe` the attribute is the function; the module is reached through importlib.
probe_mod = importlib.import_module("autoresearch_portable.detect.probe")

PROBES = Path(__file__).parent / "probes"


@pytest.fixture(scope="module")
def live() -> DeviceProbe:
    return probe(measure=True)


def test_live_probe_reads_this_machine(live):
    assert live.os and live.machine and live.python_version
    assert live.logical_cores and live.logical_cores >= 1
    assert live.memory_bytes and live.memory_bytes > 2**28
    assert live.torch_version is not None  # the test venv has torch
    assert live.torch_cpu_capability
    assert live.notes == [], live.notes


def test_live_probe_round_trips_through_json(live):
    again = DeviceProbe.from_dict(json.loads(json.dumps(live.to_dict())))
    assert again == live


def test_live_cpu_flags_agree_with_torch(live):
    torch = pytest.importorskip("torch")
    if live.machine not in ("x86_64", "AMD64"):
        pytest.skip("x86 only")
    assert ("avx512_bf16" in live.cpu_flags) == torch.cpu._is_avx512_bf16_supported()


def test_live_plan_is_cpu_with_a_bf16_choice_consistent_with_the_probe(live):
    if live.cuda_available or live.is_apple_silicon:
        pytest.skip("this test describes the CPU-only CI machine")
    plan = make_plan(live, None, {})
    assert (plan.backend, plan.device, plan.compile, plan.pin_memory) == ("cpu", "cpu", False, False)
    assert plan.peak_flops is None
    m = live.cpu_matmul_gflops
    assert m and m["float32"] > 0 and m["bfloat16"] > 0
    want_bf16 = live.cpu_native_bf16 and m["bfloat16"] / m["float32"] >= CPU_BF16_MIN_SPEEDUP
    assert plan.dtype == ("bfloat16" if want_bf16 else "float32")
    assert plan.dtype_mode == ("autocast" if want_bf16 else "none")
    assert plan.reasons["dtype"] == cpu_bf16_decision(live)[1]


def test_probe_without_measurement_skips_the_matmuls():
    assert probe(measure=False).cpu_matmul_gflops is None


def test_probe_survives_missing_torch_and_mlx(monkeypatch):
    for mod in ("torch", "mlx", "mlx.core"):
        monkeypatch.setitem(__import__("sys").modules, mod, None)  # makes `import mod` fail
    p = probe(measure=True)
    assert p.torch_version is None and p.mlx_version is None
    assert not p.cuda_available and p.cpu_matmul_gflops is None
    assert any(n.startswith("torch: not importable") for n in p.notes)
    assert p.cpu_model is not None  # the OS part still works


def test_probe_survives_failing_queries(monkeypatch):
    torch = pytest.importorskip("torch")

    def boom(*a, **k):
        raise RuntimeError("driver exploded\nsecond line")

    monkeypatch.setattr(torch.cuda, "is_available", boom)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", boom)
    monkeypatch.setattr(probe_mod, "_probe_cpu_linux", boom)
    monkeypatch.setattr(probe_mod, "_probe_cpu_macos", boom)
    monkeypatch.setattr(probe_mod, "_matmul_case", boom)
    p = probe(measure=True)
    assert p.cuda_available is False and p.torch_cpu_capability is None
    assert p.cpu_matmul_gflops == {}
    assert any("driver exploded" in n for n in p.notes)
    assert all("\n" not in n for n in p.notes)


X86_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu vme sse4_2 avx avx2 fma f16c avx512f avx512bw avx512vl avx512_bf16 amx_bf16 amx_tile amx_int8 avx512_fp16

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu vme
"""

ARM_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd40
CPU revision\t: 1
"""


def test_parse_cpuinfo_x86():
    model, flags = probe_mod.parse_cpuinfo(X86_CPUINFO)
    assert model == "Intel(R) Xeon(R) Platinum 8488C"
    assert {"avx512_bf16", "amx_bf16", "amx_tile", "avx512f", "fma", "avx2"} <= set(flags)
    assert "fpu" not in flags  # only flags that matter are kept


def test_parse_cpuinfo_arm_names_the_core():
    model, flags = probe_mod.parse_cpuinfo(ARM_CPUINFO)
    assert model == "ARM Neoverse-V1"
    assert {"asimd", "bf16", "i8mm", "sve"} <= set(flags)
    p = DeviceProbe(cpu_flags=flags)
    assert p.cpu_native_bf16


MAC_SYSCTL = """\
machdep.cpu.brand_string: Apple M3 Max
hw.memsize: 68719476736
hw.logicalcpu: 16
hw.optional.arm.FEAT_BF16: 1
hw.optional.arm.FEAT_I8MM: 1
hw.optional.arm.FEAT_FP16: 1
hw.optional.arm.FEAT_SME: 0
hw.optional.AdvSIMD: 1
hw.optional.floatingpoint: 1
"""


def test_macos_cpu_probe_from_sysctl(monkeypatch):
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, stdout=MAC_SYSCTL, stderr="sysctl: unknown oid 'machdep.cpu.features'")

    monkeypatch.setattr(probe_mod.subprocess, "run", fake_run)
    p = DeviceProbe(os="Darwin", machine="arm64")
    probe_mod._probe_cpu_macos(p)
    assert len(calls) == 1 and calls[0][0] == "sysctl"  # one process for every key
    assert p.cpu_model == "Apple M3 Max" and p.memory_bytes == 64 * 2**30 and p.logical_cores == 16
    assert p.cpu_flags == ["asimd", "fphp", "bf16", "i8mm"]
    assert "sme" not in p.cpu_flags and p.is_apple_silicon


def test_intel_mac_flags_are_lowercased(monkeypatch):
    out = (
        "machdep.cpu.brand_string: Intel(R) Core(TM) i9-9980HK CPU @ 2.40GHz\n"
        "hw.memsize: 34359738368\nhw.logicalcpu: 16\n"
        "machdep.cpu.features: FPU FMA SSE4.2 AVX1.0 F16C\n"
        "machdep.cpu.leaf7_features: RDWRFSGS AVX2 SMEP BMI2\n"
    )
    monkeypatch.setattr(probe_mod.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 0, out, ""))
    p = DeviceProbe(os="Darwin", machine="x86_64")
    probe_mod._probe_cpu_macos(p)
    assert p.cpu_flags == ["sse4_2", "avx2", "fma", "f16c"]
    assert not p.is_apple_silicon and not p.cpu_native_bf16


@pytest.mark.parametrize("path", sorted(PROBES.glob("*.json")), ids=lambda p: p.stem)
def test_recorded_probes_are_complete_records(path):
    d = json.loads(path.read_text())
    p = DeviceProbe.from_dict(d)
    assert p.to_dict() == d  # every field present, nothing extra
    assert all(isinstance(g, GpuInfo) for g in p.gpus)
    assert p.cuda_available == bool(p.gpus)
    assert p.summary()


def test_from_dict_tolerates_missing_and_unknown_keys():
    p = DeviceProbe.from_dict({"os": "Linux", "future_field": 1, "gpus": [{"name": "X", "extra": 2}]})
    assert p.os == "Linux" and p.gpus == [GpuInfo(name="X")] and p.cpu_flags == []


def test_the_probe_is_taken_once_per_boot_and_key(monkeypatch, tmp_path):
    """`arp train` probes before every run; the record is kept while nothing it reads can have
    changed (the key), and a probe with a failed step is not kept."""
    from autoresearch_portable.detect import probe_cache

    monkeypatch.setenv("ARP_CACHE_DIR", str(tmp_path))  # not the session's cache: other tests probed
    calls = []

    def fake_probe():
        calls.append(1)
        return DeviceProbe(os="Linux", machine="x86_64", cpu_model=f"probe {len(calls)}")

    monkeypatch.setattr(probe_cache, "probe", fake_probe)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    first = probe_cache.probe_this_boot()
    assert probe_cache.probe_this_boot().cpu_model == first.cpu_model == "probe 1" and len(calls) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # other devices visible: another key
    assert probe_cache.probe_this_boot().cpu_model == "probe 2"

    def failing_probe():
        calls.append(1)
        return DeviceProbe(os="Linux", machine="x86_64", notes=["torch: not importable"])

    monkeypatch.setattr(probe_cache, "probe", failing_probe)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    probe_cache.probe_this_boot()
    probe_cache.probe_this_boot()
    assert len(calls) == 4  # not kept: probed again
