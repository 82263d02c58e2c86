"""End to end on the CPU with tiny budgets: work mode stops at its FLOP budget, `arp train`
prints and records the normalized metrics once a profile exists, and every new command fails on
bad input with one line and exit code 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autoresearch_portable.harness.baseline import calibrate as cal

pytestmark = pytest.mark.slow

TINY = dict(DEPTH=2, MODEL_DIM=64, HEAD_DIM=32, DEVICE_BATCH_SIZE=2)


def arp(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "autoresearch_portable", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=os.environ.copy())


def assert_one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert lines and lines[-1].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[-1], lines[-1]


@pytest.fixture(scope="module")
def ds(request):
    return request.getfixturevalue("small_bundled")


@pytest.fixture(scope="module")
def cpu():
    from autoresearch_portable.detect import make_plan, probe

    pr = probe()
    return pr.to_dict(), make_plan(pr, "cpu").to_dict()


@pytest.fixture
def sizes(ds):
    return dict(TINY, TOTAL_BATCH_SIZE=2 * ds.seq_len)


@pytest.fixture(scope="module")
def workspace(ds, tmp_path_factory):
    ws = tmp_path_factory.mktemp("calib") / "ws"
    r = arp("init", str(ws), "--budget", "4", "--backend", "cpu", "--dataset", "bundled", "--depth", "2", "--dim", "64", "--device-batch", "2",
            "--total-batch", str(2 * ds.seq_len))
    assert r.returncode == 0, r.stderr
    return ws


def arp_in_process(args, cwd, monkeypatch, capsys):
    """`arp ARGS` through cli.main in this process (no interpreter start-up): (exit code, stdout, stderr)."""
    from autoresearch_portable import cli

    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["arp", *args])
    with pytest.raises(SystemExit) as e:
        cli.main()
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, e.value.code, out.out, out.err)


@pytest.fixture
def fake_profile(ds, cpu, sizes):
    """A profile for this device + dataset written by the real calibrate() from runs of a fake
    runner (no training): 3e10 FLOP/s, curve 30 - log2(C)... flattened to s = 0.1."""
    pr, plan = cpu
    rate = 3e10

    def runner(train_py, *, budget_seconds, seed, **kw):
        c = rate * budget_seconds
        return dict(status="ok", val_bpb=6.0 - 0.1 * __import__("math").log2(c) + 0.01 * seed, train_flops=c,
                    tokens_per_second=5000.0, flops_per_token=1e6, num_steps=1000)

    # The CPU plan's dtype comes from a quick matmul measurement that a loaded machine can flip
    # (bf16 <-> fp32), and the dtype is part of the device key: cover both plans.
    profiles = [cal.calibrate(pr, dict(plan, dtype=dt), "bundled", 2.0, 2, sizes=sizes, runner=runner, log=lambda m: None)
                for dt in ("bfloat16", "float32")]
    yield profiles[0]
    for p in profiles:
        os.unlink(p["path"])


def test_work_mode_stops_at_the_flop_budget(ds, cpu, sizes, tmp_path, monkeypatch):
    """...and matched comparison across simulated devices: the same train.py at the same FLOPs on
    this CPU with one thread (a slower "device") trains the same steps and scores the same
    val_bpb within the two runs' combined band."""
    from autoresearch_portable.harness.run.launch import run_training

    pr, plan = cpu
    train_py = tmp_path / "train.py"
    train_py.write_text(cal.baseline_source(plan, sizes))
    budget = 3e10
    # a work-mode run ends on FLOPs. 32 scored rows each: each run scores fresh text, and the
    # standard error of 8 rows of a barely trained model misses the odd heavy row (one pair of
    # honest runs differed by 5.6 of its sigmas on a bf16 CPU)
    r = run_training(train_py, probe=pr, plan=plan, dataset="bundled", budget_seconds=2, budget_mode="work",
                     flop_budget=budget, quiet=True, eval_rows=32)
    assert r["status"] == "ok", r.get("reason")
    step_flops = r["flops_per_token"] * sizes["TOTAL_BATCH_SIZE"]
    assert r["num_steps"] >= 3  # the budget spans several steps, so "within one step" means something
    assert budget <= r["train_flops"] <= budget + step_flops, (r["train_flops"], budget, step_flops)

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one = run_training(train_py, probe=pr, plan=plan, dataset="bundled", budget_seconds=2, budget_mode="work",
                       flop_budget=budget, quiet=True, eval_rows=32)
    assert one["status"] == "ok", one.get("reason")
    assert one["num_steps"] == r["num_steps"] and one["train_flops"] == r["train_flops"]
    assert one["final_train_loss"] == pytest.approx(r["final_train_loss"], abs=0.01)
    # the same training (above, step for step) scored on fresh text: the scores differ by sampling
    # error, whose estimate from 32 rows with heavy ones is itself loose (an honest pair differed
    # by 3.07 of its estimated sigmas): 4 sigmas, still far inside what another training moves
    band = 4 * (r["val_bpb_stderr"] ** 2 + one["val_bpb_stderr"] ** 2) ** 0.5
    assert abs(one["val_bpb"] - r["val_bpb"]) <= band, (one["val_bpb"], r["val_bpb"], band)


def test_train_work_mode_prints_normalized_metrics(workspace, fake_profile, ds):
    r = arp("train", "--budget", "2", "--budget-mode", "work", "--backend", "cpu", cwd=workspace)
    assert r.returncode == 0, r.stderr[-2000:]
    assert re.search(r"budget work: 2s x 3e\+10 FLOP/s", r.stderr)
    gain = re.search(r"^excess_ratio:\s+([0-9.]+) ± ([0-9.]+) \([-+][0-9.]+% excess over the floor vs the baseline, "
                     r"at [0-9.]+σ: (not )?significant\)$", r.stdout, re.M)
    assert gain, r.stdout
    assert re.search(r"^normalized_bpb:\s+n/a \(no bundled reference", r.stdout, re.M) or re.search(
        r"^normalized_bpb:\s+[0-9.]+ ± [0-9.]+ \(ref: ", r.stdout, re.M), r.stdout
    assert "verdict: keep (the first result at this budget" in r.stdout
    from autoresearch_portable.harness.records import ledger

    rec = ledger.read(workspace / "results" / "ledger.jsonl")[-1]
    m = rec["metrics"]
    assert m["budget_mode"] == "work" and m["flop_budget"] == pytest.approx(6e10)
    assert m["flop_budget"] <= m["train_flops"] <= m["flop_budget"] + m["flops_per_token"] * 2 * ds.seq_len
    for k in ("excess_ratio", "excess_ratio_band", "bpb_band", "baseline_bpb", "significant", "calibration"):
        assert k in m, k
    assert m["metric"] == "excess_ratio" and "compute_multiplier" not in m
    floor = fake_profile["floor_bpb"]
    assert m["excess_ratio"] == pytest.approx((m["val_bpb"] - floor) / (m["baseline_bpb"] - floor))
    assert float(gain.group(1)) == pytest.approx(m["excess_ratio"], abs=1e-4)
    # the table shows it, as a change of the excess in percent
    t = arp("results", cwd=workspace)
    assert t.returncode == 0 and f"{m['val_bpb']:.6f}" in t.stdout and "%" in t.stdout.splitlines()[2]
    j = json.loads(arp("results", "--json", str(workspace)).stdout)
    assert j[-1]["excess_ratio"] == pytest.approx(m["excess_ratio"])


def test_cli_errors_are_one_line(workspace, ds, monkeypatch, capsys):
    # through a real interpreter once (the console entry point, no traceback)
    r = arp("train", "--budget", "2", "--budget-mode", "work", "--backend", "cpu", cwd=workspace)
    assert_one_line_error(r, "--budget-mode work needs a calibration", "arp calibrate")

    def run(*args):
        return arp_in_process(args, workspace, monkeypatch, capsys)

    assert_one_line_error(run("train", "--budget", "2", "--budget-mode", "matched", "--backend", "cpu"),
                          "--budget-mode matched needs a bundled reference profile")
    assert_one_line_error(run("train", "--budget-mode", "sometimes"), "--budget-mode")
    assert_one_line_error(run("calibrate", "--repeats", "1"), "--repeats")
    assert_one_line_error(run("calibrate", "--budget", "0"), "--budget")
    assert_one_line_error(run("results", str(workspace / "nothing.jsonl")), "no ledger")
    assert_one_line_error(run("compare"))
    assert_one_line_error(run("compare", str(workspace / "nothing")), "no ledger")
