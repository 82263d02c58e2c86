"""`arp bench --matched`: the first way to compare two machines. This device trains the reference
device's own baseline (the same train.py sizes and seeds) for exactly the training FLOPs the
reference's baseline got in its budget T. Same code, same compute: the val_bpb must agree with the
reference's within the combined noise band, with no model of any curve in between, and the wall
seconds it took say how fast this device is at the reference's experiment.
"""

from __future__ import annotations

import math
import statistics
from typing import Callable

from autoresearch_portable.errors import UserError
from autoresearch_portable.harness.baseline import calibrate as cal
from autoresearch_portable.harness.baseline import normalize
from autoresearch_portable.harness.baseline.bench import reference_for


def reference_runs(ref: dict) -> list[float]:
    """The reference's val_bpb at T (its seed-0 run and the repeats)."""
    return [p["val_bpb"] for p in ref.get("points") or []
            if p.get("fraction") == 1.0 and p.get("status") == "ok" and p.get("val_bpb") is not None]


def summarize(runs: list[dict], ref: dict) -> dict:
    """Pure: this device's matched runs against the reference's runs at T. The band is the 95% band
    of the difference of the two means: Student's t for Welch's degrees of freedom times its
    standard error, σ each side's sample spread (the reference's profile sigma, and its degrees of
    freedom, when this side has one run)."""
    ok = [r for r in runs if r.get("status") == "ok" and r.get("val_bpb") is not None]
    if not ok:
        why = "; ".join(f"{r.get('status')}: {r.get('reason')}" for r in runs) or "no runs"
        return dict(ok=False, reason=f"no matched run finished ({why})", runs=runs)
    bpb = [r["val_bpb"] for r in ok]
    ref_bpb = reference_runs(ref) or [float(ref["baseline_bpb_mean"])]
    ref_sigma = float(ref["sigma"])
    ref_dof = (len(ref_bpb) if reference_runs(ref) else normalize.runs_at_budget(ref)) - 1
    sigma, dof = (normalize.sample_std(bpb), len(bpb) - 1) if len(bpb) >= 2 else (ref_sigma, ref_dof)
    mean, ref_mean = statistics.fmean(bpb), statistics.fmean(ref_bpb)
    var, ref_var = sigma ** 2 / len(bpb), ref_sigma ** 2 / len(ref_bpb)
    welch = (var + ref_var) ** 2 / (var ** 2 / dof + ref_var ** 2 / ref_dof) if var + ref_var > 0 else ref_dof
    band = normalize.t975(welch) * math.sqrt(var + ref_var)
    seconds = statistics.fmean(r.get("training_seconds") or math.nan for r in ok)
    T = float(ref["budget_seconds"])
    return dict(ok=True, runs=runs, val_bpb=bpb, mean=mean, sigma=sigma, reference_mean=ref_mean,
                reference_sigma=ref_sigma, reference_n=len(ref_bpb), diff=mean - ref_mean, band=band,
                agree=abs(mean - ref_mean) <= band, flop_budget=float(ref["flops_at_budget"]),
                num_steps=[r.get("num_steps") for r in ok], training_seconds=seconds,
                speed_vs_reference=T / seconds if seconds and seconds > 0 else None,
                reference=normalize.profile_label(ref), reference_seconds=T, floor_bpb=ref.get("floor_bpb"))


def run_matched(probe: dict, plan: dict, ref: dict, dataset: str, *, repeats: int, runner: Callable | None = None,
                log: Callable[[str], None] = print, quiet: bool = True) -> dict:
    """Train the reference's baseline here with seeds 0..repeats, each for the reference's FLOPs
    at T (a matched-mode budget), and summarize against the reference."""
    if runner is None:
        from autoresearch_portable.harness.run.launch import run_training as runner
    sizes = ref.get("baseline_sizes")
    if not sizes:
        raise UserError(f"the reference {normalize.profile_label(ref)} does not record its baseline's sizes")
    flops, T = float(ref["flops_at_budget"]), float(ref["budget_seconds"])
    log(f"matched: the baseline of {normalize.profile_label(ref)} (depth {sizes.get('DEPTH')}, width "
        f"{sizes.get('MODEL_DIM')}), {flops:.4g} training FLOPs per run, {repeats + 1} runs")
    runs = []
    for seed in range(repeats + 1):
        r = cal.run_baseline(runner, plan, sizes, seed, probe=probe, dataset=dataset, budget_seconds=T,
                             budget_mode="matched", flop_budget=flops, quiet=quiet)
        runs.append(cal.Point.of(r, seed=seed, budget_seconds=T))
        log(f"[{seed + 1}/{repeats + 1}] seed {seed}: {r.get('status')}: val_bpb {r.get('val_bpb')}, "
            f"{r.get('num_steps')} steps in {r.get('training_seconds') or float('nan'):.0f}s of training")
    return summarize(runs, ref)


def matched_bench(probe: dict, plan: dict, dataset: str, *, runs: int, runner: Callable | None = None,
                  log: Callable[[str], None] = print, quiet: bool = True) -> dict:
    """`arp bench --matched`: against the bundled reference for the dataset; UserError without one."""
    from autoresearch_portable import data

    if runs < 1:
        raise UserError("--runs must be at least 1")
    ref, why = reference_for(cal.dataset_identity(data.load(dataset)))
    if ref is None:
        raise UserError(f"--matched needs a bundled reference profile: {why}")
    return run_matched(probe, plan, ref, dataset, repeats=runs - 1, runner=runner, log=log, quiet=quiet)


def format_matched(m: dict) -> str:
    if not m["ok"]:
        return f"matched comparison: {m['reason']}"
    speed = m["speed_vs_reference"]
    lines = [
        f"matched comparison with {m['reference']}: the same train.py, {m['flop_budget']:.4g} training FLOPs each",
        f"  this device:  val_bpb {m['mean']:.4f} (σ {m['sigma']:.4f}, {len(m['val_bpb'])} runs: "
        + ", ".join(f"{b:.4f}" for b in m["val_bpb"]) + f"), {m['training_seconds']:.0f}s of training per run",
        f"  reference:    val_bpb {m['reference_mean']:.4f} (σ {m['reference_sigma']:.4f}, {m['reference_n']} runs), "
        f"{m['reference_seconds']:g}s",
        f"  difference:   {m['diff']:+.4f} ± {m['band']:.4f} (95% band of the difference of means): "
        + ("agree: the same experiment gives the same score here" if m["agree"] else
           "DISAGREE: this device's numerics or harness differ from the reference's; its results are not "
           "comparable in matched mode"),
    ]
    if speed:
        lines.append(f"  speed:        {speed:.3g}x the reference (its {m['reference_seconds']:g}s experiment takes "
                     f"{m['training_seconds']:.0f}s of training here)")
    if m.get("floor_bpb") is not None:
        lines.append(f"  entropy floor {m['floor_bpb']:.4f}: excess {m['mean'] - m['floor_bpb']:.4f} here, "
                     f"{m['reference_mean'] - m['floor_bpb']:.4f} on the reference")
    return "\n".join(lines)


# --- the FLOP budget of work and matched mode ------------------------------------------------------------------------------

def flop_budget_for(mode: str, budget_seconds: float, probe: dict, plan: dict, dataset_id: dict) -> tuple[float | None, str]:
    """(FLOP budget, explanation) for --budget-mode. wall: None. work: this device's calibrated
    baseline FLOP/s (C_T / T of its profile) x seconds. matched: the reference device's baseline
    FLOP/s x seconds. Raises UserError (one line) when the profile needed is missing or stale."""
    if mode == "wall":
        return None, ""
    if mode == "work":
        profile, note = cal.find_profile(probe, plan, dataset_id)
        if profile is None:
            raise UserError(f"--budget-mode work needs a calibration of this device: {note}")
        rate = float(profile["flops_per_second"])
        return rate * budget_seconds, f"work: {budget_seconds:g}s x {rate:.4g} FLOP/s (this device's calibrated baseline)"
    if mode == "matched":
        ref, why = reference_for(dataset_id)
        if ref is None:
            raise UserError(f"--budget-mode matched needs a bundled reference profile: {why}")
        rate = float(ref["flops_per_second"])
        return rate * budget_seconds, (f"matched: {budget_seconds:g}s x {rate:.4g} FLOP/s "
                                       f"(the baseline of {normalize.profile_label(ref)})")
    raise UserError(f"unknown --budget-mode {mode!r}")
