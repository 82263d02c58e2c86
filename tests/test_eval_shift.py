"""benchmarks/eval_shift.py: the spread of one model's score over fresh evaluation sets (pure)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("eval_shift", ROOT / "benchmarks" / "eval_shift.py")
eval_shift = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eval_shift)


def test_spread_separates_the_texts_floor_from_the_score():
    # the floor moves with the score: above the floor, the sets agree exactly
    fresh = [dict(val_bpb=0.60 + d, floor_bpb=0.25 + d, stderr=0.004) for d in (0.0, 0.002, -0.002)]
    s = eval_shift.spread(fresh)
    assert s["n"] == 3
    assert s["sd_val_bpb"] == pytest.approx(0.002) and s["sd_floor"] == pytest.approx(0.002)
    assert s["sd_above_floor"] == pytest.approx(0.0, abs=1e-12)
    assert s["rms_stderr"] == pytest.approx(0.004)
    assert eval_shift.spread(fresh[:1]) is None
