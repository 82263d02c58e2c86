"""Normalized results (docs/normalization.md): pure arithmetic on a calibration profile, no
device, no files.

A profile holds the device's baseline at its budget T (the mean val_bpb of its runs there, and
sigma, their sample standard deviation) and its baseline curve `bpb = a - s*log2(C)` over training
FLOPs C, fitted to the unmodified baseline trained at T/4, T/2 and T. For a run with val_bpb b:

* b_base, the baseline's val_bpb under the run's budget: at the profile's own budget the measured
  mean (no curve needed); at another budget the curve at the compute the baseline gets there
  (C_T * T'/T in wall and work mode, the FLOP budget in matched mode);
* the gain: the excess ratio r = (b - floor) / (b_base - floor) over the dataset's entropy floor
  (0.95: 5% less excess than the baseline), and normalized_bpb = floor_ref + (b_ref - floor_ref) * r
  on a reference device's baseline (b_ref: its mean at its own budget). On a dataset without a
  known floor, delta = b - b_base and normalized_bpb = b_ref + delta (`metric` says which);
* the band: +-k sigma on b (a run within it of b_base is "not significant"), carried through the
  formula: +-k sigma/(b_base - floor) on r. k = band_sigmas(profile) = t * sqrt(1 + 1/n): the
  two-sided 95% band of one new run around a baseline measured by n runs at T, where sigma itself
  comes from those n runs (Student's t with n-1 degrees of freedom); 5.0 for n = 3, 3.0 for n = 5.
  Carried to the reference, the ratio's band also holds the measured error of carrying a gain
  across the compute gap between the devices (TRANSFER_PER_DOUBLING per doubling).

Why the excess ratio and not the other candidates measured for it (the log-linear compute
multiplier, a free-asymptote curve, delta): docs/history.md and benchmarks/metric_candidates.py."""

from __future__ import annotations

import math
from typing import Any, Sequence


# Student's t, 97.5% quantile, for 1..30 degrees of freedom: a sigma measured from 3-5 runs is itself
# uncertain, and +-2 of it would call noise "significant" far more often than 1 time in 20.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

# How an excess ratio carries across a compute gap: the same edits on two devices ~12x apart, each
# sized for itself (benchmarks/transfer.py, benchmarks/measured/transfer-10x.json; the table in
# benchmarks/README.md). The spread of the ratio's difference between the devices beyond their runs'
# own noise, per doubling of compute, and the gap it was measured over.
TRANSFER_PER_DOUBLING = 0.048      # ratio units per doubling (measured: 0.0480)
TRANSFER_MEASURED_DOUBLINGS = 3.655  # 12.6x: 1 thread at 30 s against 2 threads at 200 s


def fit_line(x: Sequence[float], y: Sequence[float], what: str) -> dict:
    """Ordinary least squares y = intercept + slope*x: slope, intercept, the residual sd (n-2
    degrees of freedom; nan with two points), the mean of x and sxx. `what` completes the error
    when all x are equal."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((xi - mx) ** 2 for xi in x)
    if sxx <= 1e-12:
        raise ValueError(f"the points all have the same compute; {what}")
    slope = sum((xi - mx) * (yi - my) for xi, yi in zip(x, y)) / sxx
    intercept = my - slope * mx
    resid = [yi - (intercept + slope * xi) for xi, yi in zip(x, y)]
    resid_sd = math.sqrt(sum(r * r for r in resid) / (n - 2)) if n > 2 else float("nan")
    return dict(slope=slope, intercept=intercept, resid_sd=resid_sd, mean_x=mx, sxx=sxx)



def fit_curve(flops: Sequence[float], bpb: Sequence[float]) -> dict[str, float]:
    """Least-squares fit of bpb = a - s*log2(C). Returns a, s, the standard error of s and the
    residual standard deviation. Needs at least two distinct compute values."""
    if len(flops) != len(bpb) or len(flops) < 2:
        raise ValueError("need at least two (FLOPs, bpb) points to fit the baseline curve")
    if any(not (c > 0) for c in flops):
        raise ValueError("training FLOPs must be positive")
    line = fit_line([math.log2(c) for c in flops], bpb, "cannot fit a slope")
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
    """The band of one new run around the profile's baseline, in its sigma: t(dof) * sqrt(1 + 1/n)
    for n runs at T, dof = n - 1 when sigma comes from them (`sigma_dof` when it is a prior).
    sqrt(1 + 1/n): the run's own noise plus that of the baseline's value."""
    n = runs_at_budget(profile)
    return t975(profile.get("sigma_dof", n - 1)) * math.sqrt(1 + 1 / n)


def sample_std(values: Sequence[float]) -> float:
    """Sample standard deviation (n-1); needs two values."""
    n = len(values)
    if n < 2:
        raise ValueError("need at least two repeats for a noise estimate")
    m = sum(values) / n
    return math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))


def at_own_budget(profile: dict, flops: float) -> bool:
    """Whether `flops` is the baseline's compute at the profile's own budget T (C_T)."""
    return math.isclose(float(flops), float(profile["flops_at_budget"]), rel_tol=1e-9)


def base_value(profile: dict, flops: float) -> float:
    """The baseline's val_bpb at compute `flops`: at the profile's own budget the mean of its runs
    there (measured, no curve needed), elsewhere its fitted curve."""
    if at_own_budget(profile, flops) and isinstance(profile.get("baseline_bpb_mean"), (int, float)):
        return float(profile["baseline_bpb_mean"])
    return baseline_bpb(profile, flops)


def baseline_bpb(profile: dict, flops: float) -> float:
    """The profile's baseline curve at compute `flops`."""
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


def compute_gap(c_device: float, c_ref: float) -> float:
    """How far apart two devices are: log2 of the ratio of their baselines' training FLOPs."""
    return math.log2(float(c_device) / float(c_ref))


def carried_band(ratio_band: float, gap: float) -> float:
    """The band of an excess ratio carried across a compute gap (doublings): the run's own band
    and the measured transfer error, TRANSFER_PER_DOUBLING per doubling, added in quadrature."""
    return math.hypot(ratio_band, TRANSFER_PER_DOUBLING * abs(gap))


def gap_note(gap: float) -> str:
    """The compute gap in words, and whether a comparison across it is inside the measured range."""
    inside = abs(gap) <= TRANSFER_MEASURED_DOUBLINGS + 1e-9
    return (f"compute gap {2 ** abs(gap):.3g}x ({abs(gap):.2f} doublings): "
            + ("inside" if inside else "beyond") + f" the measured range (up to {TRANSFER_MEASURED_DOUBLINGS:.2f} "
            f"doublings, benchmarks/measured/transfer-10x.json)")


def ratio_refusal(bb: float, floor: float | None, reference: dict | None) -> str | None:
    """Why an excess ratio cannot be computed against baseline value bb (and the reference), or None."""
    if not isinstance(floor, (int, float)):
        return "the dataset has no known entropy floor"
    if not bb > floor:
        return f"the baseline ({bb:.4f}) is not above the floor ({floor:.4f})"
    if reference is not None and not isinstance(reference.get("floor_bpb"), (int, float)):
        return "the reference profile has no entropy floor"
    return None


def gain(b: float, profile: dict, *, budget_seconds: float | None = None, budget_mode: str = "wall",
         flop_budget: float | None = None, reference: dict | None = None) -> dict[str, Any]:
    """One run's gain against the baseline under its budget: the excess ratio where the dataset
    has an entropy floor, else delta (with `metric_note` saying why), with its band, significance
    and, given a reference profile, normalized_bpb and its band (the compute gap's transfer error
    included)."""
    band_b = band_sigmas(profile) * float(profile["sigma"])
    c_base = baseline_compute(profile, budget_seconds, budget_mode, flop_budget)
    bb = base_value(profile, c_base)
    out: dict[str, Any] = dict(baseline_bpb=bb, significant=abs(b - bb) > band_b)
    c_ref = float(reference["flops_at_budget"]) if reference else None
    b_ref = base_value(reference, c_ref) if reference else None
    floor, f_ref = profile.get("floor_bpb"), (reference or {}).get("floor_bpb")
    why = ratio_refusal(bb, floor, reference)
    if why:
        out.update(metric="delta", metric_note=f"excess_ratio: {why}; scored by delta instead",
                   delta_bpb=b - bb, delta_bpb_band=band_b)
        if reference:
            out.update(normalized_bpb=b_ref + (b - bb), normalized_bpb_band=band_b)
        return out
    r, band = excess_ratio(b, bb, floor), band_b / (bb - floor)
    out.update(metric="excess_ratio", excess_ratio=r, excess_ratio_band=band)
    if reference:
        gap = compute_gap(c_base, c_ref)
        out.update(normalized_bpb=ratio_normalized_bpb(r, b_ref, float(f_ref)),
                   normalized_bpb_band=(b_ref - float(f_ref)) * carried_band(band, gap),
                   compute_gap=gap, compute_gap_note=gap_note(gap))
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
        out.update(normalized_reference=profile_label(reference))
    out.update(gain(b, profile, budget_seconds=budget_seconds, budget_mode=budget_mode, flop_budget=flop_budget,
                    reference=reference))
    return out


def profile_label(profile: dict) -> str:
    """A short human name of a profile: device, backend, budget."""
    name = profile.get("name")
    if name:
        return str(name)
    dev = profile.get("device_name") or profile.get("device_key") or "device"
    return f"{dev} ({profile.get('backend', '?')}, {profile.get('dataset', {}).get('name', '?')}, T={profile.get('budget_seconds', 0):g}s)"
