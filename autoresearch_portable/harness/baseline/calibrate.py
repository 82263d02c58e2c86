"""`arp calibrate`: measure this device's unmodified baseline, its throughput and its noise, the
profile every normalized result of this device is computed from (normalize.py).

The baseline (the template rendered exactly as `arp init` would for budget T) is trained in wall
mode at T/4, T/2 and T (other fractions on request: the benchmarks' curves), then `repeats` more
times at T with other seeds (the model seed in the file and the data-order seed). The fit
`bpb = a - s*log2(C)` over the training FLOPs C of every run gives the slope s (bpb per doubling of
compute): the curve that places a run at another budget. The mean and the sample standard
deviation of val_bpb over the runs at T give the baseline there and sigma. The curve is trusted for normalized results (the gain,
normalized_bpb) only if the T/4 runs made at least MIN_STEPS optimizer steps: a baseline early on
its learning curve does not follow it. A profile that falls short says so and which T would do
(`normalization_refused`); its FLOP/s (work mode), sigma (the verdict's band) and loss trace
(early abandonment) are measured all the same and still used. The profile is cached per device key (which
includes the backend) + dataset + harness version; a profile from another harness or dataset
version is never used.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

from autoresearch_portable import HARNESS_VERSION, __version__, paths
from autoresearch_portable.data.common import DEFAULT_DATASET
from autoresearch_portable.detect.plan import device_name
from autoresearch_portable.errors import UserError
from autoresearch_portable.fsutil import atomic_write_json, read_json
from autoresearch_portable.harness.run import abandon
from autoresearch_portable.harness.baseline import normalize
from autoresearch_portable.harness.baseline import template
from autoresearch_portable.harness.baseline.template import SIZE_KEYS, baseline_source
from autoresearch_portable.harness.run.budget import check_budget

PROFILE_FORMAT = 1
MIN_STEPS = 200  # optimizer steps the T/4 runs must make for a valid profile
# the budgets (fractions of T) trained with seed 0, per fit form
FRACTIONS = (0.25, 0.5, 1.0)  # of the budget T: the curve's points
BASE_MODEL_SEED = 42  # the template's SEED


class CalibrationError(UserError):
    pass


# --- identity and storage ----------------------------------------------------------------------

def dataset_identity(ds) -> dict:
    """Name and every version field of a loaded dataset's metadata: a profile measured on another
    version of the data (generator, tokenizer, packing) is not comparable."""
    meta = dict(getattr(ds, "meta", None) or {})
    versions: dict[str, Any] = {}
    for k, v in meta.items():
        if k == "versions" and isinstance(v, dict):
            versions.update(v)
        elif ("version" in k.lower() or k == "format") and isinstance(v, (str, int, float)):
            versions[k] = v
    for k in ("seq_len", "vocab_size"):
        if isinstance(getattr(ds, k, None), int):
            versions[k] = getattr(ds, k)
    if isinstance(meta.get("config"), dict):  # what was built (corpus sizes, seeds, sources)
        blob = json.dumps(meta["config"], sort_keys=True, default=str).encode()
        versions["config_sha256"] = hashlib.sha256(blob).hexdigest()[:16]
    return dict(name=ds.name, versions=versions, floor_bpb=getattr(ds, "floor_bpb", None))


def profile_filename(device_key: str, dataset_name: str, harness_version: str = HARNESS_VERSION) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in dataset_name)[:60]
    return f"{device_key}--{safe}--h{harness_version}.json"


def profile_path(probe: dict, plan: dict, dataset_name: str) -> Path:
    from autoresearch_portable.harness.run.peak import device_key

    return paths.profiles_dir() / profile_filename(device_key(probe, plan), dataset_name)


def stale_reason(profile: dict, dataset_id: dict | None, harness_version: str = HARNESS_VERSION) -> str | None:
    """Why a stored profile must not be used now, or None when it is current."""
    hv = str(profile.get("harness_version"))
    if hv != str(harness_version):
        return f"it was measured with harness version {hv}, this is harness version {harness_version}"
    if dataset_id is not None:
        pd = profile.get("dataset") or {}
        if pd.get("name") != dataset_id["name"]:
            return f"it is for dataset {pd.get('name')!r}, not {dataset_id['name']!r}"
        if (pd.get("versions") or {}) != (dataset_id.get("versions") or {}):
            return (f"dataset {dataset_id['name']!r} changed since (versions {pd.get('versions')} then, "
                    f"{dataset_id.get('versions')} now)")
    for k in ("a", "s", "sigma", "flops_at_budget", "budget_seconds"):
        if not isinstance(profile.get(k), (int, float)):
            return f"it has no {k}"
    return None


def load_profile(path: Path, dataset_id: dict) -> tuple[dict | None, str | None]:
    """(the profile stored at `path`, None) when it is current; else (None, why not)."""
    profile = read_json(path)
    why = stale_reason(profile, dataset_id) if profile is not None else "it is unreadable"
    return (None, why) if why else (dict(profile, path=str(path)), None)


def find_profile(probe: dict, plan: dict, dataset_id: dict) -> tuple[dict | None, str]:
    """(profile, note): the current profile of this device + backend + dataset, or None and a
    one-line reason (no profile yet, or the one stored is stale)."""
    from autoresearch_portable.harness.run.peak import device_key

    key = device_key(probe, plan)
    path = profile_path(probe, plan, dataset_id["name"])
    if path.exists():
        profile, why = load_profile(path, dataset_id)
        if why:
            return None, f"the calibration profile {path.name} is not used: {why}; run `arp calibrate --force`"
        return profile, f"calibration {path.name}"
    # a profile of another harness version (another file name) is never used: say so
    others = sorted(paths.profiles_dir().glob(profile_filename(key, dataset_id["name"], "*")))
    if others:
        return None, (f"the calibration profile {others[-1].name} is from another harness version "
                      f"(now {HARNESS_VERSION}) and is not used; run `arp calibrate`")
    return None, f"no calibration of this device for dataset {dataset_id['name']!r}; run `arp calibrate`"


def schedule(budget: float, repeats: int, fractions: tuple = FRACTIONS) -> list[dict]:
    """The runs of a calibration: each fraction of T (seed 0; T/4, T/2, T by default), then
    `repeats` more at T."""
    runs = [dict(fraction=f, seed=0) for f in fractions]
    runs += [dict(fraction=1.0, seed=i) for i in range(1, repeats + 1)]
    for r in runs:
        r["budget_seconds"] = budget * r["fraction"]
    return runs


# --- validity and fitting ----------------------------------------------------------------------

def steps_refusal(points: list[dict], budget: float, min_steps: int = MIN_STEPS) -> str | None:
    """Why these points cannot make a valid profile because the T/4 runs made too few optimizer
    steps for normalized results (with the T that would reach min_steps), or None. Pure."""
    quarter = [p for p in points if p.get("fraction") == 0.25 and p.get("status") == "ok"
               and isinstance(p.get("num_steps"), int)]
    if not quarter or min_steps <= 0:
        return None
    steps = min(p["num_steps"] for p in quarter)
    if steps >= min_steps:
        return None
    t4 = budget / 4
    # steps grow about linearly with the budget; 10 % margin for warm-up, rounded up to 10 s
    need = math.ceil(round(4 * min_steps / max(steps, 1) * t4 * 1.1 / 10, 6)) * 10
    return (f"the baseline made only {steps} optimizer steps at T/4 = {t4:g}s; normalized results need at least "
            f"{min_steps} there: `arp calibrate --budget {need:g}` (or longer) would do")


def normalization_refusal(profile: dict) -> str | None:
    """Why this profile's curve is not trusted for normalized results (too few steps at T/4), or
    None. Pure; also for profiles written before the rule was stored in them."""
    if "normalization_refused" in profile:
        return profile["normalization_refused"]
    return steps_refusal(profile.get("points") or [], float(profile.get("budget_seconds") or 0),
                         int(profile.get("min_steps", MIN_STEPS)))


def build_profile(points: list[dict], *, budget: float, base: dict, min_steps: int = MIN_STEPS) -> dict:
    """The profile from the runs' points (each: fraction, seed, budget_seconds, val_bpb,
    train_flops, num_steps, ...). Pure: raises CalibrationError when the data cannot make a
    profile."""
    ok = [p for p in points if p.get("status") == "ok" and p.get("val_bpb") is not None]
    at_t = [p for p in ok if p["fraction"] == 1.0]
    if len(at_t) < 2:
        raise CalibrationError(f"only {len(at_t)} baseline run(s) at T={budget:g}s finished; need at least 2 for the noise estimate")
    if len({p["fraction"] for p in ok}) < 2:
        raise CalibrationError("the baseline runs at T/4 and T/2 failed; cannot fit the compute curve")
    fit = normalize.fit_curve([p["train_flops"] for p in ok], [p["val_bpb"] for p in ok])
    if not fit["s"] > 0:
        raise CalibrationError(
            f"more compute did not help the baseline on this device (fitted slope s={fit['s']:.4g} bpb per "
            f"doubling of compute, not > 0): no profile written. Try a longer --budget (T={budget:g}s)")
    sigma = normalize.sample_std([p["val_bpb"] for p in at_t])
    c_t = statistics.fmean(p["train_flops"] for p in at_t)
    b_t = statistics.fmean(p["val_bpb"] for p in at_t)
    tps = statistics.fmean(p["tokens_per_second"] for p in at_t if p.get("tokens_per_second"))
    mfus = [p["mfu_percent"] for p in at_t if p.get("mfu_percent") is not None]
    flops_all = [p["train_flops"] for p in ok]
    profile = dict(base)
    profile.update(
        format=PROFILE_FORMAT,
        budget_seconds=float(budget),
        repeats=len(at_t) - 1,
        fit_form="loglinear",
        metric="excess_ratio",
        min_steps=min_steps,
        normalization_refused=steps_refusal(points, budget, min_steps),
        a=fit["a"],
        s=fit["s"],
        s_stderr=fit["s_stderr"],
        fit_resid_sd=fit["resid_sd"],
        sigma=sigma,
        flops_at_budget=c_t,
        flops_per_second=c_t / budget,
        flops_range=[min(flops_all), max(flops_all)],
        baseline_bpb_fit=normalize.curve_bpb(fit["a"], fit["s"], c_t),
        baseline_bpb_mean=b_t,
        tokens_per_second=tps,
        mfu_percent=statistics.fmean(mfus) if mfus else None,
        # the training-loss traces of the runs at T, against progress: early abandonment's baseline
        loss_trace=abandon.profile_trace(at_t),
        points=points,
    )
    profile["band_sigmas"] = normalize.band_sigmas(profile)  # from its repeats: the band of one run, in sigma
    return profile


# --- running -----------------------------------------------------------------------------------

def _ticker(log, label: str, expected: float, stop: threading.Event) -> None:
    t0 = time.time()
    while not stop.wait(min(30.0, max(10.0, expected / 4))):
        log(f"  ... {label}: {time.time() - t0:.0f}s elapsed (budget {expected:g}s + start-up and eval)")


def run_baseline(runner: Callable, plan: dict, sizes: dict, seed: int, *, log=None, label: str = "", **run) -> dict:
    """Train the baseline (the template with `sizes`; seed 0: the template's model seed, else
    another) with data seed `seed`: `runner(train_py, probe=..., dataset=..., budget_seconds=...,
    ...)` as harness/run/launch.py's run_training takes them. With `log`, a line every so often."""
    with tempfile.TemporaryDirectory(prefix="arp-baseline-") as tmp:
        train_py = Path(tmp) / "train.py"
        train_py.write_text(baseline_source(plan, sizes, None if seed == 0 else BASE_MODEL_SEED + seed))
        stop = threading.Event()
        if log is not None:
            threading.Thread(target=_ticker, args=(log, label, run["budget_seconds"], stop), daemon=True).start()
        try:
            return runner(train_py, plan=plan, seed=seed, **run)
        finally:
            stop.set()


@dataclass
class Point:
    """One run of the baseline as a calibration (or a matched comparison) keeps it: where it sits
    (fraction of T, seed, budget) and what the run measured. A result's other keys are not kept."""
    fraction: float | None = None
    seed: int = 0
    budget_seconds: float | None = None
    status: str | None = None
    reason: str | None = None
    val_bpb: float | None = None
    val_bpb_stderr: float | None = None
    train_flops: float | None = None
    tokens_per_second: float | None = None
    flops_per_token: float | None = None
    mfu_percent: float | None = None
    peak_flops: float | None = None
    peak_flops_source: str | None = None
    training_seconds: float | None = None
    warmup_seconds: float | None = None
    total_seconds: float | None = None
    num_steps: int | None = None
    total_tokens: int | None = None
    num_params: int | None = None
    loss_trace: list | None = None

    @classmethod
    def of(cls, result: dict, **where) -> dict:
        """The point of a run's result (a plain dict, as profiles store it)."""
        names = {f.name for f in fields(cls)} - set(where)
        return asdict(cls(**where, **{k: v for k, v in result.items() if k in names}))


def calibrate(
    probe: dict,
    plan: dict,
    dataset: str = DEFAULT_DATASET,
    budget: float = 300.0,
    repeats: int = 4,
    *,
    force: bool = False,
    sizes: dict | None = None,
    path: Path | None = None,
    log: Callable[[str], None] = print,
    quiet: bool = True,
    runner: Callable | None = None,
    min_steps: int = MIN_STEPS,
    fractions: tuple = FRACTIONS,
) -> dict:
    """Calibrate (or reuse the stored profile). `sizes` overrides the baseline's sizing (tests);
    `path` where the profile goes (default: the device's profile in the cache); `min_steps` the
    optimizer steps the T/4 runs must make (0: no minimum, for `arp bench --quick`); `fractions` of
    T the curve's runs train for (the benchmarks' bending curves ask for more)."""
    from autoresearch_portable import data
    from autoresearch_portable.harness.run.peak import device_key

    check_budget(budget)
    if repeats < 2:
        raise UserError("--repeats must be at least 2 (the noise band needs repeats at T)")
    ds = data.load(dataset)
    ds_id = dataset_identity(ds)
    key = device_key(probe, plan)
    path = Path(path) if path else profile_path(probe, plan, ds_id["name"])
    if path.exists() and not force:
        existing, why = load_profile(path, ds_id)
        if existing:
            if float(existing["budget_seconds"]) != float(budget):
                raise UserError(f"a calibration for budget {existing['budget_seconds']:g}s already exists ({path.name}); "
                                f"use --force to replace it with one for {budget:g}s")
            log(f"reusing the calibration profile {path} (measured {existing.get('created', '?')}; --force to redo)")
            return dict(existing, reused=True)
        log(f"the stored profile {path.name} is not used ({why}): calibrating again")
    if runner is None:
        from autoresearch_portable.harness.run.launch import run_training as runner
    if sizes is None:

        log(f"sizing the baseline for {budget:g}s on this device (as `arp init` does) ...")
        sizes = template.size_for_device(probe, plan, dataset, budget, log=log)
    runs = schedule(budget, repeats, fractions)
    total = sum(r["budget_seconds"] for r in runs)
    log(f"calibrating {plan['backend']} on {key}: baseline depth {sizes.get('DEPTH')}, width {sizes.get('MODEL_DIM')}, "
        f"{len(runs)} runs, {total:g}s of training plus start-up and eval each")
    points = []
    t_start = time.time()
    for i, r in enumerate(runs, 1):
        seed = r["seed"]
        label = f"[{i}/{len(runs)}] budget {r['budget_seconds']:g}s seed {seed}"
        log(f"{label}: training ...")
        res = run_baseline(runner, plan, sizes, seed, log=log, label=label, probe=probe, dataset=dataset,
                           budget_seconds=r["budget_seconds"], budget_mode="wall", quiet=quiet)
        points.append(Point.of(res, fraction=r["fraction"], seed=seed, budget_seconds=r["budget_seconds"]))
        if res.get("status") == "ok":
            log(f"{label}: val_bpb {res['val_bpb']:.4f} ± {res.get('val_bpb_stderr') or float('nan'):.4f}, "
                f"{res.get('train_flops', 0):.3g} FLOPs, {res.get('num_steps')} steps, "
                f"{res.get('tokens_per_second', 0):,.0f} tok/s ({time.time() - t_start:.0f}s so far)")
        else:
            log(f"{label}: {res.get('status')}: {res.get('reason')}")
            if r["fraction"] == 1.0 and seed == 0:
                raise CalibrationError(f"the unmodified baseline failed on this device ({res.get('status')}: {res.get('reason')})")
        if r["fraction"] == 0.25 and (why := steps_refusal(points, budget, min_steps)):
            log(f"note: {why}; this calibration still serves work mode, the noise band and early abandonment")
    first = next((p for p in points if p.get("status") == "ok"), {})
    base = dict(
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        arp_version=__version__,
        harness_version=HARNESS_VERSION,
        device_key=key,
        device_name=device_name(probe, plan["backend"]),
        backend=plan["backend"],
        device=probe,
        plan=plan,
        dataset=ds_id,
        floor_bpb=ds_id.get("floor_bpb"),
        baseline_sizes={k: sizes[k] for k in SIZE_KEYS if k in sizes},
        flops_per_token=first.get("flops_per_token"),
        num_params=first.get("num_params"),
        peak_flops=first.get("peak_flops"),
        peak_flops_source=first.get("peak_flops_source"),
    )
    profile = build_profile(points, budget=budget, base=base, min_steps=min_steps)
    atomic_write_json(path, profile)
    profile["path"] = str(path)
    log(f"profile written: {path}")
    return profile


def _band_in_gain(p: dict) -> str:
    """The noise band as a share of the baseline's excess over the floor (the excess ratio's unit)."""
    band = normalize.band_sigmas(p) * p["sigma"]
    excess = p["baseline_bpb_mean"] - (p.get("floor_bpb") or math.nan)
    if excess > 0:
        return f", excess over the floor ±{100 * band / excess:.1f}% ({excess:.4f} bpb above {p['floor_bpb']:.4f})"
    return ""


def format_profile(p: dict) -> str:
    """A few lines for the terminal."""
    sig = p["sigma"]
    lines = [
        f"calibration: {normalize.profile_label(p)}",
        f"  baseline curve: val_bpb = {p['a']:.4f} - {p['s']:.4f} * log2(C)   (s ± {p.get('s_stderr', float('nan')):.4f})",
        f"  at T={p['budget_seconds']:g}s: C_T = {p['flops_at_budget']:.4g} FLOPs, val_bpb {p['baseline_bpb_mean']:.4f} "
        f"(fit {p['baseline_bpb_fit']:.4f}), sigma {sig:.4f} over {p['repeats'] + 1} runs",
        f"  noise band of one run (±{normalize.band_sigmas(p):.2f}σ, 95% for σ from {p['repeats'] + 1} runs): "
        f"val_bpb ±{normalize.band_sigmas(p) * sig:.4f}" + _band_in_gain(p),
        f"  throughput: {p['tokens_per_second']:,.0f} tok/s, {p['flops_per_second']:.4g} FLOP/s"
        + (f", MFU {p['mfu_percent']:.2f}%" if p.get("mfu_percent") is not None else "")
        + (f" of {p['peak_flops']:.4g} ({p.get('peak_flops_source')})" if p.get("peak_flops") else ""),
    ]
    if p.get("floor_bpb"):
        lines.append(f"  dataset floor_bpb: {p['floor_bpb']:.4f}")
    if normalization_refusal(p):  # the curve places a run at another budget; its own budget needs none
        lines.append(f"  normalized results: at T={p['budget_seconds']:g}s only; at other budgets n/a "
                     f"({normalization_refusal(p)})")
    lines.append("  adds to the provisional scoring against the workspace's baseline runs: runs at other budgets "
                 "(the curve), work mode (the FLOP/s), early abandonment (the loss trace) and σ from "
                 f"{p.get('repeats', 0) + 1} runs at T")
    runs = (p.get("loss_trace") or {}).get("runs") or []
    lines.append(f"  training-loss trace: {len(runs)} runs at T (early abandonment of runs at {p['budget_seconds']:g}s)"
                 if runs else "  training-loss trace: none (early abandonment off; `arp calibrate --force` records one)")
    if math.isfinite(p.get("s_stderr") or float("nan")) and p["s_stderr"] > 0.5 * p["s"]:
        lines.append("  warning: the slope is poorly determined (its standard error is over half its value); a longer --budget helps")
    return "\n".join(lines)
