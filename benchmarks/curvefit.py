"""Curves of val_bpb against training FLOPs C that bend (issue 12), for the benchmarks (the
scaling law, the normalization candidates): pure fits, no device, no files.

* the power law over a known entropy floor: `bpb - floor = A * C^(-alpha)`, a line in log-log
  (the scaling benchmark's law; `fit_power_law`);
* the free asymptote: `bpb = E + A * (C/c0)^(-alpha)` with E >= floor (or >= 0 without a floor),
  three parameters, so it needs at least 4 distinct compute budgets (`fit_free_asymptote`), and
  its inverse: the compute at which the curve reaches a given bpb (`asymptote_compute`).

c0 (the geometric mean of the fitted computes) keeps the numbers of the free-asymptote fit in a
sane range: A is the excess over E at C = c0. The log-linear form `bpb = a - s*log2(C)` stays in
normalize.py, where it always was."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from autoresearch_portable.harness.baseline.normalize import fit_line  # noqa: E402

MIN_ASYMPTOTE_BUDGETS = 4
# the exponents searched: a fixed log-spaced grid, then golden-section refinement around the best
_ALPHA_GRID = [10 ** (-3 + 4 * i / 399) for i in range(400)]  # 1e-3 .. 10


def _check_points(flops: Sequence[float], bpb: Sequence[float]) -> None:
    if len(flops) != len(bpb):
        raise ValueError(f"got {len(flops)} compute values and {len(bpb)} val_bpb values; they must pair up")
    if any(not (isinstance(c, (int, float)) and math.isfinite(c) and c > 0) for c in flops):
        raise ValueError("training FLOPs must be finite and positive")
    if any(not (isinstance(b, (int, float)) and math.isfinite(b)) for b in bpb):
        raise ValueError("val_bpb values must be finite numbers")


# --- the power law over a known floor ------------------------------------------------------------

def fit_power_law(flops: Sequence[float], excess: Sequence[float]) -> dict:
    """Least squares of ln(excess) = ln(A) - alpha*ln(C). Returns A, alpha (excess = A*C^-alpha,
    C in FLOPs), the residual sd in ln units and what `power_law_log_se` needs. Needs at least two
    distinct computes and every excess > 0."""
    _check_points(flops, excess)
    if len(flops) < 2:
        raise ValueError("need at least two (FLOPs, excess) points to fit a power law")
    if any(e <= 0 for e in excess):
        raise ValueError("every excess over the floor must be > 0 to fit a power law (a point at or below the floor)")
    line = fit_line([math.log(c) for c in flops], [math.log(e) for e in excess], "cannot fit a power law")
    return dict(A=math.exp(line["intercept"]), log_A=line["intercept"], alpha=-line["slope"],
                log_resid_sd=line["resid_sd"], n=len(flops), mean_log_c=line["mean_x"], sxx=line["sxx"])


def power_law_excess(fit: dict, flops: float) -> float:
    """The fitted excess A*C^-alpha at compute `flops`."""
    return math.exp(fit["log_A"] - fit["alpha"] * math.log(flops))


def power_law_log_se(fit: dict, flops: float) -> float:
    """Standard error (ln units) of the fitted line at `flops`: resid_sd*sqrt(1/n + (x-mean)^2/sxx)."""
    x = math.log(flops)
    return fit["log_resid_sd"] * math.sqrt(1 / fit["n"] + (x - fit["mean_log_c"]) ** 2 / fit["sxx"])


# --- the free asymptote ----------------------------------------------------------------------------

def _fit_at(alpha: float, x: list[float], y: list[float], lo: float) -> tuple[float, float, float]:
    """(sse, E, A) of the best y = E + A*exp(-alpha*x) at a fixed alpha, with E >= lo."""
    u = [math.exp(-alpha * xi) for xi in x]
    n = len(u)
    mu, my = sum(u) / n, sum(y) / n
    suu = sum((ui - mu) ** 2 for ui in u)
    if suu <= 1e-300:
        a = 0.0
        e = max(lo, my)
    else:
        a = sum((ui - mu) * (yi - my) for ui, yi in zip(u, y)) / suu
        e = my - a * mu
        if e < lo:  # the constraint binds: E on the floor, A by least squares through it
            e = lo
            a = sum(ui * (yi - lo) for ui, yi in zip(u, y)) / sum(ui * ui for ui in u)
    sse = sum((yi - e - a * ui) ** 2 for ui, yi in zip(u, y))
    return sse, e, a


def fit_free_asymptote(flops: Sequence[float], bpb: Sequence[float], floor: float | None = None,
                       min_budgets: int = MIN_ASYMPTOTE_BUDGETS) -> dict:
    """Least squares of bpb = E + A*(C/c0)^(-alpha) with E >= floor (>= 0 without one), A > 0,
    alpha > 0. Returns E, A, alpha, c0, resid_sd and whether E sits on its bound. Raises
    ValueError (a clear one-line message) on too few distinct budgets, a point below the floor or
    a curve that does not fall with compute."""
    _check_points(flops, bpb)
    distinct = len({round(math.log(c), 9) for c in flops})
    if distinct < min_budgets:
        raise ValueError(f"the free-asymptote fit bpb = E + A*C^-alpha needs at least {min_budgets} distinct "
                         f"compute budgets; got {distinct}")
    lo = 0.0 if floor is None else float(floor)
    below = [b for b in bpb if b < lo]
    if below:
        raise ValueError(f"a val_bpb of {min(below):.4f} is below the floor {lo:.4f}; no curve above the floor fits it")
    c0 = math.exp(sum(math.log(c) for c in flops) / len(flops))
    x = [math.log(c / c0) for c in flops]
    y = [float(b) for b in bpb]
    fits = [(_fit_at(al, x, y, lo), al) for al in _ALPHA_GRID]
    i = min(range(len(fits)), key=lambda k: fits[k][0][0])
    # golden-section refinement between the grid neighbours of the best exponent
    a_lo, a_hi = _ALPHA_GRID[max(0, i - 1)], _ALPHA_GRID[min(len(_ALPHA_GRID) - 1, i + 1)]
    g = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        m1, m2 = a_hi - g * (a_hi - a_lo), a_lo + g * (a_hi - a_lo)
        if _fit_at(m1, x, y, lo)[0] <= _fit_at(m2, x, y, lo)[0]:
            a_hi = m2
        else:
            a_lo = m1
    alpha = (a_lo + a_hi) / 2
    sse, e, a = _fit_at(alpha, x, y, lo)
    if not a > 0:
        raise ValueError("more compute did not lower val_bpb over these points (fitted A <= 0): no falling curve fits")
    n = len(y)
    return dict(form="power", E=e, A=a, alpha=alpha, c0=c0, floor=floor, E_at_bound=e <= lo + 1e-12,
                resid_sd=math.sqrt(sse / (n - 3)) if n > 3 else float("nan"), n=n)


def asymptote_bpb(fit: dict, flops: float) -> float:
    """The free-asymptote curve's val_bpb at compute `flops`."""
    return fit["E"] + fit["A"] * (flops / fit["c0"]) ** (-fit["alpha"])


def asymptote_compute(fit: dict, bpb: float) -> float:
    """The compute at which the curve reaches `bpb` (the inverse of asymptote_bpb). Raises
    ValueError when bpb is at or below the asymptote E: no amount of compute gets the curve there."""
    if not bpb > fit["E"]:
        raise ValueError(f"val_bpb {bpb:.4f} is at or below the curve's asymptote E = {fit['E']:.4f}: "
                         f"no compute reaches it on this curve")
    return fit["c0"] * ((bpb - fit["E"]) / fit["A"]) ** (-1.0 / fit["alpha"])
