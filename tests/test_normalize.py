"""Normalized metrics: the arithmetic, checked against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from autoresearch_portable.harness.baseline import normalize as nz
from autoresearch_portable.harness.run.summary import format_summary
from autoresearch_portable.harness.run import summary

# this device: bpb = 4.0 - 0.1*log2(C), C_T = 2^30 at T = 300 s -> b_base = 4.0 - 3.0 = 1.0;
# 4 repeats: 5 runs at T, so the band of one run is t(4)*sqrt(1 + 1/5) = 2.776*1.0954 = 3.041 sigma,
# and sigma is set so that the band is 0.02 bpb
K = 2.776 * math.sqrt(1.2)
PROFILE = dict(a=4.0, s=0.1, sigma=0.02 / K, repeats=4, flops_at_budget=2.0**30, budget_seconds=300.0,
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


def test_the_band_of_one_run_counts_how_few_runs_measured_sigma():
    """Student's t for sigma's degrees of freedom, and the baseline's own uncertainty: with the
    standard benchmark's 3 runs at T a run must differ by 5 sigma, not 2, to be significant."""
    assert nz.t975(2) == pytest.approx(4.303) and nz.t975(4) == pytest.approx(2.776) and nz.t975(30) == 2.042
    assert nz.t975(31) == pytest.approx(2.0395, abs=1e-3) and nz.t975(1e6) == pytest.approx(1.96, abs=1e-3)
    assert nz.t975(0) == math.inf
    assert [nz.t975(d) for d in range(1, 60)] == sorted((nz.t975(d) for d in range(1, 60)), reverse=True)
    assert nz.band_sigmas(dict(repeats=2)) == pytest.approx(4.303 * math.sqrt(4 / 3))  # 4.97
    assert nz.band_sigmas(PROFILE) == pytest.approx(K)
    # a run 3 sigma better than the baseline: significant for 5 runs at T, noise for 3
    three = nz.normalize(1.0 - 3 * PROFILE["sigma"], PROFILE)
    assert three["significant"] is False  # 3.0 < 3.041
    assert nz.normalize(1.0 - 3.1 * PROFILE["sigma"], PROFILE)["significant"] is True
    assert nz.normalize(1.0 - 4 * PROFILE["sigma"], dict(PROFILE, repeats=2))["significant"] is False
    n = nz.normalize(0.99, PROFILE)
    assert (n["calibrated_sigma"], n["calibrated_sigma_dof"], n["band_sigmas"]) == (PROFILE["sigma"], 4, pytest.approx(K))


def test_sample_std():
    assert nz.sample_std([1.0, 1.02, 1.04]) == pytest.approx(0.02)  # deviations -0.02, 0, 0.02 -> sqrt(8e-4/2)


# the same device and reference with entropy floors: b_base = 1.0 at C_T (floor 0.5), b_ref = 1.16
PROFILE2 = dict(PROFILE, floor_bpb=0.5)
REF2 = dict(REF, floor_bpb=0.56)


def test_the_baseline_scores_a_ratio_of_one():
    n = nz.normalize(1.0, PROFILE2)
    assert n["baseline_bpb"] == pytest.approx(1.0) and n["metric"] == "excess_ratio"
    assert n["excess_ratio"] == pytest.approx(1.0) and n["significant"] is False


def test_normalized_bpb_hand_computed():
    # b = 0.95: r = (0.95 - 0.5) / (1.0 - 0.5) = 0.9; on the reference 0.56 + (1.16 - 0.56) * 0.9 = 1.10
    n = nz.normalize(0.95, PROFILE2, reference=REF2)
    assert n["excess_ratio"] == pytest.approx(0.9) and n["normalized_bpb"] == pytest.approx(1.10)
    # band: +-K sigma = 0.02 on b, 0.02 / 0.5 = 0.04 on r; on the reference 0.6 x that, with the
    # transfer error of the 2 doublings between the devices (2^30 vs 2^32)
    assert n["bpb_band"] == pytest.approx(0.02) and n["excess_ratio_band"] == pytest.approx(0.04)
    assert n["normalized_bpb_band"] == pytest.approx(0.6 * math.hypot(0.04, 2 * nz.TRANSFER_PER_DOUBLING))
    assert n["significant"] is True  # 0.05 > 0.02
    assert n["normalized_reference"] == "ref-device"


def test_inside_the_band_is_not_significant():
    n = nz.normalize(0.985, PROFILE2, reference=REF2)  # 0.015 < 0.02
    assert n["excess_ratio"] == pytest.approx(0.97) and n["significant"] is False
    worse = nz.normalize(1.03, PROFILE2)
    assert worse["excess_ratio"] == pytest.approx(1.06) and worse["significant"] is True


def test_other_budget_scales_the_baseline_compute():
    # T' = 600 s: the baseline gets 2 * C_T in wall and work mode -> b_base = 0.9 on the curve
    n = nz.normalize(0.9, PROFILE2, budget_seconds=600)
    assert n["baseline_flops"] == pytest.approx(2.0**31) and n["baseline_bpb"] == pytest.approx(0.9)
    assert n["excess_ratio"] == pytest.approx(1.0)
    # T' = 75 s: a quarter -> b_base = 1.2; a run at 1.0 has 0.5 / 0.7 of its excess
    assert nz.normalize(1.0, PROFILE2, budget_seconds=75)["excess_ratio"] == pytest.approx(0.5 / 0.7)
    # matched and work mode: the FLOP budget is the baseline's compute
    m = nz.normalize(0.8, PROFILE2, budget_seconds=300, budget_mode="matched", flop_budget=2.0**32)
    assert m["baseline_bpb"] == pytest.approx(0.8) and m["excess_ratio"] == pytest.approx(1.0)


def test_far_extrapolation_is_flagged():
    assert "extrapolated" not in nz.normalize(1.0, PROFILE2, budget_seconds=600)
    far = nz.normalize(1.0, PROFILE2, budget_seconds=3000)
    assert "extrapolated" in far and "[extrapolated" in summary.format_gain(far)


def test_summary_lines_with_and_without_profile():
    r = dict(val_bpb=0.95, status="ok")
    text = format_summary(r)
    assert "excess_ratio:     n/a (run `arp calibrate`)" in text  # named by the metric it would be scored with
    assert "normalized_bpb:   n/a (run `arp calibrate`)" in text
    r.update(nz.normalize(0.95, PROFILE2, reference=REF2))
    lines = {l.split(":")[0]: l for l in format_summary(r).splitlines()}
    assert lines["excess_ratio"] == ("excess_ratio:     0.9000 ± 0.0400 (-10.0% excess over the floor vs the baseline, "
                                     "at 3.04σ: significant)")
    assert lines["normalized_bpb"] == f"normalized_bpb:   1.100000 ± {r['normalized_bpb_band']:.6f} (ref: ref-device)"
    # calibrated but no reference for this dataset
    r2 = dict(val_bpb=0.95, status="ok", **nz.normalize(0.95, PROFILE2), normalized_note="no bundled reference for x")
    assert "n/a (no bundled reference for x)" in format_summary(r2)


def test_the_gain_is_the_excess_ratio_and_its_own_number():
    r = nz.normalize(0.95, PROFILE2, reference=REF2)
    assert r["metric"] == "excess_ratio" and not {"doublings", "doublings_band", "compute_multiplier"} & set(r)
    assert summary.gain_label(r) == "excess_ratio" and summary.short_gain(r) == "-10.0%"
    near = nz.normalize(0.99, PROFILE2, reference=REF2)  # inside the band: marked, and not significant
    assert near["significant"] is False and summary.short_gain(near) == "~-2.0%"
    # a ledger line written under the log-linear metric (before normalization v2) still shows its multiplier
    old = dict(metric="loglinear", doublings=0.5, doublings_band=0.2, compute_multiplier=math.sqrt(2), significant=True)
    assert summary.gain_label(old) == "compute_multiplier" and summary.short_gain(old) == "1.414x"
    assert summary.format_gain(dict(old, band_sigmas=K)).startswith("1.414 (doublings +0.500 ± 0.200 at 3.04σ: significant)")
    assert summary.gain_of({}) is None and summary.short_gain({}) == "n/a"


def test_the_excess_ratio_falls_back_to_delta_on_a_dataset_without_a_floor():
    r = nz.normalize(0.95, PROFILE, reference=REF)  # no floor_bpb anywhere
    assert r["metric"] == "delta" and r["delta_bpb"] == pytest.approx(-0.05) and r["delta_bpb_band"] == pytest.approx(0.02)
    assert "no known entropy floor" in r["metric_note"] and "delta" in r["metric_note"]
    assert r["normalized_bpb"] == pytest.approx(1.11)  # 1.16 - 0.05
    assert "[excess_ratio: the dataset has no known entropy floor; scored by delta instead]" in summary.format_gain(r)
    assert summary.gain_label(r) == "delta_bpb" and summary.short_gain(r) == "-0.0500"
    assert summary.format_gain(r).startswith("-0.050000 ± 0.020000 bpb vs the baseline")
    no_ref_floor = nz.normalize(0.95, PROFILE2, reference=REF)
    assert no_ref_floor["metric"] == "delta" and "reference profile has no entropy floor" in no_ref_floor["metric_note"]
    with pytest.raises(ValueError, match="not above the floor"):
        nz.excess_ratio(0.9, 0.5, 0.5)


def test_the_transfer_term_grows_with_the_compute_gap_and_leaves_the_device_alone():
    tau = nz.TRANSFER_PER_DOUBLING
    assert tau > 0 and nz.TRANSFER_MEASURED_DOUBLINGS > 0
    assert nz.compute_gap(2.0**33, 2.0**30) == pytest.approx(3.0) and nz.compute_gap(1.0, 4.0) == pytest.approx(-2.0)
    assert nz.carried_band(0.03, 0.0) == pytest.approx(0.03)  # the same compute: the run's own band
    assert nz.carried_band(0.03, -4.0) == pytest.approx(math.sqrt(0.03**2 + (4 * tau) ** 2))
    assert nz.carried_band(0.03, 1.0) < nz.carried_band(0.03, 2.0) < nz.carried_band(0.03, 3.0)
    # on the reference itself (no gap) nothing is added; the ratio's own band never changes
    same = nz.normalize(0.95, PROFILE2, reference=dict(REF2, flops_at_budget=2.0**30))
    assert same["normalized_bpb_band"] == pytest.approx((1.4 - 0.56) * 0.04)  # the reference curve at 2^30: 1.4
    far = nz.normalize(0.95, PROFILE2, reference=REF2)
    assert far["excess_ratio_band"] == same["excess_ratio_band"] == pytest.approx(0.04)
    assert far["compute_gap"] == pytest.approx(-2.0) and "4x (2.00 doublings)" in far["compute_gap_note"]


def test_the_gap_note_says_whether_the_measured_range_covers_it():
    inside = nz.gap_note(nz.TRANSFER_MEASURED_DOUBLINGS)
    beyond = nz.gap_note(-(nz.TRANSFER_MEASURED_DOUBLINGS + 1))
    assert "inside the measured range" in inside and "beyond the measured range" in beyond
    assert nz.gap_note(0.0).startswith("compute gap 1x (0.00 doublings)")


def test_at_its_own_budget_the_baseline_is_its_measured_mean_not_the_curve():
    p = dict(PROFILE2, baseline_bpb_mean=0.98)  # the runs at T averaged 0.98; the line says 1.0 there
    assert nz.at_own_budget(p, 2.0**30) and not nz.at_own_budget(p, 2.0**31)
    assert nz.base_value(p, 2.0**30) == pytest.approx(0.98)
    assert nz.base_value(p, 2.0**31) == pytest.approx(0.9)  # elsewhere: the curve
    r = nz.normalize(0.95, p)
    assert r["excess_ratio"] == pytest.approx((0.95 - 0.5) / (0.98 - 0.5)) and r["baseline_bpb"] == pytest.approx(0.98)
    other = nz.normalize(0.95, p, budget_seconds=600.0)  # twice the budget: the curve at 2 C_T
    assert other["baseline_bpb"] == pytest.approx(0.9)
