"""benchmarks/check_normalization.py's logic with a fake trainer (no training): every candidate
metric on the same runs, a simulated one-thread device calibrated into its own profile, and the
agreement table across devices."""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from autoresearch_portable.harness.baseline import template

from autoresearch_portable.harness.run import launch as runner

from test_calibrate import SIZES, fake_data  # noqa: F401

_spec = importlib.util.spec_from_file_location(
    "check_normalization", Path(__file__).resolve().parent.parent / "benchmarks" / "check_normalization.py")
cn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cn)


def fake_training(train_py, *, budget_seconds, seed, budget_mode="wall", flop_budget=None, **kw):
    """1e9 FLOP/s on two threads, half that on one; val_bpb = 0.5 + 0.5*(C/1e11)^-0.5 (floor 0.5 in
    FakeDataset); the edit WARMDOWN_FRAC = 0.0 costs 0.02; seeds add a little noise."""
    rate = 1e9 / (2 if os.environ.get("OMP_NUM_THREADS") == "1" else 1)
    c = flop_budget if budget_mode == "work" else rate * budget_seconds
    bad = 0.02 if "\nWARMDOWN_FRAC = 0.0" in train_py.read_text() else 0.0
    val = 0.5 + 0.5 * (c / 1e11) ** -0.5 + bad + 0.002 * ((seed % 3) - 1)
    return dict(status="ok", val_bpb=val, val_bpb_stderr=0.001, train_flops=c, tokens_per_second=1000.0,
                flops_per_token=1e6, num_steps=int(40 * budget_seconds), num_params=1)


def test_every_candidate_on_the_same_runs_and_a_simulated_device(fake_data, monkeypatch):
    monkeypatch.setattr(runner, "run_training", fake_training)
    monkeypatch.setattr(template, "size_for_device", lambda *a, **k: dict(SIZES))
    args = SimpleNamespace(budget=100.0, repeats=2, dataset="bundled", double_mode="work",
                           variant=[cn.parse_variant("WARMDOWN_FRAC=0.0"), cn.parse_variant("MATRIX_LR=0.04;SEED=3")])
    log = lambda m: None  # noqa: E731
    first, profile = cn.check_device(cn.parse_device("cpu"), args, log, None, None)
    one, _ = cn.check_device(cn.parse_device("cpu:threads=1"), args, log, profile["baseline_sizes"], profile)
    assert os.environ.get("OMP_NUM_THREADS") is None  # restored after the simulated device
    assert "--cpu_threads_1.json" in one["profile"] and one["profile"] != first["profile"]
    assert one["flops_at_budget"] == pytest.approx(first["flops_at_budget"] / 2)
    for r in (first, one):
        assert set(r["baseline"]["candidates"]) == set(cn.CANDIDATES)
        assert r["double"]["g_from_compute"] == pytest.approx(1.0)
        assert r["double"]["candidates"]["power"]["gain"] == pytest.approx(1.0, abs=0.1)  # T/4..T: 4 budgets, fitted
        assert r["steps_at_quarter"] == 40 * 25
        d = r["variants"][0]["candidates"]["delta"]
        assert d["gain"] == pytest.approx(0.02, abs=0.01) and d["significant"]
    rows = cn.agreement([first, one])
    assert len(rows) == 2 * len(cn.CANDIDATES)
    by = {(tuple(r["edit"]), r["candidate"]): r for r in rows}
    assert by[(("WARMDOWN_FRAC",), "delta")]["agree"] is True  # both pay about 0.02
    assert "error" not in by[(("WARMDOWN_FRAC",), "power")]
    cn.report([first, one], rows, 100.0)
    md = cn.markdown([first, one], rows)
    assert "| cpu:threads=1 | 100 | 1000 |" in md and "| `WARMDOWN_FRAC=0.0` |" in md
    summary = cn.summary(rows)
    assert summary["delta"]["agree"] >= 1 and summary["delta"]["measured"] == 2
    inside, scored_on = cn.baseline_within([first, one])["delta"]
    assert scored_on == 2 and f"| delta | {inside} of 2 | {summary['delta']['agree']} of 2 |" in md
    # read back from what the check stored, scored again by the harness: the same numbers
    again = cn.rescored(dict(repeats=2, results=[first, one]))
    for before, after in zip((first, one), again["results"]):
        for run in ("baseline", "double"):
            for c in cn.CANDIDATES:
                assert after[run]["candidates"][c]["gain"] == pytest.approx(before[run]["candidates"][c]["gain"])
                assert after[run]["candidates"][c]["band"] == pytest.approx(before[run]["candidates"][c]["band"])
        assert after["baseline"]["passed"] == before["baseline"]["passed"]
        assert after["variants"][0]["candidates"]["delta"]["normalized_bpb"] == pytest.approx(
            before["variants"][0]["candidates"]["delta"]["normalized_bpb"])
    # a device whose sigma came from 2 runs at T, not 3: t(1)*sqrt(3/2) against t(2)*sqrt(4/3)
    fewer = cn.rescored(dict(repeats=2, results=[dict(first, repeats=1)]))["results"][0]
    assert fewer["baseline"]["candidates"]["delta"]["band"] == pytest.approx(
        first["baseline"]["candidates"]["delta"]["band"] * (12.706 * 1.5 ** 0.5) / (4.303 * (4 / 3) ** 0.5))


def test_na_candidates_are_reported_not_fatal():
    c = dict(gain=0.1, band=0.05)
    dev = lambda name: dict(device=name, budget_seconds=60.0, s=0.03, sigma=0.004, steps_at_quarter=None, baseline=dict(  # noqa: E731
        val_bpb=0.6, candidates={n: dict(c) for n in cn.CANDIDATES}), double=dict(
        val_bpb=0.57, candidates=dict({n: dict(c) for n in cn.CANDIDATES}, power=dict(error="no fit"))),
        variants=[dict(edits={"X": 1}, val_bpb=0.61, candidates=dict({n: dict(c) for n in cn.CANDIDATES},
                                                                      power=dict(error="no fit")))])
    rows = cn.agreement([dev("a"), dev("b")])
    md = cn.markdown([dev("a"), dev("b")], rows)
    assert "| power | a @60s vs b @60s | n/a (no fit) |" in md.replace("`X=1` | 0.6100 | 0.6100 | ", "")
    assert "| power | 0 of 2 | n/a | | |" in md and cn.summary(rows)["power"]["measured"] == 0
    # "no change" is a gain of 0, or a ratio of 1
    at = lambda name, g: dict(baseline=dict(candidates=dict({n: dict(error="x") for n in cn.CANDIDATES}, **{name: dict(gain=g, band=0.05)})))  # noqa: E731
    assert cn.baseline_within([at("excess_ratio", 0.97), at("excess_ratio", 1.06)])["excess_ratio"] == (1, 2)
    assert cn.baseline_within([at("delta", -0.04), at("delta", 0.0)])["delta"] == (2, 2)
    assert cn.baseline_within([at("delta", 0.0)])["power"] == (0, 0)
    wide = dict(baseline=dict(candidates={n: dict(gain=0.0, band=math.inf) for n in cn.CANDIDATES}))
    assert cn.baseline_within([wide])["delta"] == (0, 1)


def test_parsing_devices_and_variants():
    assert cn.parse_device("cpu:threads=1:dtype=float32") == dict(spec="cpu:threads=1:dtype=float32", backend="cpu",
                                                                  threads=1, dtype="float32", budget=None)
    assert cn.parse_device("cpu:budget=75")["budget"] == 75.0
    with pytest.raises(SystemExit, match="budget=SECONDS"):
        cn.parse_device("cpu:budget=-1")
    assert cn.parse_variant("MATRIX_LR=0.04;ADAM_BETAS=[0.9, 0.95]") == {"MATRIX_LR": 0.04, "ADAM_BETAS": [0.9, 0.95]}
    with pytest.raises(SystemExit, match="BACKEND"):
        cn.parse_device("cpu:threads=0")
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        cn.parse_variant("MATRIX_LR")
    rows = cn.agreement([dict(device="a", variants=[dict(edits={"X": 1}, candidates={
        c: dict(gain=0.1, band=0.05) for c in cn.CANDIDATES})]),
        dict(device="b", variants=[dict(edits={"X": 1}, candidates={c: dict(gain=0.3, band=0.05) for c in cn.CANDIDATES})])])
    assert all(r["agree"] is False and r["diff_in_bands"] == pytest.approx(0.2 / math.hypot(0.05, 0.05)) for r in rows)


def test_a_shorter_budget_is_a_slower_device_and_a_refused_curve_keeps_the_curve_free_candidates(fake_data, monkeypatch):
    monkeypatch.setattr(runner, "run_training", fake_training)
    monkeypatch.setattr(template, "size_for_device", lambda *a, **k: dict(SIZES))
    args = SimpleNamespace(budget=100.0, repeats=2, dataset="bundled", double_mode="work",
                           variant=[cn.parse_variant("WARMDOWN_FRAC=0.0")])
    log = lambda m: None  # noqa: E731
    first, profile = cn.check_device(cn.parse_device("cpu"), args, log, None, None)
    short, _ = cn.check_device(cn.parse_device("cpu:budget=4"), args, log, profile["baseline_sizes"], profile)
    assert short["budget_seconds"] == 4.0 and short["flops_at_budget"] == pytest.approx(first["flops_at_budget"] / 25)
    assert "200" in short["curve_refused"] and first["curve_refused"] is None  # T/4 = 1 s: 40 steps
    for run in (short["baseline"], short["double"], short["variants"][0]):
        assert run["candidates"]["loglinear"]["error"].startswith("curve refused") and "error" in run["candidates"]["power"]
    assert short["baseline"]["passed"] is None and short["variants"][0]["candidates"]["delta"]["gain"] == pytest.approx(
        0.02, abs=0.01)
    # the two devices in two files, read back as one check
    a = dict(budget_seconds=100.0, results=[first], agreement=[])
    b = dict(budget_seconds=4.0, results=[short], agreement=[])
    both = cn.merged([a, b])
    assert [r["device"] for r in both["results"]] == ["cpu", "cpu:budget=4"]
    rows = {r["candidate"]: r for r in both["agreement"]}
    assert "error" in rows["loglinear"] and rows["delta"]["agree"] is True
    cn.report(both["results"], both["agreement"], 100.0)
    md = cn.markdown(both["results"], both["agreement"])
    assert "| cpu:budget=4 | 4 | 40 (curve refused) |" in md
    with pytest.raises(SystemExit, match="different edits"):
        cn.merged([a, dict(b, results=[dict(short, variants=[dict(short["variants"][0], edits={"X": 1})])])])


def test_an_infinite_gain_counts_as_a_disagreement_not_a_nan_mean():
    c = lambda g: {n: dict(gain=g, band=0.1) for n in cn.CANDIDATES}  # noqa: E731
    rows = cn.agreement([dict(device="a", variants=[dict(edits={"X": 1}, candidates=c(0.1)),
                                                    dict(edits={"Y": 1}, candidates=c(0.1))]),
                         dict(device="b", variants=[dict(edits={"X": 1}, candidates=c(math.inf)),
                                                    dict(edits={"Y": 1}, candidates=c(0.2))])])
    m = cn.summary(rows)["delta"]
    assert m == dict(edits=2, measured=2, agree=1, infinite=1, mean_diff_in_bands=pytest.approx(0.1 / math.hypot(0.1, 0.1)),
                     max_diff_in_bands=pytest.approx(0.1 / math.hypot(0.1, 0.1)))
    # an infinite band (a curve whose asymptote the run is near) agrees with anything: it proves nothing
    wide = {n: dict(gain=0.1, band=math.inf) for n in cn.CANDIDATES}
    rows = cn.agreement([dict(device="a", variants=[dict(edits={"X": 1}, candidates=c(0.5))]),
                         dict(device="b", variants=[dict(edits={"X": 1}, candidates=wide)])])
    assert rows[0]["agree"] is False and cn.summary(rows)["power"]["infinite"] == 1
