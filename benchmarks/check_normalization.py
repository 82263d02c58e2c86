"""Self-consistency checks of the normalized metrics, with real budgets, for every candidate of
normalization v2 side by side (benchmarks/metric_candidates.py `candidates`: delta, loglinear, power,
excess_ratio), on the same runs.

For each device given (default: cpu, and mlx where it is importable) on this machine:

1. calibrate (reuses the cached profile for this device + backend + dataset + harness version at
   budget T, else measures it: T/4, T/2, 3T/4, T and --repeats more at T, the power form's schedule,
   so that every candidate has its curve; a simulated device's profile
   lives in its own file under profiles/check/);
2. **baseline**: the unmodified baseline at T with a seed the calibration did not use
   -> pass when |g| <= its band (k sigma / s, k = normalize.band_sigmas: the 95% band of one run
   for a sigma from the calibration's runs at T), and per candidate when its gain is within its band;
3. **2x budget**: the unmodified baseline given twice the compute, scored against the budget-T
   baseline (b_base at C_T) -> pass when |g - 1| <= band. By default in work mode with a FLOP
   budget of exactly 2 C_T (`--double-mode wall`: 2T seconds of wall clock instead, which on a
   loaded machine is not 2x the FLOPs; the g its actual compute predicts, log2(C_run / C_T), is
   printed beside it);
4. **edits**: each --variant (one run per --variant; `NAME=VALUE;NAME=VALUE` sets several names
   of train.py at once; default WARMDOWN_FRAC=0.0) at T -> every candidate's gain per device; two
   devices agree on a candidate when |gain_1 - gain_2| <= sqrt(band_1^2 + band_2^2).

A device is BACKEND[:threads=N][:dtype=D]: `cpu:threads=1` is this CPU limited to one thread (a
slower "device", OMP_NUM_THREADS for its runs), `cpu:dtype=float32` the CPU in fp32 where the plan
would use bf16. By default every device trains the first device's baseline sizes (`--own-sizes`:
each sized for itself, as `arp init` would). normalized_bpb of every candidate is placed on the
first device's scale (its profile is the reference).

    python benchmarks/check_normalization.py --budget 300 --devices cpu,cpu:threads=1 \\
        --variant WARMDOWN_FRAC=0.0 --variant MATRIX_LR=0.04 --variant MODEL_DIM=64   # item 4 of issue 12
    python benchmarks/check_normalization.py --budget 60 --devices cpu   # shorter, one device

Time: per device, the calibration (4.5 T + 6 start-ups and evals with 2 repeats, T more per
repeat, unless cached) plus (3 + edits) T of checks (the 2 C_T run takes 2 T where the device
calibrated, longer on a slower device trained at the first one's sizes). Prints the tables and
writes --out (JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import metric_candidates as mc  # noqa: E402

CHECK_SEED = 7  # not one of the calibration's seeds (0..repeats)
CANDIDATES = ("delta", "loglinear", "power", "excess_ratio")


def parse_device(text: str) -> dict:
    backend, *opts = text.split(":")
    dev = dict(spec=text, backend=backend, threads=None, dtype=None, budget=None)
    for o in opts:
        k, _, v = o.partition("=")
        if k == "threads" and v.isdigit() and int(v) > 0:
            dev["threads"] = int(v)
        elif k == "dtype" and v in ("float32", "bfloat16", "float16"):
            dev["dtype"] = v
        elif k == "budget" and v.replace(".", "", 1).isdigit() and float(v) > 0:
            dev["budget"] = float(v)
        else:
            raise SystemExit("error: a device is BACKEND[:threads=N][:dtype=float32|bfloat16|float16][:budget=SECONDS]; "
                             f"got {text!r}")
    return dev


def parse_variant(text: str) -> dict:
    edits = {}
    for part in text.split(";"):
        name, _, value = part.partition("=")
        if not name.strip() or not value:
            raise SystemExit(f"error: a --variant is NAME=VALUE[;NAME=VALUE] with JSON values; got {text!r}")
        edits[name.strip()] = json.loads(value)
    return edits


@contextlib.contextmanager
def threads(n: int | None):
    """Limit the trainer processes started inside to n threads (they inherit the environment)."""
    keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    old = {k: os.environ.get(k) for k in keys}
    if n:
        os.environ.update({k: str(n) for k in keys})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_baseline(pr, plan, dataset, sizes, budget, seed, edits=None, log=print, budget_mode="wall", flop_budget=None):
    from autoresearch_portable.harness.baseline.calibrate import BASE_MODEL_SEED, baseline_source
    from autoresearch_portable.harness.run.launch import run_training
    from autoresearch_portable.harness.baseline.template import render_template

    text = baseline_source(plan, sizes, BASE_MODEL_SEED + seed)
    if edits:
        text = render_template(text, edits)
    with tempfile.TemporaryDirectory(prefix="arp-check-") as tmp:
        path = Path(tmp) / "train.py"
        path.write_text(text)
        t0 = time.time()
        r = run_training(path, probe=pr, plan=plan, dataset=dataset, budget_seconds=budget, seed=seed, quiet=True,
                         budget_mode=budget_mode, flop_budget=flop_budget)
    log(f"    {r.get('status')}: val_bpb {r.get('val_bpb')}, {r.get('train_flops', 0):.4g} FLOPs, "
        f"{r.get('num_steps')} steps, {time.time() - t0:.0f}s")
    if r.get("status") != "ok":
        raise RuntimeError(f"run failed: {r.get('status')}: {r.get('reason')}")  # this device only: the others go on
    return r


CURVE_CANDIDATES = ("loglinear", "power")  # the ones that need the profile's curve (and its 200-step rule)


def scored(r: dict, profile: dict, ref: dict | None, T: float, nz, refused: str | None = None) -> dict:
    """One run's numbers and every candidate metric (against the budget-T baseline). `refused`:
    why this profile's curve is not trusted; the curve-based candidates then say so instead."""
    cands = mc.candidates(r["val_bpb"], profile, budget_seconds=T, reference=ref)
    if refused:
        cands.update({c: dict(error=f"curve refused: {refused}") for c in CURVE_CANDIDATES})
    g = cands["loglinear"].get("gain")
    return dict(val_bpb=r["val_bpb"], val_bpb_stderr=r.get("val_bpb_stderr"), train_flops=r["train_flops"],
                num_steps=r.get("num_steps"), g=g,
                g_from_compute=math.log2(r["train_flops"] / profile["flops_at_budget"]),
                normalized_bpb=cands["loglinear"].get("normalized_bpb"), candidates=cands)


def band_doublings(profile: dict, nz) -> float:
    """The log-linear g's band: the run's band in bpb (normalize.band_sigmas) over the slope."""
    return nz.band_sigmas(profile) * profile["sigma"] / profile["s"]


def judged(run: dict, expected_g: float, band: float, refused: str | None) -> dict:
    """A scored run with `passed`: its log-linear g within the band of what it should be (None
    where the curve is refused)."""
    return dict(run, passed=None if refused else abs(run["g"] - expected_g) <= band)


def check_device(dev: dict, args, log, sizes: dict | None, reference: dict | None) -> dict:
    from autoresearch_portable import paths
    from autoresearch_portable.detect import make_plan, probe
    from autoresearch_portable.harness.baseline import calibrate as cal
    from autoresearch_portable.harness.baseline import normalize as nz
    from autoresearch_portable.harness.run.peak import device_key

    found = probe()
    pr, plan = found.to_dict(), make_plan(found, dev["backend"]).to_dict()
    if dev["dtype"]:
        plan.update(dtype=dev["dtype"], dtype_mode="none" if dev["dtype"] == "float32" else "autocast")
    path = None
    if dev["threads"] or dev["dtype"] or sizes is not None:  # a simulated device: a profile file of its own
        label = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in dev["spec"])
        path = paths.profiles_dir() / "check" / (cal.profile_filename(device_key(pr, plan), args.dataset)[:-5] + f"--{label}.json")
    budget = dev["budget"] or args.budget  # budget=: this machine at a shorter T is a slower device, in FLOPs
    with threads(dev["threads"]):
        log(f"== {dev['spec']}: calibration at T={budget:g}s")
        profile = mc.with_power_fit(cal.calibrate(  # T/4, T/2, 3T/4, T: both curves, so every candidate is measured
            pr, plan, args.dataset, budget, args.repeats, sizes=sizes, path=path, log=log, fractions=mc.POWER_FRACTIONS))
        refused = cal.normalization_refusal(profile)  # its curve is not trusted: only the curve-free candidates
        sizes = profile["baseline_sizes"]
        ref = reference or profile
        quarter = [p.get("num_steps") for p in profile.get("points", []) if p.get("fraction") == 0.25 and p.get("num_steps")]
        T = float(profile["budget_seconds"])
        out = dict(device=dev["spec"], backend=dev["backend"], device_name=profile.get("device_name"),
                   profile=profile.get("path"), budget_seconds=T, a=profile["a"], s=profile["s"],
                   s_stderr=profile.get("s_stderr"), sigma=profile["sigma"], power_fit=profile.get("power_fit"),
                   floor_bpb=profile.get("floor_bpb"), flops_at_budget=profile["flops_at_budget"], sizes=sizes,
                   baseline_bpb_mean=profile.get("baseline_bpb_mean"),
                   band_doublings=band_doublings(profile, nz), repeats=profile["repeats"],
                   fit_form=profile.get("fit_form"), reference=nz.profile_label(ref),
                   steps_at_quarter=min(quarter) if quarter else None, curve_refused=refused,
                   calibration=[{k: pt.get(k) for k in ("fraction", "seed", "val_bpb", "train_flops", "num_steps")}
                                for pt in profile.get("points", []) if pt.get("status") == "ok"])  # re-analysable
        band = out["band_doublings"]

        log(f"== {dev['spec']}: baseline at T (seed {CHECK_SEED})")
        r = scored(run_baseline(pr, plan, args.dataset, sizes, T, CHECK_SEED, log=log), profile, ref, T, nz, refused)
        out["baseline"] = judged(r, 0.0, band, refused)

        if args.double_mode == "work":
            log(f"== {dev['spec']}: baseline with 2 C_T = {2 * profile['flops_at_budget']:.4g} FLOPs (work mode)")
            r = run_baseline(pr, plan, args.dataset, sizes, 2 * T, CHECK_SEED, log=log, budget_mode="work",
                             flop_budget=2 * profile["flops_at_budget"])
        else:
            log(f"== {dev['spec']}: baseline at 2T = {2 * T:g}s wall clock")
            r = run_baseline(pr, plan, args.dataset, sizes, 2 * T, CHECK_SEED, log=log)
        r = scored(r, profile, ref, T, nz, refused)  # b_base at C_T, not at 2 C_T
        out["double"] = judged(r, 1.0, band, refused)

        out["variants"] = []
        for edits in args.variant:
            log(f"== {dev['spec']}: variant {edits} at T")
            r = run_baseline(pr, plan, args.dataset, sizes, T, CHECK_SEED, edits=edits, log=log)
            out["variants"].append(dict(scored(r, profile, ref, T, nz, refused), edits=edits))
    return out, profile


def label(r: dict) -> str:
    """A device of a check, with its budget (a merged report holds `cpu` at two budgets)."""
    return f"{r['device']} @{r['budget_seconds']:g}s" if r.get("budget_seconds") else r["device"]


def agreement(results: list[dict]) -> list[dict]:
    """Per edit and candidate: do the first device and each other one agree within the combined band?"""
    rows = []
    for i, v in enumerate(results[0]["variants"]):
        for name in CANDIDATES:
            a = v["candidates"][name]
            for other in results[1:]:
                b = other["variants"][i]["candidates"][name]
                if "error" in a or "error" in b:
                    rows.append(dict(edit=v["edits"], candidate=name, devices=[label(results[0]), label(other)],
                                     error=a.get("error") or b.get("error")))
                    continue
                diff, comb = abs(a["gain"] - b["gain"]), math.hypot(a["band"], b["band"])
                checked = math.isfinite(diff) and math.isfinite(comb)  # an infinite gain or band proves nothing
                rows.append(dict(edit=v["edits"], candidate=name, devices=[label(results[0]), label(other)],
                                 gains=[a["gain"], b["gain"]], bands=[a["band"], b["band"]], diff=diff, band=comb,
                                 agree=checked and diff <= comb,
                                 diff_in_bands=diff / comb if checked and comb > 0 else math.inf))
    return rows


def _g(c: dict) -> str:
    return "n/a" if "error" in c else f"{c['gain']:+.3f}±{c['band']:.3f}"


def report(results: list[dict], agree: list[dict], budget: float) -> None:
    print(f"\nself-consistency of the normalized metrics, T={budget:g}s, band = ±kσ, the 95% band of one run for "
          f"σ from the calibration's n runs at T (k = t(n-1)·sqrt(1 + 1/n); loglinear g: ±kσ/s doublings)")
    hdr = (f"{'device':22} {'s':>7} {'σ':>7} {'band g':>7} | {'baseline g':>10} {'ok':>3} | {'2x g':>6} "
           f"{'(compute)':>9} {'ok':>3}")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        if r.get("curve_refused"):
            print(f"{r['device'][:22]:22} {r['s']:7.4f} {r['sigma']:7.4f} {'':7} | curve refused: {r['curve_refused']}")
            continue
        print(f"{r['device'][:22]:22} {r['s']:7.4f} {r['sigma']:7.4f} {r['band_doublings']:7.3f} | "
              f"{r['baseline']['g']:+10.3f} {'yes' if r['baseline']['passed'] else 'NO':>3} | "
              f"{r['double']['g']:+6.3f} {r['double']['g_from_compute']:+9.3f} {'yes' if r['double']['passed'] else 'NO':>3}")
    print("\nevery candidate on the same runs (gain ± band; delta in bpb, loglinear and power in doublings, "
          "excess_ratio as a ratio):")
    hdr = f"{'run':34} {'device':22} " + " ".join(f"{c:>16}" for c in CANDIDATES)
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        runs = [("baseline", r["baseline"]), ("2x compute", r["double"])]
        runs += [(json.dumps(v["edits"])[:34], v) for v in r["variants"]]
        for name, run in runs:
            print(f"{name:34} {r['device'][:22]:22} " + " ".join(f"{_g(run['candidates'][c]):>16}" for c in CANDIDATES))
    if agree:
        print("\nagreement across devices (|gain_1 - gain_2| <= combined band):")
        for a in agree:
            what = (f"n/a ({a['error']})" if "error" in a else
                    f"{a['gains'][0]:+.3f} vs {a['gains'][1]:+.3f}: diff {a['diff']:.3f}, band {a['band']:.3f} "
                    f"({a['diff_in_bands']:.2f} bands): {'agree' if a['agree'] else 'DISAGREE'}")
            print(f"  {json.dumps(a['edit'])[:30]:30} {a['candidate']:13} {' vs '.join(a['devices'])}: {what}")


def summary(agree: list[dict]) -> dict[str, dict]:
    """Per candidate: how many edits the devices agreed on, and the mean and largest difference
    in combined bands (lower transfers better). Pure."""
    out = {}
    for name in CANDIDATES:
        rows = [a for a in agree if a["candidate"] == name]
        measured = [a for a in rows if "error" not in a]
        d = [a["diff_in_bands"] for a in measured if math.isfinite(a["diff_in_bands"])]  # an infinite gain disagrees
        out[name] = dict(edits=len(rows), measured=len(measured), agree=sum(bool(a["agree"]) for a in measured),
                         infinite=len(measured) - len(d),
                         mean_diff_in_bands=sum(d) / len(d) if d else None, max_diff_in_bands=max(d) if d else None)
    return out


NEUTRAL = {"delta": 0.0, "loglinear": 0.0, "power": 0.0, "excess_ratio": 1.0}  # the unchanged baseline's gain


def baseline_within(results: list[dict]) -> dict[str, tuple[int, int]]:
    """Per candidate: on how many devices the unchanged baseline (an unused seed) scored within its
    own band of "no change", of how many it could be scored on. Pure."""
    out = {}
    for name in CANDIDATES:
        cs = [r["baseline"]["candidates"][name] for r in results]
        cs = [c for c in cs if "error" not in c]
        # an infinite band (a curve whose asymptote the run is near) proves nothing: not within
        out[name] = (sum(math.isfinite(c["band"]) and abs(c["gain"] - NEUTRAL[name]) <= c["band"] for c in cs), len(cs))
    return out


def _cell(c: dict, digits: int = 3) -> str:
    return "n/a" if "error" in c else f"{c['gain']:+.{digits}f} ± {c['band']:.{digits}f}"


def markdown(results: list[dict], agree: list[dict]) -> str:
    """The tables for benchmarks/README.md, from the numbers of one check (nothing typed by hand)."""
    out = ["| device | T (s) | steps at T/4 | s | σ | val_bpb at T (unused seed) | "
           + " | ".join(f"{c} at T" for c in CANDIDATES) + " | val_bpb at 2·C_T | "
           + " | ".join(f"{c} at 2·C_T" for c in CANDIDATES) + " |",
           "|---|---:|---:|---:|---:|---:|" + "---:|" * len(CANDIDATES) + "---:|" + "---:|" * len(CANDIDATES)]
    for r in results:
        steps = r.get("steps_at_quarter")
        if r.get("curve_refused"):
            steps = f"{steps} (curve refused)"
        out.append(f"| {r['device']} | {r['budget_seconds']:g} | {steps if steps is not None else '?'} | "
                   f"{r['s']:.4f} | {r['sigma']:.4f} | "
                   f"{r['baseline']['val_bpb']:.4f} | " + " | ".join(_cell(r["baseline"]["candidates"][c]) for c in CANDIDATES)
                   + f" | {r['double']['val_bpb']:.4f} | "
                   + " | ".join(_cell(r["double"]["candidates"][c]) for c in CANDIDATES) + " |")
    out += ["", "| edit | " + " | ".join(f"val_bpb {label(r)}" for r in results) + " | candidate | devices | gains | "
            "difference / combined band | agree |", "|---|" + "---:|" * len(results) + "---|---|---|---:|---|"]
    for a in agree:
        i = [v["edits"] for v in results[0]["variants"]].index(a["edit"])
        vals = " | ".join(f"{r['variants'][i]['val_bpb']:.4f}" for r in results)
        edit = ";".join(f"{k}={v}" for k, v in a["edit"].items())
        if "error" in a:
            out.append(f"| `{edit}` | {vals} | {a['candidate']} | {' vs '.join(a['devices'])} | n/a ({a['error']}) | | |")
        else:
            gains = " vs ".join(f"{g:+.3f} ± {b:.3f}" for g, b in zip(a["gains"], a["bands"]))
            out.append(f"| `{edit}` | {vals} | {a['candidate']} | {' vs '.join(a['devices'])} | {gains} | {a['diff_in_bands']:.2f} | "
                       f"{'yes' if a['agree'] else '**no**'} |")
    out += ["", "| candidate | baseline within its band | edits agreed | mean difference / band | largest |",
            "|---|---:|---:|---:|---:|"]
    within = baseline_within(results)
    for name, m in summary(agree).items():
        inside, scored_on = within[name]
        base = f"{inside} of {scored_on}" if scored_on else "n/a"
        if m["measured"]:
            inf = f" ({m['infinite']} infinite)" if m["infinite"] else ""
            mean, top = (f"{m[k]:.2f}" if m[k] is not None else "" for k in ("mean_diff_in_bands", "max_diff_in_bands"))
            out.append(f"| {name} | {base} | {m['agree']} of {m['measured']}{inf} | {mean} | {top} |")
        else:
            out.append(f"| {name} | {base} | n/a | | |")
    return "\n".join(out)


def stored_profile(r: dict, repeats: int) -> dict:
    """The numbers of a device's profile that scoring needs, from a check's result."""
    return dict(a=r["a"], s=r["s"], sigma=r["sigma"], power_fit=r.get("power_fit"), floor_bpb=r.get("floor_bpb"),
                baseline_bpb_mean=r.get("baseline_bpb_mean"),
                flops_at_budget=r["flops_at_budget"], budget_seconds=r["budget_seconds"],
                fit_form=r.get("fit_form", "power"), repeats=r.get("repeats", repeats))


def rescored(check: dict, reference: dict | None = None) -> dict:
    """A check's runs scored again by the harness as it is now (its bands, its metrics), from the
    numbers the check stored; normalized_bpb on `reference`'s scale (default: the first device's).
    Pure."""
    from autoresearch_portable.harness.baseline import normalize as nz

    profiles = [stored_profile(r, check.get("repeats", 2)) for r in check["results"]]
    ref = reference or profiles[0]
    out = []
    for r, prof in zip(check["results"], profiles):
        T, refused, band = float(r["budget_seconds"]), r.get("curve_refused"), band_doublings(prof, nz)
        again = lambda run: dict(run, **scored(run, prof, ref, T, nz, refused))  # noqa: E731
        out.append(dict(r, band_doublings=band, repeats=prof["repeats"],
                        baseline=judged(again(r["baseline"]), 0.0, band, refused),
                        double=judged(again(r["double"]), 1.0, band, refused),
                        variants=[again(v) for v in r["variants"]]))
    return dict(check, results=out)


def merged(checks: list[dict]) -> dict:
    """Several checks' devices as one: agreement recomputed against the first file's first device.
    Pure; the checks must have run the same edits in the same order."""
    edits = [[v["edits"] for v in r["variants"]] for c in checks for r in c["results"]]
    if any(e != edits[0] for e in edits):
        raise SystemExit("error: these checks ran different edits; they cannot be compared")
    results = [r for c in checks for r in c["results"]]
    return dict(checks[0], results=results, agreement=agreement(results) if len(results) >= 2 else [],
                failures=[f for c in checks for f in c.get("failures", [])])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=300)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--dataset", default=None, help="default: the standard benchmark's (benchmarks/standard.json)")
    ap.add_argument("--devices", "--backends", dest="devices", default=None,
                    help="comma-separated BACKEND[:threads=N][:dtype=D] (default: cpu, and mlx when importable)")
    ap.add_argument("--variant", action="append", type=parse_variant, default=None,
                    help="NAME=VALUE[;NAME=VALUE] (JSON values): one edited run per --variant; default WARMDOWN_FRAC=0.0")
    ap.add_argument("--own-sizes", action="store_true", help="size each device's baseline for itself (default: the first's sizes)")
    ap.add_argument("--double-mode", choices=("work", "wall"), default="work",
                    help="how the 2x check gets twice the compute: work = exactly 2 C_T FLOPs (default), "
                         "wall = 2T seconds (includes throughput noise)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "check_normalization.json"))
    ap.add_argument("--sizes-from", metavar="JSON", help="train the first device of an earlier --out's sizes, with its "
                    "profile as the reference (to add devices to a check already run)")
    ap.add_argument("--report", metavar="JSON", nargs="+", help="print the tables (and the README's markdown) of earlier "
                    "--out files, run nothing; several: their devices side by side, agreement against the first file's first")
    args = ap.parse_args()
    if args.report:  # scored again by the harness as it is now, every device on the first one's scale
        checks = [json.loads(Path(f).read_text()) for f in args.report]
        first = stored_profile(checks[0]["results"][0], checks[0].get("repeats", 2))
        done = merged([rescored(c, first) for c in checks])
        for r in done["results"]:  # an --out written before steps_at_quarter was recorded: from its profile
            if r.get("steps_at_quarter") is None and r.get("profile") and Path(r["profile"]).exists():
                pts = json.loads(Path(r["profile"]).read_text()).get("points", [])
                r["steps_at_quarter"] = min((p["num_steps"] for p in pts if p.get("fraction") == 0.25), default=None)
        report(done["results"], done["agreement"], done["budget_seconds"])
        print("\n" + markdown(done["results"], done["agreement"]))
        return
    args.variant = args.variant or [{"WARMDOWN_FRAC": 0.0}]
    if args.dataset is None:
        from autoresearch_portable.harness.baseline.bench import definition

        args.dataset = definition()["dataset"]
    if args.devices:
        devices = [parse_device(d) for d in args.devices.split(",")]
    else:
        devices = [parse_device("cpu")]
        try:
            import mlx.core  # noqa: F401

            devices.append(parse_device("mlx"))
        except ImportError:
            print("mlx is not installed: torch cpu only", file=sys.stderr)
    from autoresearch_portable import data

    data.prepare(args.dataset, log=lambda m: print(m, file=sys.stderr))
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    results, failures, sizes, reference = [], [], None, None
    if args.sizes_from:
        first = json.loads(Path(args.sizes_from).read_text())["results"][0]
        sizes = first["sizes"]
        if first.get("profile") and Path(first["profile"]).exists():  # else normalized_bpb on each device's own scale
            reference = json.loads(Path(first["profile"]).read_text())
    for dev in devices:
        try:
            r, profile = check_device(dev, args, log, None if args.own_sizes else sizes, reference)
            results.append(r)
            sizes, reference = sizes or profile["baseline_sizes"], reference or profile
        except Exception as e:  # one device failing must not hide the others' numbers
            failures.append(dict(device=dev["spec"], error=f"{type(e).__name__}: {e}"))
            log(f"{dev['spec']}: FAILED: {type(e).__name__}: {e}")
    agree = agreement(results) if len(results) >= 2 else []
    report(results, agree, args.budget)
    if results:
        print("\n" + markdown(results, agree))
    for f in failures:
        print(f"{f['device']}: not checked ({f['error']})")
    if args.out:
        from autoresearch_portable.fsutil import atomic_write_json

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(args.out), dict(budget_seconds=args.budget, repeats=args.repeats, results=results,
                                               agreement=agree, failures=failures,
                                               created=time.strftime("%Y-%m-%dT%H:%M:%S%z")))
        print(f"written: {args.out}")


if __name__ == "__main__":
    main()
