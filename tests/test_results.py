"""Budget-mode FLOP budgets, normalizing a finished run, the verdict against the ledger's best,
and the `arp results` / `arp compare` views."""

from __future__ import annotations

import json
import math

import pytest

from autoresearch_portable.errors import UserError
from autoresearch_portable.harness.baseline import calibrate as cal
from autoresearch_portable.harness.baseline import matched
from autoresearch_portable.harness.records import history, ledger
from autoresearch_portable.harness.records import results as res

from test_calibrate import PLAN, PROBE, SIZES, FakeDataset, fake_data, fake_runner  # noqa: F401


@pytest.fixture
def bundle(tmp_path, monkeypatch):
    """A benchmarks folder with one reference profile for the fake dataset."""
    d = tmp_path / "benchmarks"
    (d / "results").mkdir(parents=True)
    (d / "standard.json").write_text(json.dumps(dict(
        name="std", dataset="bundled", standard=dict(budget_seconds=100, repeats=2), quick=dict(budget_seconds=8, repeats=2))))
    ref = dict(name="Ref CPU (cpu)", device_name="Ref CPU", backend="cpu", harness_version=cal.HARNESS_VERSION,
               dataset=cal.dataset_identity(FakeDataset()), a=5.0, s=0.12, sigma=0.02, flops_at_budget=2.0**32,
               flops_per_second=2.0**32 / 300, budget_seconds=300.0, baseline_bpb_mean=1.16, tokens_per_second=5000.0,
               mfu_percent=10.0, floor_bpb=0.5, baseline_sizes=dict(DEPTH=4, MODEL_DIM=256), repeats=2)
    (d / "results" / "ref-cpu.json").write_text(json.dumps(ref))
    monkeypatch.setenv("ARP_BENCHMARKS_DIR", str(d))
    return ref


@pytest.fixture
def calibrated(fake_data, bundle):
    return cal.calibrate(PROBE, PLAN, "bundled", 100, 2, sizes=SIZES, runner=fake_runner(), log=lambda m: None)


def test_budget_modes_need_profiles(fake_data, monkeypatch, tmp_path):
    monkeypatch.setenv("ARP_BENCHMARKS_DIR", str(tmp_path / "nothing"))
    ds_id = cal.dataset_identity(fake_data)
    assert matched.flop_budget_for("wall", 60, PROBE, PLAN, ds_id) == (None, "")
    with pytest.raises(UserError, match="work needs a calibration"):
        matched.flop_budget_for("work", 60, PROBE, PLAN, ds_id)
    with pytest.raises(UserError, match="matched needs a bundled reference"):
        matched.flop_budget_for("matched", 60, PROBE, PLAN, ds_id)


def test_budget_modes_flop_budgets(calibrated, bundle):
    ds_id = cal.dataset_identity(FakeDataset())
    work, how = matched.flop_budget_for("work", 60, PROBE, PLAN, ds_id)
    assert work == pytest.approx(calibrated["flops_per_second"] * 60) and "60s" in how
    flops, how = matched.flop_budget_for("matched", 60, PROBE, PLAN, ds_id)
    assert flops == pytest.approx(2.0**32 / 300 * 60) and "Ref CPU" in how


def test_annotate_adds_normalized_metrics(calibrated, bundle):
    ds_id = cal.dataset_identity(FakeDataset())
    b_base = calibrated["a"] - calibrated["s"] * math.log2(calibrated["flops_at_budget"])
    r = res.annotate(dict(status="ok", val_bpb=b_base - calibrated["s"], budget_seconds=100, budget_mode="wall"),
                     PROBE, PLAN, ds_id)
    # this fake baseline sits below the fake floor (0.5): no excess to divide, so delta scores it
    assert b_base < calibrated["floor_bpb"] and "doublings" not in r
    assert r["metric"] == "delta" and "not above the floor" in r["metric_note"]
    assert r["delta_bpb"] == pytest.approx(-calibrated["s"]) and r["significant"] is True
    assert r["normalized_bpb"] == pytest.approx(5.0 - 0.12 * 32 - calibrated["s"])  # b_ref + delta
    assert r["normalized_reference"] == "Ref CPU (cpu)"
    # no profile: a note instead
    other = dict(PROBE, cpu_model="Another CPU")
    r2 = res.annotate(dict(status="ok", val_bpb=1.0), other, PLAN, ds_id)
    assert "excess_ratio" not in r2 and "arp calibrate" in r2["normalization_note"]
    # failed runs are left alone
    assert res.annotate(dict(status="crash"), PROBE, PLAN, ds_id) == dict(status="crash")


def _rec(val, commit, status="ok", **metrics):
    m = dict(dict(val_bpb=val, val_bpb_stderr=0.002, num_steps=100, budget_seconds=60.0, budget_mode="wall",
                  backend="cpu", device="Fake CPU 9000", dataset="bundled"), **metrics)
    return dict(time="2026-11-27T10:00:00+0000", git_commit=commit, status=status, metrics=m)


def shown(records) -> str:
    """What `arp results` prints for these records (not on a terminal)."""
    return history.format_runs(records, [history.run_row(n, r) for n, r in history.numbered(records)])


def test_results_table_and_json(tmp_path):
    path = tmp_path / "results" / "ledger.jsonl"
    ledger.append(path, _rec(1.0, "abc1234"))
    ledger.append(path, _rec(0.95, "def5678", compute_multiplier=1.414, doublings=0.5, doublings_band=0.2,
                              significant=True, normalized_bpb=1.1, normalized_bpb_band=0.024,
                              normalized_reference="Ref CPU (cpu)"))
    ledger.append(path, dict(time="2026-11-27T11:00:00+0000", git_commit="0000000", status="crash", reason="boom",
                             metrics=dict(budget_seconds=60.0)))
    records = res.load_ledger(tmp_path)  # a workspace folder works too
    text = shown(records)
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["run", "time", "commit", "status", "val_bpb"]
    assert "1.414x" in text and "1.1000±0.0240" in text and "crash" in text
    assert "best val_bpb at 60s: 0.950000 (run 2, def5678)" in text and "Ref CPU (cpu)" in text
    rows = [history.run_row(n, r) for n, r in history.numbered(records)]  # what `arp results --json` prints
    assert rows[1]["normalized_bpb"] == 1.1 and rows[2]["status"] == "crash"
    with pytest.raises(UserError, match="no ledger"):
        res.load_ledger(tmp_path / "nowhere")


def test_compare_table_and_plot(tmp_path):
    a = [_rec(1.0, "a1"), _rec(0.9, "a2", normalized_bpb=1.0, normalized_bpb_band=0.02, compute_multiplier=2.0,
                                significant=True, normalized_reference="Ref")]
    b = [_rec(1.5, "b1", device="Other", normalized_bpb=1.05, normalized_bpb_band=0.03, compute_multiplier=1.2,
              significant=False, normalized_reference="Ref")]
    text = res.format_compare({"mac": a, "cpu": b})
    assert "mac" in text and "cpu" in text and "1.0000±0.0200" in text and "~1.200x" in text
    assert "scale of: Ref" in text
    res.plot_progress({"mac": a, "cpu": b}, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000  # matplotlib is a dependency: the plot always works


def test_the_gain_column_shows_each_run_in_the_metric_it_was_scored_with(tmp_path):
    path = tmp_path / "results" / "ledger.jsonl"
    ledger.append(path, _rec(0.95, "old1234", compute_multiplier=1.414, doublings=0.5, doublings_band=0.2,
                              significant=True))  # a line written before the switch
    ledger.append(path, _rec(0.93, "new5678", metric="excess_ratio", excess_ratio=0.95, excess_ratio_band=0.012,
                              significant=True, normalized_bpb=0.59, normalized_bpb_band=0.004))
    ledger.append(path, _rec(0.96, "nofloor", metric="delta", delta_bpb=0.001, delta_bpb_band=0.004, significant=False))
    text = shown(res.load_ledger(tmp_path))
    assert text.splitlines()[0].split()[6] == "gain"
    assert "1.414x" in text and "-5.0%" in text and "~+0.0010" in text
    assert "excess over the entropy floor" in text and "val_bpb minus this device's baseline's" in text
    # a hand-edited line whose gain is not a number is skipped, not shown
    bad = dict(_rec(0.9, "bad"), metrics=dict(_rec(0.9, "bad")["metrics"], excess_ratio="0.9"))
    assert not ledger.usable(bad)


def test_compare_says_the_compute_gap_of_each_pair_of_ledgers():
    from autoresearch_portable.harness.baseline import normalize

    notes = res.gap_notes({"mac": 2.0**30, "h100": 2.0**36, "old": None})
    assert notes == [f"mac vs h100: {normalize.gap_note(-6.0)}"]  # a ledger without the figure is left out
    assert "64x (6.00 doublings)" in notes[0]
    a = [_rec(1.0, "a1"), _rec(0.9, "a2", normalized_bpb=1.0, normalized_bpb_band=0.02, baseline_flops=2.0**30)]
    b = [_rec(1.5, "b1", device="Other", normalized_bpb=1.05, normalized_bpb_band=0.03, baseline_flops=2.0**32)]
    assert "mac vs cpu: compute gap 4x (2.00 doublings)" in res.format_compare({"mac": a, "cpu": b})


def test_the_best_is_named_per_budget_and_every_run_shows_its_budget(tmp_path):
    path = tmp_path / "results" / "ledger.jsonl"
    ledger.append(path, _rec(0.80, "long300", budget_seconds=300.0))  # better, but another budget
    ledger.append(path, _rec(0.95, "short01"))
    ledger.append(path, _rec(0.93, "short02"))
    ledger.append(path, _rec(0.70, "work001", budget_seconds=60.0, budget_mode="work"))
    text = shown(res.load_ledger(tmp_path))
    assert "best val_bpb at 300s: 0.800000 (run 1, long300)" in text
    assert "best val_bpb at 60s: 0.930000 (run 3, short02)" in text
    assert "best val_bpb at 60s work: 0.700000 (run 4, work001)" in text
    lines = text.splitlines()
    assert lines[0].split()[9] == "budget" and " 300s " in lines[2] and " 60s work " in lines[5]
