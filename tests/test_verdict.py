"""The decision after a run (harness/records/verdict.py): keep, discard or repeat N, against the bar on
this branch, with σ pooled from the calibration and every repeated group. The rule's error rates
on simulated loops: benchmarks/verdict_sim.py."""

from __future__ import annotations

import pytest

from autoresearch_portable.harness.baseline.normalize import t975
from autoresearch_portable.harness.records.verdict import (Noise, calibrated_noise, decide, describe, find_bar, groups,
                                                   pooled_noise)

BASE = dict(status="ok", budget_seconds=60.0, budget_mode="wall", backend="cpu", device="Fake CPU", dataset="bundled")


def rec(val, code, status="ok", untrusted=False, **metrics):
    r = dict(status=status, git_commit=code[:7], train_py_sha256=code,
             metrics=dict(BASE, val_bpb=val, val_bpb_stderr=0.002, **metrics))
    if untrusted:
        r["untrusted"] = True
    return r


def run(val, code):
    return dict(BASE, val_bpb=val, val_bpb_stderr=0.002, train_py_sha256=code, git_commit=code[:7])


BRANCH = {"base" + "0" * 36, "better" + "0" * 34, "next" + "0" * 36}


def test_a_single_lucky_run_does_not_move_the_bar():
    records = [rec(1.00, "base"), rec(1.01, "base"), rec(0.95, "lucky")]
    noise = Noise(0.03, 4)  # the lead 0.055 < t 2.776 x 0.03 x sqrt(1 + 1/2) = 0.102
    assert find_bar(groups(records, BASE), noise, None).code == "base"
    d = decide(records, run(0.99, "next"), noise)
    assert (d.action, d.bar_mean, d.n) == ("discard", pytest.approx(1.005), 1)


def test_a_clear_win_is_kept():
    records = [rec(1.00, "base"), rec(1.01, "base")]
    d = decide(records, run(0.90, "new"), Noise(0.005, 4))
    assert d.action == "keep" and d.gain == pytest.approx(0.105)
    # σ pools the calibration's 4 degrees of freedom and the baseline's repeat: 5
    assert d.dof == 5 and d.band == pytest.approx(t975(5) * ((4 * 0.005**2 + 0.00005) / 5) ** 0.5 * 1.5**0.5)
    assert "verdict: keep" in describe(d)


def test_a_gain_inside_the_band_but_above_its_noise_is_repeated_as_often_as_it_takes():
    records = [rec(1.00, "base"), rec(1.01, "base")]
    noise = Noise(0.01, 30)  # t 2.042; se for 1 vs 2 runs 0.01225: the band 0.025
    d = decide(records, run(0.985, "new"), noise)  # gain 0.02: above one se, inside the band
    assert d.action == "repeat" and d.runs == 2  # 3 runs: band 2.042 x 0.00913 = 0.0186 < 0.02
    assert "verdict: repeat 2" in describe(d) and "arp train --repeat 2" in describe(d)
    # the repeats land: the code's mean over its 3 runs is judged, and kept
    later = records + [rec(0.985, "new"), rec(0.984, "new")]
    d = decide(later, run(0.986, "new"), noise)
    assert (d.action, d.n, d.mean) == ("keep", 3, pytest.approx(0.985))
    # a gain that 4 more runs would not resolve: 4 more narrow it; still inside the band after
    # MAX_RUNS runs, too small to resolve at this budget
    d = decide(records, run(0.9925, "tiny"), noise)
    assert (d.action, d.runs) == ("repeat", 4)
    assert decide(records + [rec(0.9925, "tiny")] * 8, run(0.9925, "tiny"), noise).action == "discard"
    assert decide(records, run(1.02, "worse"), noise).action == "discard"


def test_the_bar_is_on_the_branch_and_moves_only_on_a_significant_win():
    records = [rec(1.00, "base"), rec(1.01, "base"), rec(0.90, "better"), rec(0.91, "better"), rec(0.80, "reset"),
               rec(0.80, "reset")]
    noise = Noise(0.01, 4)
    assert find_bar(groups(records, BASE), noise, None).code == "reset"
    assert find_bar(groups(records, BASE), noise, BRANCH).code == "better"  # "reset" is not on the branch
    d = decide(records, run(0.89, "next"), noise, BRANCH)
    assert d.bar_mean == pytest.approx(0.905) and d.bar_commit == "better"


def test_sigma_pools_the_calibration_and_every_repeated_group():
    gs = groups([rec(1.00, "base"), rec(1.02, "base"), rec(0.90, "x"), rec(0.92, "x"), rec(0.80, "once")], BASE)
    pooled = pooled_noise(gs, Noise(0.01, 4))  # 4 x 0.01^2 + 0.0002 + 0.0002, over 4 + 1 + 1
    assert pooled.dof == 6 and pooled.sigma == pytest.approx((0.0008 / 6) ** 0.5)
    assert pooled_noise(gs).dof == 2 and pooled_noise(gs[-1:]) is None
    assert calibrated_noise(dict(calibrated_sigma=0.004, calibrated_sigma_dof=4)) == Noise(0.004, 4)
    assert calibrated_noise(dict(bpb_band=0.008)) is None  # a line without the calibration's σ and dof


def test_unknown_noise_asks_for_repeats_and_the_first_run_is_the_bar():
    d = decide([], run(1.0, "base"))
    assert d.action == "keep" and d.bar_mean is None
    d = decide([rec(1.00, "base")], run(0.90, "x"))
    assert d.action == "repeat" and d.runs == 2 and "noise unknown" in d.why


def test_same_code_is_one_group_and_untrusted_or_failed_lines_never_count():
    records = [rec(1.00, "base"), rec(0.10, "forged", untrusted=True), rec(0.20, "bad", status="invalid"),
               rec(0.50, "other", budget_seconds=600.0)]
    assert [g.code for g in groups(records, BASE)] == ["base"]
    d = decide(records, run(1.02, "base"))
    assert (d.n, d.mean, d.action) == (2, pytest.approx(1.01), "keep")  # the baseline again: it is the bar
    assert "this code is the bar" in d.why
    assert decide(records, dict(run(0.9, "x"), status="crash")) is None


def test_runs_of_another_harness_version_are_not_compared():
    """Harness 3's trainer is twice as fast on CPU: an unchanged train.py would beat every earlier
    run made with harness 2's, so those are not the bar."""
    records = [rec(1.00, "base", harness_version="2"), rec(1.01, "base", harness_version="2")]
    now = dict(run(0.80, "base2"), harness_version="3")
    assert groups(records, now) == []
    assert decide(records, now, Noise(0.005, 4)).bar_mean is None
