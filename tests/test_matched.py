"""Matched mode, the first way to compare machines: `arp bench --matched` (the reference's own
baseline trained here for the reference's FLOPs) and `arp compare` on matched runs. Logic with a
fake runner and fake ledgers; the real simulated-device check is in test_matched_e2e.py."""

from __future__ import annotations

import pytest

from autoresearch_portable.errors import UserError
from autoresearch_portable.harness.baseline import matched as mt
from autoresearch_portable.harness.baseline import normalize as nz
from autoresearch_portable.harness.records import results as res

from test_calibrate import PLAN, PROBE, FakeDataset, fake_data  # noqa: F401
from test_results import _rec, bundle  # noqa: F401

REF_RUNS = [dict(fraction=0.25, status="ok", val_bpb=1.5), dict(fraction=1.0, status="ok", val_bpb=1.15),
            dict(fraction=1.0, status="ok", val_bpb=1.17), dict(fraction=1.0, status="ok", val_bpb=1.16)]


def runner_at(values, calls=None, seconds=150.0):
    """A fake device that scores values[seed] and takes `seconds` of training for any FLOP budget."""
    def run(train_py, *, probe, plan, dataset, budget_seconds, budget_mode, flop_budget, seed, quiet, **kw):
        if calls is not None:
            calls.append(dict(mode=budget_mode, flops=flop_budget, budget=budget_seconds, seed=seed, text=train_py.read_text()))
        return dict(status="ok", val_bpb=values[seed], val_bpb_stderr=0.003, train_flops=flop_budget, num_steps=500,
                    training_seconds=seconds, tokens_per_second=1000.0)
    return run


def test_matched_trains_the_references_baseline_for_its_flops(fake_data, bundle):
    calls = []
    ref = dict(bundle, points=REF_RUNS)
    m = mt.run_matched(PROBE, PLAN, ref, "bundled", repeats=2, runner=runner_at([1.16, 1.15, 1.18], calls),
                       log=lambda s: None)
    assert [c["seed"] for c in calls] == [0, 1, 2] and {c["mode"] for c in calls} == {"matched"}
    assert {c["flops"] for c in calls} == {2.0 ** 32} and {c["budget"] for c in calls} == {300.0}
    assert all("\nDEPTH = 4 " in c["text"] and "\nMODEL_DIM = 256 " in c["text"] for c in calls)  # the reference's sizes
    assert "\nSEED = 43" in calls[1]["text"]  # seeds as in a calibration
    assert m["ok"] and m["reference_n"] == 3 and m["reference_mean"] == pytest.approx(1.16)
    assert m["mean"] == pytest.approx(1.163333, abs=1e-6) and m["sigma"] == pytest.approx(0.0152753, abs=1e-6)
    # the 95% band of a difference of means: t for Welch's degrees of freedom x sqrt(σ²/3 + 0.02²/3);
    # (σ²/3 + 0.02²/3)² / ((σ²/3)²/2 + (0.02²/3)²/2) = 3.741, between t(3) = 3.182 and t(4) = 2.776
    se = ((0.0152753 ** 2 + 0.02 ** 2) / 3) ** 0.5
    assert 2.776 < nz.t975(3.741) < 3.182
    assert m["band"] == pytest.approx(nz.t975(3.741) * se, rel=1e-3) and m["agree"]
    assert m["speed_vs_reference"] == pytest.approx(2.0)
    text = mt.format_matched(m)
    assert "agree" in text and "2x the reference" in text and "Ref CPU (cpu)" in text and "4.295e+09" in text


def test_a_device_that_scores_differently_disagrees():
    ref = dict(name="Ref", sigma=0.01, budget_seconds=300.0, flops_at_budget=1e12, baseline_bpb_mean=1.0,
               points=[dict(fraction=1.0, status="ok", val_bpb=v) for v in (0.99, 1.0, 1.01)])
    runs = [dict(status="ok", val_bpb=v, training_seconds=600.0) for v in (1.05, 1.06, 1.04)]
    m = mt.summarize(runs, ref)
    assert m["diff"] == pytest.approx(0.05) and not m["agree"] and m["speed_vs_reference"] == pytest.approx(0.5)
    assert "DISAGREE" in mt.format_matched(m)
    one = mt.summarize(runs[:1], ref)  # one run: its σ is the reference's
    assert one["sigma"] == 0.01  # and its 2 degrees of freedom: Welch's (4/3)² / (1/2 + (1/3)²/2) = 3.2
    assert one["band"] == pytest.approx(nz.t975(3.2) * (0.01 ** 2 + 0.01 ** 2 / 3) ** 0.5, rel=1e-6)
    failed = mt.summarize([dict(status="timeout", reason="no training step for 150 s")], ref)
    assert not failed["ok"] and "timeout: no training step" in mt.format_matched(failed)


def test_matched_bench_needs_a_reference_and_a_run(fake_data, bundle, monkeypatch, tmp_path):
    with pytest.raises(UserError, match="--runs must be at least 1"):
        mt.matched_bench(PROBE, PLAN, "bundled", runs=0)
    m = mt.matched_bench(PROBE, PLAN, "bundled", runs=1, runner=runner_at([1.17]), log=lambda s: None)
    assert m["ok"] and len(m["val_bpb"]) == 1 and m["reference_mean"] == 1.16  # no points: the profile's mean
    monkeypatch.setenv("ARP_BENCHMARKS_DIR", str(tmp_path / "nothing"))
    with pytest.raises(UserError, match="--matched needs a bundled reference profile"):
        mt.matched_bench(PROBE, PLAN, "bundled", runs=1, runner=runner_at([1.17]))


def test_compare_uses_raw_val_bpb_when_every_device_ran_the_same_flops():
    flops = dict(budget_mode="matched", flop_budget=1.5e12)
    a = [_rec(1.0, "a1"), _rec(0.93, "a2", **flops), _rec(0.91, "a3", normalized_bpb=0.8, normalized_bpb_band=0.02)]
    b = [_rec(0.97, "b1", device="Other", **flops), _rec(0.95, "b2", device="Other", budget_mode="matched", flop_budget=3e12)]
    rows = res.compare_rows({"mac": a, "cpu": b})
    assert [r["basis"] for r in rows] == ["matched", "matched"] and rows[0]["matched_flops"] == 1.5e12
    assert [r["best"]["commit"] for r in rows] == ["a2", "b1"]  # the runs at the common budget, lowest val_bpb
    text = res.format_compare({"mac": a, "cpu": b})
    assert "matched: every device has runs at the same 1.5e+12 training FLOPs" in text
    # one device without matched runs at that budget: back to normalized_bpb
    rows = res.compare_rows({"mac": a, "cpu": b[1:]})
    assert [r["basis"] for r in rows] == ["normalized", "normalized"] and rows[0]["best"]["commit"] == "a3"
    assert "--budget-mode matched" in res.format_compare({"mac": a, "cpu": b[1:]})
    assert res.matched_budget([]) is None
