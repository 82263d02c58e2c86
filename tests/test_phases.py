"""The parent's clock by phase (harness/run/phases.py) and the marks the watcher takes from the pipe."""

from __future__ import annotations

import os
import time

import pytest

from autoresearch_portable.harness.run import phases
from autoresearch_portable.harness.run.abandon import Watcher
from autoresearch_portable.harness.run.phases import Marks, Measured

BASE = Measured(startup_seconds=4.0, warmup_seconds=1.0, handover_seconds=3.0, startup_cpu_seconds=4.0,
                handover_cpu_seconds=3.0, cpu_per_second=2.0, flops_per_second=1e10)


def honest(budget=10.0) -> Marks:
    """An honest wall-mode run: 4 s start-up, warm-up 1 s + the budget, 3 s hand-over."""
    return Marks(launched=0.0, start=4.0, done=4.0 + 1.0 + budget, finish=4.0 + 1.0 + budget + 0.01,
                 exited=8.0 + 1.0 + budget, cpu_start=4.0, cpu_finish=4.0 + 2 * (1.0 + budget),
                 cpu_exit=7.0 + 2 * (1.0 + budget), step_interval=0.2)


def test_an_honest_run_is_within_every_phase():
    for mode, flop_budget in (("wall", None), ("work", 10 * 1e10)):
        lims = phases.limits(BASE, 10.0, mode, flop_budget, on_cpu=True)
        assert phases.judge(honest(), lims) is None, mode


def test_training_after_rt_done_is_past_the_clock_even_without_a_measurement():
    m = honest()
    m.finish = m.done + 3.0
    m.exited = m.finish + 3.0
    why = phases.judge(m, None)
    assert why and "past the clock" in why
    m.finish = m.done + 0.3  # within a second: calling rt.finish after the last step
    assert phases.judge(m, None) is None


def test_the_overrun_limit_grows_with_slow_steps():
    m = honest()
    m.finish, m.step_interval = m.done + 3.0, 2.0  # steps of 2 s: one more step's worth is fine
    assert phases.judge(m, None) is None


@pytest.mark.parametrize("phase, shift, word", [
    ("startup", 4.0 * 0.5 + 5.0 + 0.2 + 1.0, "start-up"),       # over 1.5x the baseline + slack
    ("handover", 3.0 * 0.5 + 5.0 + 0.2 + 1.0, "hand-over"),
    ("training", 2 * 1.0 + 5.0 + 0.2 + 1.0, "training"),          # over budget + 2x warm-up + slack
])
def test_each_phase_has_its_own_limit(phase, shift, word):
    """On an accelerator every phase is limited in wall time."""
    m = honest()
    if phase == "startup":
        m.start += shift
        m.done, m.finish = m.done + shift, m.finish + shift
        m.exited += shift
    elif phase == "handover":
        m.exited += shift
    else:
        m.finish += shift
        m.done = m.finish - 0.01
        m.exited += shift
    why = phases.judge(m, phases.limits(BASE, 10.0, "wall", None, on_cpu=False))
    assert why and word in why, why


@pytest.mark.parametrize("phase", ["startup", "handover"])
def test_on_cpu_start_up_and_hand_over_are_limited_by_the_work_done_not_by_waiting(phase):
    """On a CPU backend, in wall mode too: a start-up or hand-over slowed by sharing its core (the
    evaluator's start-up on a one-core machine) is fine; the same phase doing work beyond 1.5x the
    baseline + slack (5.2 s at 2 CPU-s per second) is over budget."""
    lims = phases.limits(BASE, 10.0, "wall", None, on_cpu=True)
    waited = honest()
    if phase == "startup":
        waited.start, waited.done, waited.finish = waited.start + 10, waited.done + 10, waited.finish + 10
    waited.exited += 10
    assert phases.judge(waited, lims) is None
    worked, extra = honest(), 4.0 * 0.5 + 5.2 * 2.0 + 1.0
    if phase == "startup":
        worked.cpu_start, worked.cpu_finish = worked.cpu_start + extra, worked.cpu_finish + extra
    worked.cpu_exit += extra
    why = phases.judge(worked, lims)
    assert why and ("start-up" if phase == "startup" else "hand-over") in why and "CPU-s" in why, why


def test_work_mode_caps_training_cpu_seconds_not_wall_time():
    lims = phases.limits(BASE, 10.0, "work", 10 * 1e10, on_cpu=True)
    m = honest()
    m.finish += 100.0  # a busy machine: wall time is no reason in work mode ...
    m.done, m.exited = m.finish - 0.01, m.exited + 100.0
    assert phases.judge(m, lims) is None
    m.cpu_finish = m.cpu_start + 3 * 2 * 11.0  # ... 3x the CPU the baseline needs for the FLOPs is
    m.cpu_exit = m.cpu_finish + 3.0
    why = phases.judge(m, lims)
    assert why and "CPU" in why


def test_work_mode_on_an_accelerator_caps_training_wall_time():
    lims = phases.limits(BASE, 10.0, "matched", 10 * 1e10, on_cpu=False)
    m = honest()
    m.finish += 40.0
    m.done, m.exited = m.finish - 0.01, m.exited + 40.0
    why = phases.judge(m, lims)
    assert why and "training" in why


def test_measured_from_a_probe_run():
    got = phases.measured_from(honest(), training_seconds=10.0, train_flops=1.1e11)
    assert got["startup_seconds"] == 4.0 and got["handover_seconds"] == pytest.approx(3.99, abs=0.02)
    assert got["warmup_seconds"] == pytest.approx(1.01, abs=0.02) and got["cpu_per_second"] == pytest.approx(2.0, abs=0.01)
    assert Measured.from_dict(got).flops_per_second == pytest.approx(1.1e11 / 11.01, rel=1e-3)
    assert phases.measured_from(Marks(launched=0.0), 1.0, None) == {}
    assert Measured.from_dict({"startup_seconds": "x"}) is None and Measured.from_dict(None) is None


def test_the_watcher_takes_the_first_of_each_mark_from_the_pipe():
    r, w = os.pipe()
    seen = []
    watcher = Watcher(r, None, kill=lambda: None, on_mark=seen.append).start()
    for line in (b"event start\n", b"0.50000 3.0\n", b"event start\n", b"1.00000 2.5\n", b"1.00000 2.5\n",
                 b"event finish\n", b"event bogus\n"):
        os.write(w, line)
        time.sleep(0.01)
    os.close(w)
    watch = watcher.stop()
    assert seen == ["start", "done", "finish"]
    assert watch.marks["start"] < watch.marks["done"] < watch.marks["finish"]
    assert watch.step_interval is not None and watch.reports == 3
