"""benchmarks/metric_candidates.py: the candidate metrics of normalization v2 side by side,
checked against numbers worked out by hand."""

from __future__ import annotations

import importlib.util
import sys
import math
from pathlib import Path

import pytest

from autoresearch_portable.harness.baseline import normalize as nz

_spec = importlib.util.spec_from_file_location(
    "metric_candidates", Path(__file__).resolve().parent.parent / "benchmarks" / "metric_candidates.py")
mc = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # dataclasses need it there
_spec.loader.exec_module(mc)

K = 2.776 * math.sqrt(1.2)
# this device: bpb = 4.0 - 0.1*log2(C), C_T = 2^30 -> b_base = 1.0; the band of one run 0.02 bpb
PROFILE = dict(a=4.0, s=0.1, sigma=0.02 / K, repeats=4, flops_at_budget=2.0**30, budget_seconds=300.0, name="this-cpu")
# reference: bpb = 5.0 - 0.12*log2(C), C_T = 2^32 -> b_ref = 1.16
REF = dict(a=5.0, s=0.12, sigma=0.02, flops_at_budget=2.0**32, budget_seconds=300.0, name="ref-device")
# free-asymptote curves: this device E=0.5, A=0.5, alpha=1, c0=C_T -> 1.0 at C_T, 0.75 at 2 C_T;
# reference E=0.6, A=0.56, alpha=0.5, c0=C_ref -> 1.16 at C_ref
PF = dict(form="power", E=0.5, A=0.5, alpha=1.0, c0=2.0**30)
RF = dict(form="power", E=0.6, A=0.56, alpha=0.5, c0=2.0**32)
PROFILE2 = dict(PROFILE, floor_bpb=0.5, power_fit=PF)
REF2 = dict(REF, floor_bpb=0.56, power_fit=RF)


def test_candidates_hand_computed():
    c = mc.candidates(0.95, PROFILE2, reference=REF2)
    assert set(c) == set(mc.METRICS)
    # delta: 0.95 - 1.0; on the reference: 1.16 - 0.05
    assert c["delta"]["gain"] == pytest.approx(-0.05) and c["delta"]["normalized_bpb"] == pytest.approx(1.11)
    assert c["delta"]["band"] == pytest.approx(0.02) and c["delta"]["significant"] is True
    # loglinear: g = (1.0 - 0.95) / 0.1 = 0.5 doublings; 1.16 - 0.12 * 0.5 = 1.10
    assert c["loglinear"]["gain"] == pytest.approx(0.5) and c["loglinear"]["normalized_bpb"] == pytest.approx(1.10)
    assert c["loglinear"]["band"] == pytest.approx(0.2) and c["loglinear"]["normalized_bpb_band"] == pytest.approx(0.024)
    # excess ratio, the harness's own: (0.95 - 0.5) / (1.0 - 0.5) = 0.9; 0.56 + 0.6 * 0.9 = 1.10
    r = c["excess_ratio"]
    assert r["gain"] == pytest.approx(0.9) and r["normalized_bpb"] == pytest.approx(1.10) and r["band"] == pytest.approx(0.04)
    assert r["normalized_bpb_band"] == nz.normalize(0.95, PROFILE2, reference=REF2)["normalized_bpb_band"]
    # power: 0.95 = 0.5 + 0.5 * (C/C_T)^-1 -> C = C_T / 0.9 -> g = log2(1/0.9)
    p = c["power"]
    g = math.log2(1 / 0.9)
    assert p["gain"] == pytest.approx(g) and p["baseline_bpb"] == pytest.approx(1.0)
    assert p["normalized_bpb"] == pytest.approx(0.6 + 0.56 * 2.0 ** (-0.5 * g))
    # band: g at b_base -+ 0.02 -> log2(0.5/0.48), log2(0.5/0.52)
    assert p["band"] == pytest.approx((math.log2(0.5 / 0.48) - math.log2(0.5 / 0.52)) / 2)


def test_power_candidate_one_doubling_and_beyond_the_asymptote():
    b2 = 0.5 + 0.5 / 2  # the baseline's curve at 2 C_T
    assert mc.candidates(b2, PROFILE2)["power"]["gain"] == pytest.approx(1.0)
    beyond = mc.candidates(0.45, PROFILE2, reference=REF2)["power"]
    assert beyond["gain"] == math.inf and beyond["normalized_bpb"] == pytest.approx(0.6)


def test_candidates_say_what_is_missing():
    c = mc.candidates(0.95, dict(PROFILE, power_fit_note="needs at least 4 distinct compute budgets; got 3"))
    assert "4 distinct" in c["power"]["error"]
    assert "no known entropy floor" in c["excess_ratio"]["error"]
    assert "normalized_bpb" not in c["delta"]  # no reference given
    c = mc.candidates(0.95, PROFILE2, reference=REF)
    assert "reference profile has no free-asymptote fit" in c["power"]["error"]
    assert "reference profile has no entropy floor" in c["excess_ratio"]["error"]


def test_a_profiles_power_fit_comes_from_its_points():
    pts = [dict(status="ok", train_flops=c, val_bpb=0.5 + 0.5 * 2.0**30 / c) for c in (2.0**28, 2.0**29, 2.0**29.5, 2.0**30)]
    fit = mc.with_power_fit(dict(PROFILE2, points=pts))["power_fit"]
    assert fit["alpha"] == pytest.approx(1.0, abs=0.01) and fit["E"] == pytest.approx(0.5, abs=0.01)
    assert "power_fit_note" in mc.with_power_fit(dict(PROFILE2, points=pts[:3]))
