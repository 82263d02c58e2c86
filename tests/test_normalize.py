"""Normalized metrics: the arithmetic, checked against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from autoresearch_portable.harness import normalize as nz
from autoresearch_portable.harness.summary import format_summary

# this device: bpb = 4.0 - 0.1*log2(C), C_T = 2^30 at T = 300 s -> b_base = 4.0 - 3.0 = 1.0
PROFILE = dict(a=4.0, s=0.1, sigma=0.01, flops_at_budget=2.0**30, budget_seconds=300.0,
               flops_range=[2.0**28, 2.0**30], name="this-cpu")
# reference: bpb = 5.0 - 0.12*log2(C), C_T = 2^32 -> b_ref = 5.0 - 3.84 = 1.16
REF = dict(a=5.0, s=0.12, sigma=0.02, flops_at_budget=2.0**32, budget_seconds=300.0, name="ref-device")


def test_fit_recovers_a_and_s_from_exact_points():
    flops = [2.0**28, 2.0**29, 2.0**30, 2.0**30, 2.0**30]
    bpb = [4.0 - 0.1 * math.log2(c) for c in flops]
    fit = nz.fit_curve(flops, bpb)
    assert fit["a"] == pytest.approx(4.0, abs=1e-9)
    assert fit["s"] == pytest.approx(0.1, abs=1e-12)
    assert fit["resid_sd"] == pytest.approx(0.0, abs=1e-9)


def test_fit_recovers_a_and_s_from_noisy_points():
    # noise +-0.01 placed symmetrically at each compute: the least-squares line is the true one
    flops, bpb = [], []
    for c in (2.0**28, 2.0**29, 2.0**30):
        for e in (-0.01, 0.01):
            flops.append(c)
            bpb.append(4.0 - 0.1 * math.log2(c) + e)
    fit = nz.fit_curve(flops, bpb)
    assert fit["a"] == pytest.approx(4.0, abs=1e-9)
    assert fit["s"] == pytest.approx(0.1, abs=1e-9)
    # residuals all 0.01 -> sqrt(6 * 1e-4 / 4); sxx = 2 * (1 + 0 + 1) = 4 -> se(s) = resid_sd / 2
    assert fit["resid_sd"] == pytest.approx(math.sqrt(6e-4 / 4))
    assert fit["s_stderr"] == pytest.approx(math.sqrt(6e-4 / 4) / 2)


def test_fit_needs_two_distinct_computes():
    with pytest.raises(ValueError):
        nz.fit_curve([1e9, 1e9], [1.0, 1.1])
    with pytest.raises(ValueError):
        nz.fit_curve([1e9], [1.0])


def test_sample_std():
    assert nz.sample_std([1.0, 1.02, 1.04]) == pytest.approx(0.02)  # deviations -0.02, 0, 0.02 -> sqrt(8e-4/2)


def test_baseline_scores_zero_doublings():
    n = nz.normalize(1.0, PROFILE)
    assert n["baseline_bpb"] == pytest.approx(1.0)
    assert n["doublings"] == pytest.approx(0.0, abs=1e-12)
    assert n["compute_multiplier"] == pytest.approx(1.0)
    assert n["significant"] is False


def test_curve_value_at_twice_the_compute_scores_one_doubling():
    b = nz.curve_bpb(PROFILE["a"], PROFILE["s"], 2 * PROFILE["flops_at_budget"])  # 0.9
    assert b == pytest.approx(0.9)
    n = nz.normalize(b, PROFILE)
    assert n["doublings"] == pytest.approx(1.0)
    assert n["compute_multiplier"] == pytest.approx(2.0)


def test_normalized_bpb_hand_computed():
    # b = 0.95: g = (1.0 - 0.95) / 0.1 = 0.5, multiplier sqrt(2); normalized = 1.16 - 0.12*0.5 = 1.10
    n = nz.normalize(0.95, PROFILE, reference=REF)
    assert n["doublings"] == pytest.approx(0.5)
    assert n["compute_multiplier"] == pytest.approx(math.sqrt(2))
    assert n["reference_bpb"] == pytest.approx(1.16)
    assert n["normalized_bpb"] == pytest.approx(1.10)
    # band: +-2 sigma = 0.02 on b, 0.02/0.1 = 0.2 doublings, 0.2*0.12 = 0.024 on normalized_bpb
    assert n["bpb_band"] == pytest.approx(0.02)
    assert n["doublings_band"] == pytest.approx(0.2)
    assert n["normalized_bpb_band"] == pytest.approx(0.024)
    assert n["significant"] is True  # 0.05 > 0.02
    assert n["normalized_reference"] == "ref-device"


def test_inside_the_band_is_not_significant():
    n = nz.normalize(0.985, PROFILE, reference=REF)  # 0.015 < 0.02
    assert n["doublings"] == pytest.approx(0.15)
    assert n["significant"] is False
    worse = nz.normalize(1.03, PROFILE)
    assert worse["doublings"] == pytest.approx(-0.3) and worse["significant"] is True


def test_other_budget_scales_the_baseline_compute():
    # T' = 600 s: the baseline gets 2 * C_T in wall and work mode -> b_base = 0.9
    n = nz.normalize(0.9, PROFILE, budget_seconds=600)
    assert n["baseline_flops"] == pytest.approx(2.0**31)
    assert n["baseline_bpb"] == pytest.approx(0.9)
    assert n["doublings"] == pytest.approx(0.0, abs=1e-12)
    # T' = 75 s: a quarter -> b_base = 1.2; a run at 1.0 is two doublings better
    assert nz.normalize(1.0, PROFILE, budget_seconds=75)["doublings"] == pytest.approx(2.0)
    # matched and work mode: the FLOP budget is the baseline's compute
    m = nz.normalize(0.8, PROFILE, budget_seconds=300, budget_mode="matched", flop_budget=2.0**32)
    assert m["baseline_bpb"] == pytest.approx(0.8) and m["doublings"] == pytest.approx(0.0, abs=1e-12)


def test_far_extrapolation_is_flagged():
    assert "extrapolated" not in nz.normalize(1.0, PROFILE, budget_seconds=600)
    far = nz.normalize(1.0, PROFILE, budget_seconds=3000)
    assert "extrapolated" in far and "[extrapolated" in nz.format_multiplier(far)


def test_summary_lines_with_and_without_profile():
    r = dict(val_bpb=0.95, status="ok")
    text = format_summary(r)
    assert "compute_multiplier: n/a (run `arp calibrate`)" in text
    assert "normalized_bpb:   n/a (run `arp calibrate`)" in text
    r.update(nz.normalize(0.95, PROFILE, reference=REF))
    lines = {l.split(":")[0]: l for l in format_summary(r).splitlines()}
    assert lines["compute_multiplier"].startswith("compute_multiplier: 1.414 (doublings +0.500 ± 0.200 at 2σ: significant)")
    assert lines["normalized_bpb"] == "normalized_bpb:   1.100000 ± 0.024000 (ref: ref-device)"
    # calibrated but no reference for this dataset
    r2 = dict(val_bpb=0.95, status="ok", **nz.normalize(0.95, PROFILE), normalized_note="no bundled reference for x")
    assert "n/a (no bundled reference for x)" in format_summary(r2)
