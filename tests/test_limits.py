"""The work-mode hang guard: slow but progressing runs go on, runs that stop stepping are stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from autoresearch_portable.harness.run import abandon as ab
from autoresearch_portable.harness.run import child as child_process
from autoresearch_portable.harness.run.limits import Progress, advanced, hang_reason, stall_seconds


def test_a_slow_run_that_keeps_stepping_is_not_hung():
    seen = Progress(launched=0.0)
    limit = stall_seconds(30)
    t = 0.0
    for step in range(1, 40):  # a step every 0.9 x the stall limit: 20x slower than any quiet run
        t += 0.9 * limit
        assert advanced(seen, step / 40, t)
        assert hang_reason(seen, t + 0.5 * limit, 30) is None


def test_warm_up_steps_count_as_progress():
    seen = Progress(launched=0.0)
    assert advanced(seen, 0.0, 100.0)
    assert advanced(seen, 0.0, 200.0)
    assert hang_reason(seen, 250.0, 30) is None


def test_no_first_step_is_a_hang():
    why = hang_reason(Progress(launched=0.0), stall_seconds(30) + 1, 30)
    assert why and "no training step" in why


def test_a_run_stuck_mid_budget_is_hung_and_says_where():
    seen = Progress(launched=0.0)
    advanced(seen, 0.25, 10.0)
    assert hang_reason(seen, 10.0 + stall_seconds(30) - 1, 30) is None
    why = hang_reason(seen, 10.0 + stall_seconds(30) + 1, 30)
    assert why and "25%" in why


def test_stepping_on_past_the_budget_is_not_progress():
    """A train.py that keeps calling rt.step after its FLOPs ran out reports progress 1 again and
    again: that does not keep it alive."""
    seen = Progress(launched=0.0)
    assert advanced(seen, 1.0, 10.0)
    assert not advanced(seen, 1.0, 100.0)
    assert not advanced(seen, 0.5, 120.0)
    why = hang_reason(seen, 10.0 + stall_seconds(30) + 1, 30)
    assert why and "end of the budget" in why


def test_the_watcher_records_progress_from_the_pipe():
    r, w = os.pipe()
    watcher = ab.Watcher(r, None, kill=lambda: None).start()
    os.write(w, b"0.00000 5.0\n0.10000 4.0\ngarbage\n0.20000 3.5\n")
    os.close(w)
    watch = watcher.stop()
    assert watch.reports == 3
    assert watcher.seen.progress == 0.2 and watcher.seen.last_advance is not None


def test_wait_stops_a_child_when_the_guard_says_hung():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    t0 = time.monotonic()
    outcome, why = child_process.wait(child, 30.0, lambda: "stuck" if time.monotonic() - t0 > 0.5 else None)
    assert (outcome, why) == ("timeout", "stuck")
    assert child.poll() is not None and time.monotonic() - t0 < 15


def test_wait_lets_a_child_finish_and_keeps_the_time_limit():
    child = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    assert child_process.wait(child, 30.0, lambda: None) == ("exited", None)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    assert child_process.wait(child, 1.0) == ("timeout", None)
