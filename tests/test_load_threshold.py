"""benchmarks/load_threshold.py: the analysis that turns runs beside a partial hog into a load
threshold (pure: no training)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("load_threshold", ROOT / "benchmarks" / "load_threshold.py")
load_threshold = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(load_threshold)


def run(duty, steps, share, status="ok", bpb=None):
    return dict(duty=duty, steps=steps, others_share=share, status=status, val_bpb=bpb)


def test_the_threshold_is_where_the_lost_steps_reach_the_quiet_spread():
    # quiet: 100 +- 2 steps; every 10 % of the CPU others use costs 15 % of the steps
    runs = [run(0, 98, 0.0, bpb=0.79), run(0, 102, 0.01, bpb=0.81), run(0.2, 85, 0.1, bpb=0.9), run(0.4, 70, 0.2, bpb=1.0)]
    a = load_threshold.analyse(runs)
    assert a["quiet_steps_mean"] == 100 and a["lost_steps_per_share"] == pytest.approx(1.5)
    sd = (8 / 1) ** 0.5 / 100  # the quiet runs' relative spread
    assert a["supported_threshold"] == pytest.approx(round(2 * sd / 1.5, 3), abs=1e-3)
    assert a["bpb_per_share"] == pytest.approx(1.0) and a["quiet_bpb_sd"] == pytest.approx(0.0141, abs=1e-4)
    assert a["levels"]["0.2"] == dict(runs=1, steps_ratio=0.85, others_share=0.1, statuses=["ok"])


def test_without_two_quiet_runs_there_is_nothing_to_compare_with():
    assert load_threshold.analyse([run(0, 100, 0.0), run(0.5, 60, 0.25)]) == {}


def test_the_hog_keeps_its_share_of_a_core_busy():
    import time

    with load_threshold.PartialHog(0.5, 5.0) as hog:
        import psutil

        p = psutil.Process(hog.proc.pid)
        p.cpu_percent()
        time.sleep(1.0)
        busy = p.cpu_percent()
    assert 25 <= busy <= 75, busy
