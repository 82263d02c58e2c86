"""The bending curves of normalization v2 (benchmarks/curvefit.py): fits recover known parameters,
the inverse round-trips, E stays at or above the floor, degenerate inputs raise a clear ValueError."""

from __future__ import annotations

import math

import pytest

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("curvefit", Path(__file__).resolve().parent.parent / "benchmarks" / "curvefit.py")
cf = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # dataclasses need it there
_spec.loader.exec_module(cf)

FLOPS = [2.0**k for k in range(36, 44)]  # 8 distinct budgets, 7 doublings


def test_power_law_recovers_a_and_alpha():
    excess = [3.0 * c ** -0.12 for c in FLOPS]
    fit = cf.fit_power_law(FLOPS, excess)
    assert fit["A"] == pytest.approx(3.0, rel=1e-9) and fit["alpha"] == pytest.approx(0.12, abs=1e-12)
    assert fit["log_resid_sd"] == pytest.approx(0.0, abs=1e-9)
    assert cf.power_law_excess(fit, 1e17) == pytest.approx(3.0 * 1e17 ** -0.12)
    assert cf.power_law_log_se(fit, 1e17) == pytest.approx(0.0, abs=1e-9)


def test_power_law_prediction_error_grows_away_from_the_data():
    excess = [3.0 * c ** -0.12 * (1.02 if i % 2 else 0.98) for i, c in enumerate(FLOPS)]
    fit = cf.fit_power_law(FLOPS, excess)
    assert fit["alpha"] == pytest.approx(0.12, abs=0.01)
    inside, far = cf.power_law_log_se(fit, FLOPS[4]), cf.power_law_log_se(fit, 1e17)
    assert 0 < inside < far


def test_power_law_degenerate_inputs():
    with pytest.raises(ValueError, match="at least two"):
        cf.fit_power_law([1e12], [0.1])
    with pytest.raises(ValueError, match="same compute"):
        cf.fit_power_law([1e12, 1e12], [0.1, 0.2])
    with pytest.raises(ValueError, match="must be > 0"):
        cf.fit_power_law([1e12, 2e12], [0.1, 0.0])
    with pytest.raises(ValueError, match="pair up"):
        cf.fit_power_law([1e12, 2e12], [0.1])


def _curve(e, a, alpha, c0=2.0**40):
    return [e + a * (c / c0) ** -alpha for c in FLOPS]


def test_free_asymptote_recovers_known_parameters():
    bpb = _curve(0.40, 0.15, 0.6)
    fit = cf.fit_free_asymptote(FLOPS, bpb, floor=0.31)
    assert fit["E"] == pytest.approx(0.40, abs=1e-6)
    assert fit["alpha"] == pytest.approx(0.6, abs=1e-5)
    assert cf.asymptote_bpb(fit, 2.0**40) == pytest.approx(0.55, abs=1e-6)  # A at c0 = 2^40
    assert fit["E_at_bound"] is False and fit["form"] == "power"
    for c, b in zip(FLOPS, bpb):
        assert cf.asymptote_bpb(fit, c) == pytest.approx(b, abs=1e-6)


def test_free_asymptote_with_noise_stays_close():
    noise = [0.004, -0.004, 0.003, -0.003, 0.002, -0.002, 0.001, -0.001]
    bpb = [b + n for b, n in zip(_curve(0.40, 0.15, 0.6), noise)]
    fit = cf.fit_free_asymptote(FLOPS, bpb, floor=0.31)
    assert fit["E"] == pytest.approx(0.40, abs=0.03)
    assert cf.asymptote_bpb(fit, FLOPS[-1]) == pytest.approx(_curve(0.40, 0.15, 0.6)[-1], abs=0.01)
    assert 0 < fit["resid_sd"] < 0.01


def test_free_asymptote_respects_the_floor():
    # the true asymptote (0.20) lies below the floor (0.30): E must stop at the floor
    bpb = _curve(0.20, 0.40, 0.3)
    assert min(bpb) > 0.30
    fit = cf.fit_free_asymptote(FLOPS, bpb, floor=0.30)
    assert fit["E"] == pytest.approx(0.30) and fit["E_at_bound"] is True
    assert all(cf.asymptote_bpb(fit, c) >= 0.30 for c in [1e10, 1e20, 1e30])
    # without a floor E only has to stay >= 0, and finds the true one
    free = cf.fit_free_asymptote(FLOPS, bpb)
    assert free["E"] == pytest.approx(0.20, abs=1e-5)


def test_inverse_round_trips():
    fit = cf.fit_free_asymptote(FLOPS, _curve(0.40, 0.15, 0.6), floor=0.31)
    for c in (1e9, 2.0**38, 3.3e12, 1e17):
        assert cf.asymptote_compute(fit, cf.asymptote_bpb(fit, c)) == pytest.approx(c, rel=1e-9)
    for b in (0.41, 0.5, 0.9):
        assert cf.asymptote_bpb(fit, cf.asymptote_compute(fit, b)) == pytest.approx(b, abs=1e-12)
    with pytest.raises(ValueError, match="at or below the curve's asymptote"):
        cf.asymptote_compute(fit, fit["E"])


def test_free_asymptote_degenerate_inputs():
    bpb = _curve(0.40, 0.15, 0.6)
    with pytest.raises(ValueError, match="at least 4 distinct compute budgets; got 3"):
        cf.fit_free_asymptote(FLOPS[:3] + FLOPS[:3], bpb[:3] + bpb[:3])
    with pytest.raises(ValueError, match="below the floor"):
        cf.fit_free_asymptote(FLOPS, bpb, floor=0.5)
    with pytest.raises(ValueError, match="did not lower"):
        cf.fit_free_asymptote(FLOPS, [0.5 + 0.01 * i for i in range(len(FLOPS))], floor=0.3)
    with pytest.raises(ValueError, match="finite and positive"):
        cf.fit_free_asymptote([0.0] + FLOPS[1:], bpb)
    with pytest.raises(ValueError, match="finite numbers"):
        cf.fit_free_asymptote(FLOPS, [math.nan] + bpb[1:])
