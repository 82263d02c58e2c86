"""The baseline is the calibration (issue 31): before `arp calibrate`, runs are scored against the
workspace's ok runs of its unmodified baseline at the same budget, marked provisional."""

from __future__ import annotations

import math

import pytest

from autoresearch_portable import HARNESS_VERSION
from autoresearch_portable.harness.baseline import normalize as nz
from autoresearch_portable.harness.records import ledger
from autoresearch_portable.harness.records import results as res
from autoresearch_portable.harness.records import verdict
from autoresearch_portable.harness.run.summary import format_summary

from test_calibrate import PLAN, PROBE, fake_data  # noqa: F401

DS = dict(name="bundled", versions={"generator_version": 1}, floor_bpb=0.5)
BASE = "n" * 64  # the normalized hash arp init recorded


def _rec(val, sha=BASE, status="ok", budget=60.0, **kw):
    m = dict(val_bpb=val, val_bpb_stderr=0.004, train_flops=1e12, budget_seconds=budget, budget_mode="wall",
             dataset="bundled", backend="cpu")
    m.update(kw)
    return dict(status=status, train_py_norm_sha256=sha, harness_version=HARNESS_VERSION, device=PROBE, plan=PLAN, metrics=m)


def test_only_the_unmodified_baselines_ok_runs_here_count():
    recs = [_rec(1.0), _rec(0.9, sha="e" * 64), _rec(1.02, status="noisy"), _rec(1.01, budget=120.0),
            _rec(1.03, dataset="bundled-v2"), dict(_rec(1.04), device={"cpu_model": "Other"}),
            dict(_rec(1.05), **{ledger.UNTRUSTED: True}), dict(_rec(1.06), harness_version="0"), _rec(0.98)]
    runs = res.baseline_runs(recs, BASE, PROBE, PLAN, DS, 60.0)
    assert [r["val_bpb"] for r in runs] == [1.0, 0.98]
    assert res.baseline_runs(recs, None, PROBE, PLAN, DS, 60.0) == []  # no baseline known: nothing provisional


def test_the_baselines_earlier_rate_is_expected_of_the_baseline_only():
    from autoresearch_portable.harness.experiment import expected_rate

    recs = [_rec(1.0, tokens_per_second=5400.0), _rec(1.01, tokens_per_second=5000.0), _rec(0.99),  # no rate recorded
            _rec(1.02, tokens_per_second=3000.0, status="noisy"), _rec(0.9, sha="e" * 64, tokens_per_second=9000.0),
            _rec(1.0, tokens_per_second=8000.0, budget=120.0), _rec(1.0, tokens_per_second=5600.0)]
    assert expected_rate(recs, BASE, BASE, PROBE, PLAN, DS, 60.0) == 5400.0  # median of 5000, 5400, 5600
    assert expected_rate(recs, BASE, "e" * 64, PROBE, PLAN, DS, 60.0) is None  # an edit: its rate is its own
    assert expected_rate(recs, None, None, PROBE, PLAN, DS, 60.0) is None
    assert expected_rate(recs[:1], BASE, BASE, PROBE, PLAN, DS, 300.0) is None  # nothing at this budget yet


def test_two_runs_give_their_own_sigma():
    p = res.provisional_profile([_rec(1.0)["metrics"], _rec(0.98)["metrics"]], DS)
    assert p["baseline_bpb_mean"] == pytest.approx(0.99) and p["sigma"] == pytest.approx(0.02 / math.sqrt(2))
    assert p["repeats"] == 1 and "sigma_dof" not in p and "σ from 2 runs" in p["provisional"]
    assert nz.band_sigmas(p) == pytest.approx(nz.t975(1) * math.sqrt(1.5))


def test_one_run_takes_a_stated_prior_for_sigma():
    ref = dict(sigma=0.002, repeats=3, points=[dict(fraction=1.0, val_bpb_stderr=0.002), dict(fraction=0.25, val_bpb_stderr=0.009),
                                               dict(fraction=1.0, val_bpb_stderr=0.002)])
    p = res.provisional_profile([_rec(1.0)["metrics"]], DS, ref)
    assert p["sigma"] == pytest.approx(0.002 * 0.004 / 0.002) and p["sigma_dof"] == 3  # scaled by the eval error
    assert nz.band_sigmas(p) == pytest.approx(nz.t975(3) * math.sqrt(2))
    bare = res.provisional_profile([_rec(1.0)["metrics"]], DS)
    assert bare["sigma"] == pytest.approx(0.004) and bare["sigma_dof"] == 1 and "evaluation error" in bare["provisional"]
    assert res.provisional_profile([], DS) is None


def test_a_run_is_scored_provisionally_and_the_verdict_keeps_its_own_noise(fake_data):
    base = [_rec(1.0)["metrics"], _rec(0.98)["metrics"]]
    r = res.annotate(dict(status="ok", val_bpb=0.9, budget_seconds=60.0, budget_mode="wall"), PROBE, PLAN, DS, baseline=base)
    assert r["excess_ratio"] == pytest.approx(0.4 / 0.49) and r["provisional"].startswith("provisional: against")
    assert "calibrated_sigma" not in r and verdict.calibrated_noise(r) is None  # the verdict rule is unchanged
    assert "[provisional: against this device's baseline (2 runs at 60s)" in format_summary(r)
    other = res.annotate(dict(status="ok", val_bpb=0.9, budget_seconds=120.0, budget_mode="wall"), PROBE, PLAN, DS,
                         baseline=base)
    assert "excess_ratio" not in other and "arp calibrate" in other["normalization_note"]  # another budget needs the curve
