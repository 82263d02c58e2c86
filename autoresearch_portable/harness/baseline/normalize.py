"""Normalized results (the README's "Comparable results"): pure arithmetic on a calibration
profile, no device, no files.

A profile holds the device's baseline curve `bpb = a - s*log2(C)` over training FLOPs C, fitted
to the unmodified baseline trained at T/4, T/2 and T (plus repeats at T with other seeds), and
sigma, the sample standard deviation of the baseline's val_bpb over the runs at T.

For a run with val_bpb b:

* b_base = a - s*log2(C_base): the baseline's fitted value at the compute the baseline gets under
  the run's budget. For a run under the calibration's own budget T that is C_T, the mean training
  FLOPs of the calibration runs at T. For another budget T' it is C_T * T'/T in wall and work mode
  (the baseline's calibrated FLOP/s times T'), and the FLOP budget itself in matched mode;
* the gain, by METRIC. Today the excess ratio r = (b - floor) / (b_base - floor) over the dataset's
  entropy floor (0.95: 5% less excess than the baseline), and normalized_bpb = floor_ref +
  (b_ref - floor_ref) * r on a reference device's baseline (b_ref: its fitted value at its own
  budget-T compute). On a dataset without a known floor, delta = b - b_base, normalized_bpb =
  b_ref + delta (`metric` in the result says which);
* noise band: +-k sigma on b (a run within it of b_base is "not significant"), carried through the
  formula: +-k sigma/(b_base - floor) on r. k = band_sigmas(profile) = t * sqrt(1 + 1/n): the
  two-sided 95% band of one new run around a baseline measured by n runs at T, where sigma itself
  comes from those n runs (Student's t with n-1 degrees of freedom); 5.0 for n = 3, 3.0 for n = 5.

The candidates measured for normalization v2 (issue 12), each computed by `candidates()` for the
same run (benchmarks/check_normalization.py prints them side by side):

* "delta": delta = b - b_base; normalized_bpb = b_ref + delta;
* "loglinear": g = (b_base - b)/s doublings, compute_multiplier = 2**g, normalized_bpb =
  b_ref - s_ref*g (the metric before v2; its "2x compute" measured 0.5-0.9 doublings);
* "power": a compute multiplier on the free-asymptote curve bpb = E + A*(C/c0)^-alpha, E >= floor
  (curvefit.py; the profile's `power_fit`, which needs >= 4 distinct calibration budgets):
  g = log2(C_equiv / C_base), C_equiv = the compute at which that curve reaches b;
  normalized_bpb = the reference's curve at C_ref * 2^g;
* "excess_ratio": above.

METRIC below is the one switch that says which candidate defines the gain, normalized_bpb and the
band; `fit_form(METRIC)` is the curve `arp calibrate` must fit for it. A curve-free metric (delta,
excess_ratio) reports its own gain (`excess_ratio`, `delta_bpb`), not the log-linear curve's
doublings or compute_multiplier, which measure compute only where the curve is a line.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from autoresearch_portable.harness.baseline import curvefit
from autoresearch_portable.harness.run.summary import GAIN_KEY

BAND_SIGMAS = 2.0  # for an error known from thousands of scored tokens (the evaluation's own)

# Student's t, 97.5% quantile, for 1..30 degrees of freedom: a sigma measured from 3-5 runs is itself
# uncertain, and +-2 of it would call noise "significant" far more often than 1 time in 20.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
# THE switch (issue 12, item 3): which candidate defines the gain, normalized_bpb, the band and
# significance. The excess ratio, by the measured table in benchmarks/README.md ("Normalization
# v2"): it and delta transfer across devices alike, the log-linear g worst (its "2x compute" is
# 0.5-0.9 doublings on corpus v2), the free-asymptote curve not at all (runs below its asymptote).
METRIC = "excess_ratio"
METRICS = ("delta", "loglinear", "power", "excess_ratio")
CURVE_FREE = ("delta", "excess_ratio")  # need only the baseline's value, not the shape of its curve


def fit_curve(flops: Sequence[float], bpb: Sequence[float]) -> dict[str, float]:
    """Least-squares fit of bpb = a - s*log2(C). Returns a, s, the standard error of s and the
    residual standard deviation. Needs at least two distinct compute values."""
    if len(flops) != len(bpb) or len(flops) < 2:
        raise ValueError("need at least two (FLOPs, bpb) points to fit the baseline curve")
    if any(not (c > 0) for c in flops):
        raise ValueError("training FLOPs must be positive")
    line = curvefit.fit_line([math.log2(c) for c in flops], bpb, "cannot fit a slope")
    s = -line["slope"]           # d bpb / d log2 C is negative when more compute helps
    a = line["intercept"]
    resid_sd = line["resid_sd"]
    s_stderr = resid_sd / math.sqrt(line["sxx"]) if len(flops) > 2 else float("nan")
    return dict(a=a, s=s, s_stderr=s_stderr, resid_sd=resid_sd)


def curve_bpb(a: float, s: float, flops: float) -> float:
    """The fitted baseline val_bpb at training compute `flops`."""
    return a - s * math.log2(flops)


def t975(dof: float) -> float:
    """Student's t 97.5% quantile (a two-sided 95% band) for `dof` degrees of freedom (Welch's may
    be fractional: interpolated in 1/dof); beyond the table, its Cornish-Fisher series (within
    0.001 there). Infinite below 1: no noise estimate."""
    if not dof >= 1:
        return math.inf
    if dof < len(_T975):
        lo, hi = math.floor(dof), math.ceil(dof)
        if lo == hi:
            return _T975[lo - 1]
        w = (1 / lo - 1 / dof) / (1 / lo - 1 / hi)
        return _T975[lo - 1] + w * (_T975[hi - 1] - _T975[lo - 1])
    if dof == len(_T975):
        return _T975[-1]
    z = 1.959964
    return z + (z**3 + z) / (4 * dof) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)


def runs_at_budget(profile: dict) -> int:
    """How many runs at T measured the profile's sigma (and its baseline value there)."""
    return int(profile["repeats"]) + 1


def band_sigmas(profile: dict) -> float:
    """The band of one new run around the profile's baseline, in its sigma: t(n-1) * sqrt(1 + 1/n)
    for n runs at T. sqrt(1 + 1/n): the run's own noise plus that of the baseline's value."""
    n = runs_at_budget(profile)
    return t975(n - 1) * math.sqrt(1 + 1 / n)


def sample_std(values: Sequence[float]) -> float:
    """Sample standard deviation (n-1); needs two values."""
    n = len(values)
    if n < 2:
        raise ValueError("need at least two repeats for a noise estimate")
    m = sum(values) / n
    return math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))


def doublings(b: float, b_base: float, s: float) -> float:
    """g = (b_base - b) / s."""
    return (b_base - b) / s


def normalized_bpb(g: float, b_ref: float, s_ref: float) -> float:
    """b_ref - s_ref * g."""
    return b_ref - s_ref * g


def fit_form(metric: str | None = None) -> str:
    """The baseline curve a calibration fits for a metric: "power" (free asymptote) for the power
    metric, else the log-linear one (delta and excess_ratio only need b_base, which it gives)."""
    metric = metric or METRIC
    if metric not in METRICS:
        raise ValueError(f"unknown normalization metric {metric!r} (one of {', '.join(METRICS)})")
    return "power" if metric == "power" else "loglinear"


def baseline_bpb(profile: dict, flops: float) -> float:
    """The profile's baseline curve (the form it was built with) at compute `flops`."""
    if profile.get("fit_form") == "power":
        return curvefit.asymptote_bpb(profile["power_fit"], flops)
    return curve_bpb(profile["a"], profile["s"], flops)


def excess_ratio(b: float, b_base: float, floor: float) -> float:
    """(b - floor) / (b_base - floor): the run's excess over the entropy floor in units of the
    baseline's. Raises ValueError when the baseline is not above the floor."""
    if not b_base > floor:
        raise ValueError(f"the baseline's val_bpb {b_base:.4f} is not above the floor {floor:.4f}: no excess to compare")
    return (b - floor) / (b_base - floor)


def ratio_normalized_bpb(ratio: float, b_ref: float, floor_ref: float) -> float:
    """floor_ref + (b_ref - floor_ref) * ratio: the same excess ratio on the reference's scale."""
    return floor_ref + (b_ref - floor_ref) * ratio


def _power_doublings(fit: dict, b: float, c_base: float) -> float:
    """log2(C_equiv / C_base) on the free-asymptote curve; +inf at or below its asymptote."""
    if not b > fit["E"]:
        return math.inf
    return math.log2(curvefit.asymptote_compute(fit, b) / c_base)


def candidates(b: float, profile: dict, *, budget_seconds: float | None = None, budget_mode: str = "wall",
               flop_budget: float | None = None, reference: dict | None = None) -> dict[str, dict]:
    """Every candidate metric of one run side by side: name -> dict(gain, band, significant,
    baseline_bpb, normalized_bpb, normalized_bpb_band), or name -> dict(error=why) where the
    profiles lack what that candidate needs. gain: delta in bpb, g in doublings, or the ratio."""
    sigma = float(profile["sigma"])
    band_b = band_sigmas(profile) * sigma
    c_base = baseline_compute(profile, budget_seconds, budget_mode, flop_budget)
    c_ref = float(reference["flops_at_budget"]) if reference else None
    out: dict[str, dict] = {}

    bb = baseline_bpb(profile, c_base)
    d = dict(gain=b - bb, band=band_b, significant=abs(b - bb) > band_b, baseline_bpb=bb)
    if reference:
        d.update(normalized_bpb=baseline_bpb(reference, c_ref) + (b - bb), normalized_bpb_band=band_b)
    out["delta"] = d

    s = float(profile["s"])
    bb = curve_bpb(profile["a"], s, c_base)
    g = doublings(b, bb, s)
    d = dict(gain=g, band=band_b / s, significant=abs(bb - b) > band_b, baseline_bpb=bb)
    if reference:
        b_ref, s_ref = reference_point(reference)
        d.update(normalized_bpb=normalized_bpb(g, b_ref, s_ref), normalized_bpb_band=band_b * s_ref / s)
    out["loglinear"] = d

    pf = profile.get("power_fit")
    if not pf:
        out["power"] = dict(error=profile.get("power_fit_note") or "the profile has no free-asymptote fit")
    elif reference is not None and not reference.get("power_fit"):
        out["power"] = dict(error="the reference profile has no free-asymptote fit")
    else:
        bb = curvefit.asymptote_bpb(pf, c_base)
        g = _power_doublings(pf, b, c_base)
        g_hi, g_lo = _power_doublings(pf, bb - band_b, c_base), _power_doublings(pf, bb + band_b, c_base)
        d = dict(gain=g, band=(g_hi - g_lo) / 2, significant=abs(bb - b) > band_b, baseline_bpb=bb)
        if reference:
            rf = reference["power_fit"]
            at = lambda gg: curvefit.asymptote_bpb(rf, c_ref * 2.0 ** gg) if math.isfinite(gg) else rf["E"]  # noqa: E731
            d.update(normalized_bpb=at(g), normalized_bpb_band=(at(g - d["band"]) - at(g + d["band"])) / 2
                     if math.isfinite(d["band"]) else math.inf)
        out["power"] = d

    floor = profile.get("floor_bpb")
    bb = baseline_bpb(profile, c_base)
    if not isinstance(floor, (int, float)):
        out["excess_ratio"] = dict(error="the dataset has no known entropy floor")
    elif not bb > floor:
        out["excess_ratio"] = dict(error=f"the baseline ({bb:.4f}) is not above the floor ({floor:.4f})")
    elif reference is not None and not isinstance(reference.get("floor_bpb"), (int, float)):
        out["excess_ratio"] = dict(error="the reference profile has no entropy floor")
    else:
        r = excess_ratio(b, bb, floor)
        band = band_b / (bb - floor)
        d = dict(gain=r, band=band, significant=abs(r - 1) > band, baseline_bpb=bb)
        if reference:
            f_ref = float(reference["floor_bpb"])
            b_ref = baseline_bpb(reference, c_ref)
            d.update(normalized_bpb=ratio_normalized_bpb(r, b_ref, f_ref), normalized_bpb_band=(b_ref - f_ref) * band)
        out["excess_ratio"] = d
    return out


def baseline_compute(profile: dict, budget_seconds: float | None = None, budget_mode: str = "wall",
                     flop_budget: float | None = None) -> float:
    """The training FLOPs the unmodified baseline gets under a run's budget on this device."""
    if budget_mode in ("work", "matched") and flop_budget:
        return float(flop_budget)
    c_t = float(profile["flops_at_budget"])
    if budget_seconds is None:
        return c_t
    return c_t * float(budget_seconds) / float(profile["budget_seconds"])


def reference_point(ref: dict) -> tuple[float, float]:
    """(b_ref, s_ref): a reference profile's fitted baseline value at its budget-T compute, and
    its slope."""
    return curve_bpb(ref["a"], ref["s"], ref["flops_at_budget"]), float(ref["s"])


def normalize(
    b: float,
    profile: dict,
    *,
    budget_seconds: float | None = None,
    budget_mode: str = "wall",
    flop_budget: float | None = None,
    reference: dict | None = None,
    metric: str | None = None,
) -> dict[str, Any]:
    """All normalized metrics of one run with val_bpb b, for the ledger and the summary, under
    `metric` (default: the switch METRIC)."""
    metric = metric or METRIC
    fit_form(metric)  # an unknown metric is an error here, not a silent default
    c_base = baseline_compute(profile, budget_seconds, budget_mode, flop_budget)
    sigma, k = float(profile["sigma"]), band_sigmas(profile)
    out: dict[str, Any] = dict(baseline_flops=c_base, calibrated_sigma=sigma, calibrated_sigma_dof=runs_at_budget(profile) - 1,
                               bpb_band=k * sigma, band_sigmas=k, calibration=profile_label(profile))
    ratio = c_base / float(profile["flops_at_budget"])
    lo, hi = profile.get("flops_range") or (None, None)
    if lo and hi and not (lo / 2 <= c_base <= hi * 2):
        out["extrapolated"] = (
            f"the baseline's compute for this budget ({c_base:.3g} FLOPs, {ratio:.3g}x the calibration's) "
            f"is far outside the calibrated range {lo:.3g}..{hi:.3g}")
    if reference is not None:
        b_ref, s_ref = reference_point(reference)
        out.update(normalized_reference=profile_label(reference), reference_bpb=b_ref, reference_s=s_ref)
    cands = candidates(b, profile, budget_seconds=budget_seconds, budget_mode=budget_mode, flop_budget=flop_budget,
                       reference=reference)
    out["metric"] = _apply_metric(out, metric, cands)
    return out


def _apply_metric(out: dict, metric: str, cands: dict) -> str:
    """Let the chosen candidate define the gain, its band, significance and normalized_bpb (in
    place). Returns the metric that did: the excess ratio falls back to delta on a dataset without
    an entropy floor (a downloaded corpus), with a note saying so. A candidate that cannot be
    computed (the power metric without its fit) leaves the log-linear gain and no normalized_bpb."""
    c = cands[metric]
    if "error" in c and metric == "excess_ratio" and "error" not in cands["delta"]:
        out["metric_note"] = f"excess_ratio: {c['error']}; scored by delta instead"
        metric, c = "delta", cands["delta"]
    if "error" in c:
        out["normalized_note"] = f"{metric}: {c['error']}"
        _set_gain(out, "loglinear", dict(cands["loglinear"], normalized_bpb=None))
    else:
        _set_gain(out, metric, c)
    return metric


def _set_gain(out: dict, metric: str, c: dict) -> None:
    """One candidate's numbers under the ledger's names: doublings and compute_multiplier for the
    curve-based metrics, the curve-free gain under its own name (GAIN_KEY)."""
    out.update(baseline_bpb=c["baseline_bpb"], significant=c["significant"])
    if metric in CURVE_FREE:
        out[GAIN_KEY[metric]] = c["gain"]
        out[f"{GAIN_KEY[metric]}_band"] = c["band"]
    else:
        out.update(doublings=c["gain"], doublings_band=c["band"],
                   compute_multiplier=2.0 ** c["gain"] if math.isfinite(c["gain"]) else math.inf)
    if c.get("normalized_bpb") is not None:
        out.update(normalized_bpb=c["normalized_bpb"], normalized_bpb_band=c["normalized_bpb_band"])


def profile_label(profile: dict) -> str:
    """A short human name of a profile: device, backend, budget."""
    name = profile.get("name")
    if name:
        return str(name)
    dev = profile.get("device_name") or profile.get("device_key") or "device"
    return f"{dev} ({profile.get('backend', '?')}, {profile.get('dataset', {}).get('name', '?')}, T={profile.get('budget_seconds', 0):g}s)"
