"""The verdict after a run: judged against the best *confirmed* result, with the noise known or
said to be unknown; the same code run twice is one group, not two chances at luck."""

from __future__ import annotations

import pytest

from autoresearch_portable.harness.verdict import Noise, calibrated_noise, confirmed_best, groups, pooled_sigma, verdict

BASE = dict(status="ok", budget_seconds=60.0, budget_mode="wall", backend="cpu", device="Fake CPU", dataset="bundled")


def rec(val, code, status="ok", untrusted=False, **metrics):
    r = dict(status=status, git_commit=code[:7], train_py_sha256=code,
             metrics=dict(BASE, val_bpb=val, val_bpb_stderr=0.002, **metrics))
    if untrusted:
        r["untrusted"] = True
    return r


def run(val, code):
    return dict(BASE, val_bpb=val, val_bpb_stderr=0.002, train_py_sha256=code, git_commit=code[:7])


def test_a_single_lucky_run_does_not_become_the_bar():
    records = [rec(1.00, "base"), rec(1.01, "base"), rec(0.95, "lucky")]
    gs = groups(records, BASE)
    assert [g.n for g in gs] == [2, 1]
    best = confirmed_best(gs, Noise(0.03, 4))  # band 2.776*0.03*sqrt(1+1/2) = 0.102; the lead is 0.055
    assert best.code == "base"
    v = verdict(records, run(0.99, "next"), Noise(0.03, 4))
    assert "best confirmed 1.005000" in v and "not significant" in v


def test_a_clear_or_repeated_win_is_confirmed():
    records = [rec(1.00, "base"), rec(1.01, "base"), rec(0.90, "better"), rec(0.91, "better")]
    assert confirmed_best(groups(records, BASE), Noise(0.01, 4)).code == "better"
    v = verdict(records[:2], run(0.90, "new"), Noise(0.005, 4))
    assert "a confirmed win" in v and "4 degrees of freedom, band t=2.78" in v
    v = verdict(records[:2], run(0.985, "new"), Noise(0.005, 4))  # band 2.776*0.005*sqrt(1.5) = 0.017 < 0.02 < 2 bands
    assert "confirm it with `arp train --repeat 2`" in v


def test_sigma_from_few_runs_widens_the_band():
    """The same lead is a win when σ is known from many runs, noise when from two."""
    records = [rec(1.00, "base"), rec(1.01, "base")]  # mean 1.005; the lead below is 0.03
    assert "a confirmed win" in verdict(records, run(0.975, "new"), Noise(0.005, 30))  # band 2.042*0.0061 = 0.0125
    assert "not significant" in verdict(records, run(0.975, "new"), Noise(0.005, 1))  # band 12.706*0.0061 = 0.078
    assert calibrated_noise(dict(calibrated_sigma=0.004, calibrated_sigma_dof=4)) == Noise(0.004, 4)
    assert calibrated_noise(dict(bpb_band=0.008)) is None  # a line without the calibration's σ and dof


def test_noise_from_repeats_or_unknown():
    records = [rec(1.00, "base"), rec(1.02, "base")]
    noise = pooled_sigma(groups(records, BASE))
    assert noise.sigma == pytest.approx(0.0141421, rel=1e-4) and noise.dof == 1
    v = verdict(records, run(0.90, "x"))
    assert "from repeated runs in this ledger" in v
    v = verdict([rec(1.00, "base")], run(0.90, "x"))
    assert "not a confirmed win" in v and "--repeat 3" in v


def test_same_code_is_one_group_and_untrusted_or_failed_lines_never_count():
    records = [rec(1.00, "base"), rec(0.10, "forged", untrusted=True), rec(0.20, "bad", status="invalid"),
               rec(0.50, "other", budget_seconds=600.0)]
    assert [g.code for g in groups(records, BASE)] == ["base"]
    v = verdict(records, run(1.02, "base"))
    assert "same code as 1 earlier run(s): now 2 runs, mean 1.010000" in v
    assert "best confirmed result" in v
    assert verdict(records, dict(run(0.9, "x"), status="crash")) is None
    assert "first ok run" in verdict([], run(1.0, "x"))


def test_runs_of_another_harness_version_are_not_compared():
    """Harness 3's trainer is twice as fast on CPU: an unchanged train.py would beat every earlier
    run made with harness 2's, so those are not the bar."""
    records = [rec(1.00, "base", harness_version="2"), rec(1.01, "base", harness_version="2")]
    now = dict(run(0.80, "base2"), harness_version="3")
    assert groups(records, now) == []
    assert "nothing to beat yet" in verdict(records, now, Noise(0.005, 4))
    # the ledger line's own (runner-written) version counts, even where its metrics say otherwise
    signed = [dict(r, harness_version="3") for r in records]
    assert "a confirmed win" in verdict(signed, now, Noise(0.005, 4))
