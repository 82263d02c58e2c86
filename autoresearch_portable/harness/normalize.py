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
* g = (b_base - b) / s doublings; compute_multiplier = 2**g: how much more compute the baseline
  would need to match the run;
* normalized_bpb = b_ref - s_ref*g: the same gain placed on a reference device's baseline
  (b_ref = the reference's fitted value at its own budget-T compute);
* noise band: +-2 sigma on b (a run within 2 sigma of b_base is "not significant"), which is
  +-2 sigma/s on g and +-2 sigma*s_ref/s on normalized_bpb.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

BAND_SIGMAS = 2.0


def fit_curve(flops: Sequence[float], bpb: Sequence[float]) -> dict[str, float]:
    """Least-squares fit of bpb = a - s*log2(C). Returns a, s, the standard error of s and the
    residual standard deviation. Needs at least two distinct compute values."""
    if len(flops) != len(bpb) or len(flops) < 2:
        raise ValueError("need at least two (FLOPs, bpb) points to fit the baseline curve")
    if any(not (c > 0) for c in flops):
        raise ValueError("training FLOPs must be positive")
    x = [math.log2(c) for c in flops]
    n = len(x)
    mx, my = sum(x) / n, sum(bpb) / n
    sxx = sum((xi - mx) ** 2 for xi in x)
    if sxx <= 1e-12:
        raise ValueError("the calibration points all have the same compute; cannot fit a slope")
    sxy = sum((xi - mx) * (yi - my) for xi, yi in zip(x, bpb))
    slope = sxy / sxx            # d bpb / d log2 C  (negative when more compute helps)
    s = -slope
    a = my - slope * mx
    resid = [yi - (a - s * xi) for xi, yi in zip(x, bpb)]
    dof = n - 2
    resid_sd = math.sqrt(sum(r * r for r in resid) / dof) if dof > 0 else float("nan")
    s_stderr = resid_sd / math.sqrt(sxx) if dof > 0 else float("nan")
    return dict(a=a, s=s, s_stderr=s_stderr, resid_sd=resid_sd)


def curve_bpb(a: float, s: float, flops: float) -> float:
    """The fitted baseline val_bpb at training compute `flops`."""
    return a - s * math.log2(flops)


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


def compute_multiplier(g: float) -> float:
    return 2.0 ** g


def normalized_bpb(g: float, b_ref: float, s_ref: float) -> float:
    """b_ref - s_ref * g."""
    return b_ref - s_ref * g


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
) -> dict[str, Any]:
    """All normalized metrics of one run with val_bpb b, for the ledger and the summary."""
    s, sigma = float(profile["s"]), float(profile["sigma"])
    c_base = baseline_compute(profile, budget_seconds, budget_mode, flop_budget)
    b_base = curve_bpb(profile["a"], s, c_base)
    g = doublings(b, b_base, s)
    band_b = BAND_SIGMAS * sigma
    out: dict[str, Any] = dict(
        doublings=g,
        compute_multiplier=compute_multiplier(g),
        baseline_bpb=b_base,
        baseline_flops=c_base,
        bpb_band=band_b,
        doublings_band=band_b / s,
        band_sigmas=BAND_SIGMAS,
        significant=abs(b_base - b) > band_b,
        calibration=profile_label(profile),
    )
    ratio = c_base / float(profile["flops_at_budget"])
    lo, hi = profile.get("flops_range") or (None, None)
    if lo and hi and not (lo / 2 <= c_base <= hi * 2):
        out["extrapolated"] = (
            f"the baseline's compute for this budget ({c_base:.3g} FLOPs, {ratio:.3g}x the calibration's) "
            f"is far outside the calibrated range {lo:.3g}..{hi:.3g}")
    if reference is not None:
        b_ref, s_ref = reference_point(reference)
        out.update(
            normalized_bpb=normalized_bpb(g, b_ref, s_ref),
            normalized_bpb_band=band_b * s_ref / s,
            normalized_reference=profile_label(reference),
            reference_bpb=b_ref,
            reference_s=s_ref,
        )
    return out


def profile_label(profile: dict) -> str:
    """A short human name of a profile: device, backend, budget."""
    name = profile.get("name")
    if name:
        return str(name)
    dev = profile.get("device_name") or profile.get("device_key") or "device"
    return f"{dev} ({profile.get('backend', '?')}, {profile.get('dataset', {}).get('name', '?')}, T={profile.get('budget_seconds', 0):g}s)"


# --- formatting for the summary block ----------------------------------------------------------

def format_multiplier(r: dict) -> str:
    """The compute_multiplier summary line's value."""
    m = r.get("compute_multiplier")
    if m is None:
        return f"n/a ({r.get('normalization_note') or 'run `arp calibrate`'})"
    if isinstance(m, str):
        return m
    g, band = r.get("doublings"), r.get("doublings_band")
    text = f"{m:.3f}"
    if g is not None and band is not None:
        verdict = "significant" if r.get("significant") else "not significant"
        text += f" (doublings {g:+.3f} ± {band:.3f} at {r.get('band_sigmas', BAND_SIGMAS):g}σ: {verdict})"
    if r.get("extrapolated"):
        text += " [extrapolated: this budget is far from the calibration's]"
    return text


def format_normalized(r: dict) -> str:
    """The normalized_bpb summary line's value."""
    nb = r.get("normalized_bpb")
    if nb is None:
        if r.get("compute_multiplier") is not None:
            return f"n/a ({r.get('normalized_note') or 'no bundled reference profile for this dataset'})"
        return f"n/a ({r.get('normalization_note') or 'run `arp calibrate`'})"
    if isinstance(nb, str):
        return nb
    band = r.get("normalized_bpb_band")
    text = f"{nb:.6f}"
    if band is not None:
        text += f" ± {band:.6f}"
    return text + f" (ref: {r.get('normalized_reference', '?')})"
