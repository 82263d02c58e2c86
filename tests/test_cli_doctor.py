"""`arp doctor`: through a real subprocess (exit codes, stderr, no traceback) and typer's runner."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoresearch_portable.cli import app
from autoresearch_portable.detect import DeviceProbe, PlanError, format_doctor

doctor_mod = importlib.import_module("autoresearch_portable.detect.doctor")
PROBES = Path(__file__).parent / "probes"
REPO = Path(__file__).resolve().parents[1]


def arp(*args: str, cache: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "ARP_BACKEND"}
    full_env.update(ARP_CACHE_DIR=str(cache), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "autoresearch_portable", *args],
        capture_output=True, text=True, env=full_env, cwd=REPO, timeout=120,
    )


def assert_one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0]


def test_doctor_json_describes_this_machine(tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "cpu-abc-h1-bundled.json").write_text("{}")
    r = arp("doctor", "--json", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    probe, plan = DeviceProbe.from_dict(report["probe"]), report["plan"]
    if not probe.cuda_available and not probe.is_apple_silicon:
        assert plan["backend"] == "cpu" and plan["device"] == "cpu"
        # the bf16 choice is justified by the probe: flags and, when measured, the matmul speed-up
        if plan["dtype"] == "bfloat16":
            assert probe.cpu_native_bf16 and "native bf16" in plan["reasons"]["dtype"]
        else:
            assert plan["dtype"] == "float32"
    assert set(plan["reasons"]) >= {"backend", "dtype", "attention", "compile", "peak_flops"}
    assert report["paths"]["cache"] == str(tmp_path)
    assert report["paths"]["profiles"] == str(tmp_path / "profiles")
    assert report["calibration"]["profiles"] == ["cpu-abc-h1-bundled.json"]


def test_doctor_text(tmp_path):
    r = arp("doctor", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    for section in ("hardware", "plan", "paths", "calibration", "backend:", "dtype:", "peak_flops:"):
        assert section in r.stdout
    assert "not calibrated yet" in r.stdout
    assert str(tmp_path) in r.stdout


def test_doctor_backend_cpu_explicit(tmp_path):
    r = arp("doctor", "--json", "--backend", "CPU", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["plan"]["reasons"]["backend"] == "requested by --backend CPU"


def test_unknown_backend_flag(tmp_path):
    assert_one_line_error(arp("doctor", "--backend", "tpu", cache=tmp_path), "tpu", "auto|cuda|mps|mlx|cpu")


def test_unknown_backend_env(tmp_path):
    r = arp("doctor", cache=tmp_path, env={"ARP_BACKEND": "nonsense"})
    assert_one_line_error(r, "ARP_BACKEND=nonsense", "auto|cuda|mps|mlx|cpu")


def test_cuda_on_a_cpu_machine(tmp_path):
    probe = DeviceProbe.from_dict(json.loads(arp("doctor", "--json", cache=tmp_path).stdout)["probe"])
    if probe.cuda_available:
        pytest.skip("this machine has a GPU")
    assert_one_line_error(arp("doctor", "--backend", "cuda", cache=tmp_path), "--backend cuda: no CUDA GPU found (this machine: ")


def test_bad_flag_is_a_usage_error(tmp_path):
    r = arp("doctor", "--frobnicate", cache=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("error: ")


# --- typer's runner, with recorded probes in place of this machine ---------------------------


@pytest.fixture
def fake_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("ARP_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("ARP_BACKEND", raising=False)

    def use(name: str) -> None:
        recorded = DeviceProbe.from_dict(json.loads((PROBES / f"{name}.json").read_text()))
        monkeypatch.setattr(doctor_mod, "probe", lambda measure=True: recorded)

    return use


def test_runner_doctor_on_a_recorded_h100(fake_machine):
    fake_machine("h100_sxm")
    r = CliRunner().invoke(app, ["doctor"])
    assert r.exit_code == 0, r.output
    assert "NVIDIA H100 80GB HBM3" in r.output
    assert "989.5 TFLOP/s" in r.output and "flex" in r.output
    r = CliRunner().invoke(app, ["doctor", "--json"])
    plan = json.loads(r.output)["plan"]
    assert (plan["backend"], plan["dtype"], plan["peak_flops"]) == ("cuda", "bfloat16", 989.5e12)


def test_runner_doctor_env_override(fake_machine):
    fake_machine("m4_max_mlx")
    r = CliRunner().invoke(app, ["doctor", "--json"], env={"ARP_BACKEND": "mps"})
    assert json.loads(r.output)["plan"]["backend"] == "mps"


def test_runner_doctor_unavailable_backend_raises_plan_error(fake_machine):
    fake_machine("m1_nomlx")
    r = CliRunner().invoke(app, ["doctor", "--backend", "mlx"])
    assert isinstance(r.exception, PlanError)  # main() turns it into one line and exit 2
    assert "mlx is not installed" in str(r.exception)


@pytest.mark.parametrize("path", sorted(PROBES.glob("*.json")), ids=lambda p: p.stem)
def test_format_doctor_for_every_recorded_probe(fake_machine, path):
    fake_machine(path.stem)
    text = format_doctor(doctor_mod.doctor_report(None))
    for key in ("backend:", "device:", "dtype:", "dtype_mode:", "grad_scaler:", "attention:",
                "compile:", "pin_memory:", "peak_flops:"):
        assert key in text
    assert json.loads((PROBES / f"{path.stem}.json").read_text())["os"] in text
