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
    three = nz.normalize(1.0 - 3 * PROFILE["sigma"], PROFILE, metric="delta")
    assert three["significant"] is False  # 3.0 < 3.041
    assert nz.normalize(1.0 - 3.1 * PROFILE["sigma"], PROFILE, metric="delta")["significant"] is True
    assert nz.normalize(1.0 - 4 * PROFILE["sigma"], dict(PROFILE, repeats=2), metric="delta")["significant"] is False
    n = nz.normalize(0.99, PROFILE)
    assert (n["calibrated_sigma"], n["calibrated_sigma_dof"], n["band_sigmas"]) == (PROFILE["sigma"], 4, pytest.approx(K))


def test_sample_std():
    assert nz.sample_std([1.0, 1.02, 1.04]) == pytest.approx(0.02)  # deviations -0.02, 0, 0.02 -> sqrt(8e-4/2)


def test_baseline_scores_zero_doublings():
    n = nz.normalize(1.0, PROFILE, metric="loglinear")
    assert n["baseline_bpb"] == pytest.approx(1.0)
    assert n["doublings"] == pytest.approx(0.0, abs=1e-12)
    assert n["compute_multiplier"] == pytest.approx(1.0)
    assert n["significant"] is False


def test_curve_value_at_twice_the_compute_scores_one_doubling():
    b = nz.curve_bpb(PROFILE["a"], PROFILE["s"], 2 * PROFILE["flops_at_budget"])  # 0.9
    assert b == pytest.approx(0.9)
    n = nz.normalize(b, PROFILE, metric="loglinear")
    assert n["doublings"] == pytest.approx(1.0)
    assert n["compute_multiplier"] == pytest.approx(2.0)


def test_normalized_bpb_hand_computed():
    # b = 0.95: g = (1.0 - 0.95) / 0.1 = 0.5, multiplier sqrt(2); normalized = 1.16 - 0.12*0.5 = 1.10
    n = nz.normalize(0.95, PROFILE, reference=REF, metric="loglinear")
    assert n["doublings"] == pytest.approx(0.5)
    assert n["compute_multiplier"] == pytest.approx(math.sqrt(2))
    assert n["reference_bpb"] == pytest.approx(1.16)
    assert n["normalized_bpb"] == pytest.approx(1.10)
    # band: +-K sigma = 0.02 on b, 0.02/0.1 = 0.2 doublings, 0.2*0.12 = 0.024 on normalized_bpb
    assert n["bpb_band"] == pytest.approx(0.02)
    assert n["doublings_band"] == pytest.approx(0.2)
    assert n["normalized_bpb_band"] == pytest.approx(0.024)
    assert n["significant"] is True  # 0.05 > 0.02
    assert n["normalized_reference"] == "ref-device"


def test_inside_the_band_is_not_significant():
    n = nz.normalize(0.985, PROFILE, reference=REF, metric="loglinear")  # 0.015 < 0.02
    assert n["doublings"] == pytest.approx(0.15)
    assert n["significant"] is False
    worse = nz.normalize(1.03, PROFILE, metric="loglinear")
    assert worse["doublings"] == pytest.approx(-0.3) and worse["significant"] is True


def test_other_budget_scales_the_baseline_compute():
    # T' = 600 s: the baseline gets 2 * C_T in wall and work mode -> b_base = 0.9
    n = nz.normalize(0.9, PROFILE, budget_seconds=600, metric="loglinear")
    assert n["baseline_flops"] == pytest.approx(2.0**31)
    assert n["baseline_bpb"] == pytest.approx(0.9)
    assert n["doublings"] == pytest.approx(0.0, abs=1e-12)
    # T' = 75 s: a quarter -> b_base = 1.2; a run at 1.0 is two doublings better
    assert nz.normalize(1.0, PROFILE, budget_seconds=75, metric="loglinear")["doublings"] == pytest.approx(2.0)
    # matched and work mode: the FLOP budget is the baseline's compute
    m = nz.normalize(0.8, PROFILE, budget_seconds=300, budget_mode="matched", flop_budget=2.0**32, metric="loglinear")
    assert m["baseline_bpb"] == pytest.approx(0.8) and m["doublings"] == pytest.approx(0.0, abs=1e-12)


def test_far_extrapolation_is_flagged():
    assert "extrapolated" not in nz.normalize(1.0, PROFILE, budget_seconds=600, metric="loglinear")
    far = nz.normalize(1.0, PROFILE, budget_seconds=3000, metric="loglinear")
    assert "extrapolated" in far and "[extrapolated" in summary.format_gain(far)


def test_summary_lines_with_and_without_profile():
    r = dict(val_bpb=0.95, status="ok")
    text = format_summary(r)
    assert "excess_ratio:     n/a (run `arp calibrate`)" in text  # named by the metric it would be scored with
    assert "normalized_bpb:   n/a (run `arp calibrate`)" in text
    r.update(nz.normalize(0.95, PROFILE, reference=REF, metric="loglinear"))
    lines = {l.split(":")[0]: l for l in format_summary(r).splitlines()}
    assert lines["compute_multiplier"].startswith("compute_multiplier: 1.414 (doublings +0.500 ± 0.200 at 3.04σ: significant)")
    assert lines["normalized_bpb"] == "normalized_bpb:   1.100000 ± 0.024000 (ref: ref-device)"
    # calibrated but no reference for this dataset
    r2 = dict(val_bpb=0.95, status="ok", **nz.normalize(0.95, PROFILE, metric="loglinear"), normalized_note="no bundled reference for x")
    assert "n/a (no bundled reference for x)" in format_summary(r2)


# --- normalization v2: the candidates side by side, and the switch ------------------------------

# the same device and reference with entropy floors and free-asymptote curves:
# this device: E=0.5, A=0.5, alpha=1, c0=C_T -> b_base = 1.0 at C_T, 0.75 at 2 C_T
PF = dict(form="power", E=0.5, A=0.5, alpha=1.0, c0=2.0**30)
# reference: E=0.6, A=0.56, alpha=0.5, c0=C_ref -> b_ref = 1.16 at C_ref
RF = dict(form="power", E=0.6, A=0.56, alpha=0.5, c0=2.0**32)
PROFILE2 = dict(PROFILE, floor_bpb=0.5, power_fit=PF)
REF2 = dict(REF, floor_bpb=0.56, power_fit=RF)


def test_candidates_hand_computed():
    c = nz.candidates(0.95, PROFILE2, reference=REF2)
    assert set(c) == set(nz.METRICS)
    # delta: 0.95 - 1.0; on the reference: 1.16 - 0.05
    assert c["delta"]["gain"] == pytest.approx(-0.05) and c["delta"]["normalized_bpb"] == pytest.approx(1.11)
    assert c["delta"]["band"] == pytest.approx(0.02) and c["delta"]["significant"] is True
    # loglinear: the metric of today
    assert c["loglinear"]["gain"] == pytest.approx(0.5) and c["loglinear"]["normalized_bpb"] == pytest.approx(1.10)
    # excess ratio: (0.95 - 0.5) / (1.0 - 0.5) = 0.9; 0.56 + (1.16 - 0.56) * 0.9 = 1.10; band 0.02/0.5
    r = c["excess_ratio"]
    assert r["gain"] == pytest.approx(0.9) and r["normalized_bpb"] == pytest.approx(1.10)
    assert r["band"] == pytest.approx(0.04) and r["normalized_bpb_band"] == pytest.approx(0.024)
    # power: 0.95 = 0.5 + 0.5 * (C/C_T)^-1 -> C = C_T / 0.9 -> g = log2(1/0.9)
    p = c["power"]
    g = math.log2(1 / 0.9)
    assert p["gain"] == pytest.approx(g) and p["baseline_bpb"] == pytest.approx(1.0)
    assert p["normalized_bpb"] == pytest.approx(0.6 + 0.56 * 2.0 ** (-0.5 * g))
    # band: g at b_base -+ 0.02 -> log2(0.5/0.48), log2(0.5/0.52)
    assert p["band"] == pytest.approx((math.log2(0.5 / 0.48) - math.log2(0.5 / 0.52)) / 2)


def test_power_candidate_one_doubling_and_beyond_the_asymptote():
    b2 = 0.5 + 0.5 / 2  # the baseline's curve at 2 C_T
    assert nz.candidates(b2, PROFILE2)["power"]["gain"] == pytest.approx(1.0)
    beyond = nz.candidates(0.45, PROFILE2, reference=REF2)["power"]
    assert beyond["gain"] == math.inf and beyond["normalized_bpb"] == pytest.approx(0.6)


def test_candidates_say_what_is_missing():
    c = nz.candidates(0.95, dict(PROFILE, power_fit_note="needs at least 4 distinct compute budgets; got 3"))
    assert "4 distinct" in c["power"]["error"]
    assert "no known entropy floor" in c["excess_ratio"]["error"]
    assert "normalized_bpb" not in c["delta"]  # no reference given
    c = nz.candidates(0.95, PROFILE2, reference=REF)
    assert "reference profile has no free-asymptote fit" in c["power"]["error"]
    assert "reference profile has no entropy floor" in c["excess_ratio"]["error"]
    with pytest.raises(ValueError, match="not above the floor"):
        nz.excess_ratio(0.9, 0.5, 0.5)


def test_the_switch_chooses_the_metric(monkeypatch):
    default = nz.normalize(0.95, PROFILE2, reference=REF2)
    assert default["metric"] == nz.METRIC == "excess_ratio" and default["excess_ratio"] == pytest.approx(0.9)
    assert nz.fit_form() == "loglinear"  # a curve-free metric needs only the baseline's value: the line gives it
    loglinear = nz.normalize(0.95, PROFILE2, reference=REF2, metric="loglinear")
    assert loglinear["doublings"] == pytest.approx(0.5) and loglinear["normalized_bpb"] == pytest.approx(1.10)
    ratio = nz.normalize(0.95, PROFILE2, reference=REF2, metric="excess_ratio")
    assert ratio["excess_ratio"] == pytest.approx(0.9) and ratio["normalized_bpb_band"] == pytest.approx(0.024)
    delta = nz.normalize(0.95, PROFILE2, reference=REF2, metric="delta")
    assert delta["normalized_bpb"] == pytest.approx(1.11) and delta["delta_bpb"] == pytest.approx(-0.05)
    monkeypatch.setattr(nz, "METRIC", "power")
    power = nz.normalize(0.75, PROFILE2, reference=REF2)
    assert power["metric"] == "power" and nz.fit_form() == "power"
    assert power["doublings"] == pytest.approx(1.0) and power["compute_multiplier"] == pytest.approx(2.0)
    assert power["normalized_bpb"] == pytest.approx(0.6 + 0.56 / math.sqrt(2))
    # a profile built for power: its baseline curve is the free asymptote
    assert nz.baseline_bpb(dict(PROFILE2, fit_form="power"), 2.0**31) == pytest.approx(0.75)
    missing = nz.normalize(0.95, PROFILE, reference=REF)
    assert "normalized_bpb" not in missing and missing["normalized_note"].startswith("power:")
    with pytest.raises(ValueError, match="unknown normalization metric"):
        nz.normalize(0.95, PROFILE, metric="nope")


def test_a_curve_free_metric_reports_its_own_gain_not_the_curves_doublings():
    r = nz.normalize(0.95, PROFILE2, reference=REF2, metric="excess_ratio")
    assert r["metric"] == "excess_ratio" and r["excess_ratio"] == pytest.approx(0.9)
    assert r["excess_ratio_band"] == pytest.approx(0.04) and r["significant"] is True
    assert not {"doublings", "doublings_band", "compute_multiplier"} & set(r)
    assert summary.gain_label(r) == "excess_ratio" and summary.short_gain(r) == "-10.0%"
    assert summary.format_gain(r) == "0.9000 ± 0.0400 (-10.0% excess over the floor vs the baseline, at 3.04σ: significant)"
    # inside the band: marked, and not significant
    near = nz.normalize(0.99, PROFILE2, reference=REF2, metric="excess_ratio")
    assert near["significant"] is False and summary.short_gain(near) == "~-2.0%"
    d = nz.normalize(0.95, PROFILE2, reference=REF2, metric="delta")
    assert summary.gain_label(d) == "delta_bpb" and summary.short_gain(d) == "-0.0500"
    assert summary.format_gain(d).startswith("-0.050000 ± 0.020000 bpb vs the baseline")
    # a ledger line written under the log-linear metric still shows its multiplier
    old = nz.normalize(0.95, PROFILE, metric="loglinear")
    assert summary.gain_label(old) == "compute_multiplier" and summary.short_gain(old) == "1.414x"
    assert summary.gain_of({}) is None and summary.short_gain({}) == "n/a"


def test_the_excess_ratio_falls_back_to_delta_on_a_dataset_without_a_floor():
    r = nz.normalize(0.95, PROFILE, reference=REF, metric="excess_ratio")  # no floor_bpb anywhere
    assert r["metric"] == "delta" and r["delta_bpb"] == pytest.approx(-0.05)
    assert "no known entropy floor" in r["metric_note"] and "delta" in r["metric_note"]
    assert r["normalized_bpb"] == pytest.approx(1.11)
    assert "[excess_ratio: the dataset has no known entropy floor; scored by delta instead]" in summary.format_gain(r)
