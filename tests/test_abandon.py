"""Early abandonment's decision, without hardware: the pure rule on synthetic traces, the watcher on
a real pipe, and which runs get a baseline trace at all."""

from __future__ import annotations

import math
import os
import random
import time

import pytest

from autoresearch_portable.harness.run import abandon as ab

B = ab.BINS


def curve(i: int, scale: float = 1.0, shift: float = 0.0) -> float:
    """A training loss that falls fast, then slowly (bin i of B)."""
    p = (i + 0.5) / B
    return 2.0 + shift + 3.0 * math.exp(-6 * p * scale)


def baseline_traces(n=3, noise=0.01, seed=0):
    rng = random.Random(seed)
    return [[curve(i) + rng.gauss(0, noise) for i in range(B)] for _ in range(n)]


def first_abandon(run, baseline, rule=ab.Rule()):
    """Feed the bins one at a time, as the watcher does; the first decision to abandon."""
    for n in range(1, B + 1):
        d = ab.decide(run, n, baseline, rule)
        if d is not None and d.abandon:
            return d
    return None


def test_bins_average_the_reports_by_progress():
    r, w = os.pipe()
    reports = [(0.0, 5.0), (0.01, 3.0), (0.5, 2.0), (0.999, 1.0), (1.0, 3.0), (0.3, float("nan"))]
    os.write(w, "".join(f"{p} {loss}\n" for p, loss in reports).encode())
    os.close(w)
    bins = ab.Watcher(r, None, kill=lambda: None).start().stop().trace
    assert bins[0] == 4.0 and bins[25] == 2.0 and bins[-1] == 2.0
    assert bins[15] is None and sum(b is not None for b in bins) == 3


def test_a_run_like_the_baseline_is_never_abandoned():
    base = ab.make_baseline(baseline_traces())
    for seed in range(1, 30):  # other seeds of the same code: the noise of the baseline itself
        run = baseline_traces(1, seed=seed)[0]
        assert first_abandon(run, base) is None, seed


def test_a_clearly_worse_run_is_abandoned_after_the_minimum_share():
    base = ab.make_baseline(baseline_traces())
    run = [curve(i, scale=0.5) for i in range(B)]  # learns at half the speed
    d = first_abandon(run, base)
    assert d is not None and d.abandon
    assert ab.Rule().min_progress <= d.progress <= 0.4
    assert d.gap > d.margin > 0 and d.trailing_bins >= ab.Rule().patience
    assert d.run_loss == pytest.approx(d.baseline_loss + d.gap)
    text = ab.describe(d, 60)
    assert "trailed the calibrated baseline" in text and f"{d.gap:.4f}" in text
    assert ab.saved_seconds(d, 60) == pytest.approx((1 - d.progress) * 60)


def test_a_slow_starter_that_catches_up_by_the_minimum_share_is_kept():
    base = ab.make_baseline(baseline_traces())
    # far behind for the first 20 % (a long warm-up), on the baseline from 30 % on
    run = [curve(i) + (1.0 if i < 10 else 0.0) for i in range(B)]
    assert first_abandon(run, base) is None


def test_no_decision_before_min_or_after_max_progress_or_without_data():
    base = ab.make_baseline(baseline_traces())
    worse = [curve(i, shift=1.0) for i in range(B)]
    rule = ab.Rule()
    assert ab.decide(worse, int(rule.min_progress * B) - 1, base, rule) is None
    assert ab.decide(worse, int(rule.max_progress * B) + 1, base, rule) is None
    assert ab.decide([None] * B, 25, base, rule) is None
    # worse only at the very end: nothing left to save, never abandoned
    late = [curve(i) + (1.0 if i >= 46 else 0.0) for i in range(B)]
    assert first_abandon(late, base) is None


def test_patience_one_bin_blip_is_not_enough():
    base = ab.make_baseline(baseline_traces(noise=0.0))
    run = [curve(i) for i in range(B)]
    run[20] += 3.0  # one bad bin lifts the smoothed loss for `window` bins, not for good
    strict = ab.Rule(window=1, patience=2)
    assert first_abandon(run, base, strict) is None


def test_the_margin_is_k_spreads_plus_the_floor():
    base = ab.make_baseline(baseline_traces(noise=0.05))
    rule = ab.Rule()
    d = ab.decide([curve(i) for i in range(B)], 20, base, rule)
    assert d.margin == pytest.approx(rule.k * d.spread + rule.floor * d.baseline_loss)
    # the pooled spread: never below the typical spread where decisions are made
    later = [s for s in base.spread[int(rule.min_progress * B) - 1:] if s is not None]
    # (every spread below the median is raised to it: the smallest value is that median, half the time)
    assert later.count(min(later)) >= len(later) // 2


def test_too_little_calibration_makes_no_baseline():
    assert ab.make_baseline([]) is None
    assert ab.make_baseline(baseline_traces(1)) is None
    assert ab.make_baseline([[1.0] * 10, [1.0] * 10]) is None  # another bin count


def test_trace_for_only_where_the_trace_applies():
    profile = dict(budget_seconds=60.0, loss_trace=dict(bins=B, runs=baseline_traces()),
                   baseline_sizes=dict(DEPTH=2, MODEL_DIM=128, TOTAL_BATCH_SIZE=2048))
    ws = dict(DEPTH=2, MODEL_DIM=128, TOTAL_BATCH_SIZE=2048)
    trace, why = ab.trace_for(profile, 60, "wall", ws)
    assert trace == profile["loss_trace"]["runs"] and why.startswith("on")
    assert ab.trace_for(profile, 60, "work", None)[0] is not None
    for args, needle in [((None, 60, "wall", ws), "no calibration"),
                         ((dict(profile, loss_trace=None), 60, "wall", ws), "no loss trace"),
                         ((profile, 30, "wall", ws), "calibrated at 60s"),
                         ((profile, 60, "matched", ws), "matched"),
                         ((profile, 60, "wall", dict(ws, MODEL_DIM=64)), "not the calibrated one")]:
        trace, why = ab.trace_for(*args)
        assert trace is None and needle in why, (args[1:], why)


def test_profile_trace_keeps_the_runs_at_t():
    pts = [dict(loss_trace=[1.0] * B), dict(loss_trace=[1.1] * B), dict(loss_trace=None)]
    assert ab.profile_trace(pts) == dict(bins=B, runs=[[1.0] * B, [1.1] * B])
    assert ab.profile_trace(pts[:1]) is None


def _feed(watcher_fd_w, lines):
    for line in lines:
        os.write(watcher_fd_w, line)


def test_the_watcher_reads_the_pipe_and_kills_once():
    base = ab.make_baseline(baseline_traces())
    r, w = os.pipe()
    kills = []
    watcher = ab.Watcher(r, base, kill=lambda: kills.append(time.time())).start()
    garbage = [b"hello\n", b"0.5\n", b"nan 1.0\n", b"2.0 1.0\n", b"x" * 1000 + b"\n"]
    _feed(w, garbage)
    steps = [(k / 500, curve(int(k / 500 * B), scale=0.4)) for k in range(500)]  # a slow learner
    _feed(w, [f"{p:.5f} {loss:.6g}\n".encode() for p, loss in steps])
    os.close(w)
    watch = watcher.stop()
    assert len(kills) == 1  # decided once, killed once
    assert watch.decision is not None and watch.decision.abandon and watch.active
    assert watch.reports == 500  # the garbage lines were ignored
    assert watch.trace[0] is not None and watch.to_dict()["decision"]["ratio"] > 1


def test_a_busy_machine_holds_the_abandonment():
    """Wall mode on a busy machine: the run trails because it was slowed, so it is not abandoned
    (it ends noisy); once the machine is quiet the same trailing run is abandoned."""
    base = ab.make_baseline(baseline_traces())
    steps = [(k / 500, curve(int(k / 500 * B), scale=0.4)) for k in range(500)]  # a slow learner
    for busy, killed in (("other processes used 60% of the CPU so far", 0), (None, 1)):
        r, w = os.pipe()
        kills = []
        watcher = ab.Watcher(r, base, kill=lambda: kills.append(1), hold=lambda: busy).start()
        _feed(w, [f"{p:.5f} {loss:.6g}\n".encode() for p, loss in steps])
        os.close(w)
        watch = watcher.stop()
        assert len(kills) == killed
        assert (watch.decision is None) == bool(busy)
        assert (watch.held or "").endswith(busy or "") and bool(watch.held) == bool(busy)
        assert watch.to_dict()["held"] == watch.held


def test_without_a_baseline_the_watcher_only_records_the_trace():
    r, w = os.pipe()
    watcher = ab.Watcher(r, None, kill=lambda: pytest.fail("no baseline, no kill")).start()
    _feed(w, [f"{k / 100:.5f} {5 - k / 100:.4f}\n".encode() for k in range(100)])
    os.close(w)
    watch = watcher.stop()
    assert not watch.active and watch.decision is None and watch.reports == 100
    assert watch.trace[0] == pytest.approx(5 - 0.005) and watch.trace[-1] == pytest.approx(5 - 0.985)
