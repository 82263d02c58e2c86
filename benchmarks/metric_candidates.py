"""The candidate metrics of normalization v2 (issue 12), side by side on the same run, for
benchmarks/check_normalization.py. The harness scores with one of them, the excess ratio (delta on
a dataset without a floor: harness/baseline/normalize.py, `gain`); the others are kept here, where
the measurement that chose it can be repeated (docs/history.md, "Normalization v2").

* "delta": delta = b - b_base; normalized_bpb = b_ref + delta;
* "loglinear": g = (b_base - b)/s doublings on the fitted line bpb = a - s*log2(C), compute
  multiplier 2**g, normalized_bpb = b_ref - s_ref*g (the metric before v2; its "2x compute"
  measured 0.5-0.9 doublings);
* "power": a compute multiplier on the free-asymptote curve bpb = E + A*(C/c0)^-alpha, E >= floor
  (curvefit.py; `with_power_fit` fits it from a profile's points, which needs >= 4 distinct
  budgets): g = log2(C_equiv / C_base), C_equiv the compute at which that curve reaches b;
  normalized_bpb = the reference's curve at C_ref * 2^g;
* "excess_ratio": the harness's own.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import curvefit  # noqa: E402

from autoresearch_portable.harness.baseline import normalize as nz  # noqa: E402

METRICS = ("delta", "loglinear", "power", "excess_ratio")
POWER_FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # 4 distinct budgets: what the free-asymptote fit needs


def with_power_fit(profile: dict) -> dict:
    """The profile with its free-asymptote fit (`power_fit`) from its ok points, or the reason it
    has none (`power_fit_note`)."""
    ok = [p for p in profile.get("points") or [] if p.get("status") == "ok" and p.get("val_bpb") is not None]
    try:
        fit = curvefit.fit_free_asymptote([p["train_flops"] for p in ok], [p["val_bpb"] for p in ok],
                                          floor=profile.get("floor_bpb"))
        return dict(profile, power_fit=fit)
    except ValueError as e:
        return dict(profile, power_fit_note=str(e))


def _power_doublings(fit: dict, b: float, c_base: float) -> float:
    """log2(C_equiv / C_base) on the free-asymptote curve; +inf at or below its asymptote."""
    if not b > fit["E"]:
        return math.inf
    return math.log2(curvefit.asymptote_compute(fit, b) / c_base)


def _reference_point(ref: dict) -> tuple[float, float]:
    """(b_ref, s_ref): the reference's fitted line at its budget-T compute, and its slope."""
    return nz.curve_bpb(ref["a"], ref["s"], ref["flops_at_budget"]), float(ref["s"])


def candidates(b: float, profile: dict, *, budget_seconds: float | None = None, budget_mode: str = "wall",
               flop_budget: float | None = None, reference: dict | None = None) -> dict[str, dict]:
    """Every candidate metric of one run: name -> dict(gain, band, significant, baseline_bpb,
    normalized_bpb, normalized_bpb_band), or name -> dict(error=why) where the profiles lack what
    that candidate needs. gain: delta in bpb, g in doublings, or the ratio."""
    band_b = nz.band_sigmas(profile) * float(profile["sigma"])
    c_base = nz.baseline_compute(profile, budget_seconds, budget_mode, flop_budget)
    c_ref = float(reference["flops_at_budget"]) if reference else None
    out: dict[str, dict] = {}

    harness = nz.gain(b, profile, budget_seconds=budget_seconds, budget_mode=budget_mode, flop_budget=flop_budget,
                      reference=reference)
    bb = harness["baseline_bpb"]
    d = dict(gain=b - bb, band=band_b, significant=abs(b - bb) > band_b, baseline_bpb=bb)
    if reference:
        d.update(normalized_bpb=nz.base_value(reference, c_ref) + (b - bb), normalized_bpb_band=band_b)
    out["delta"] = d
    if harness["metric"] == "excess_ratio":
        out["excess_ratio"] = dict(gain=harness["excess_ratio"], band=harness["excess_ratio_band"],
                                   significant=harness["significant"], baseline_bpb=bb,
                                   **{k: harness[k] for k in ("normalized_bpb", "normalized_bpb_band") if k in harness})
    else:
        out["excess_ratio"] = dict(error=nz.ratio_refusal(bb, profile.get("floor_bpb"), reference))

    s = float(profile["s"])
    bb = nz.curve_bpb(profile["a"], s, c_base)
    g = (bb - b) / s
    d = dict(gain=g, band=band_b / s, significant=abs(bb - b) > band_b, baseline_bpb=bb)
    if reference:
        b_ref, s_ref = _reference_point(reference)
        d.update(normalized_bpb=b_ref - s_ref * g, normalized_bpb_band=band_b * s_ref / s)
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
    return out
