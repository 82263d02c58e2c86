"""Self-consistency checks of the normalized metrics (compute multiplier,
normalized_bpb), with real budgets.

For each backend given (default: cpu, and mlx where it is importable) on this machine:

1. calibrate (reuses the cached profile for this device + backend + dataset + harness version at
   budget T, else measures it: T/4, T/2, T and --repeats more at T);
2. **baseline**: the unmodified baseline at T with a seed the calibration did not use
   -> pass when |g| <= its band (2 sigma / s);
3. **2x budget**: the unmodified baseline given twice the compute, scored against the budget-T
   baseline (b_base at C_T) -> pass when |g - 1| <= band. By default in work mode with a FLOP
   budget of exactly 2 C_T (`--double-mode wall`: 2T seconds of wall clock instead, which on a
   loaded machine is not 2x the FLOPs; the g its actual compute predicts, log2(C_run / C_T), is
   printed beside it);
4. **variant**: the same edit of train.py on every backend (default: WARMDOWN_FRAC = 0.0, no LR
   decay) at T -> its g per backend; the backends agree when |g_1 - g_2| <= sqrt(band_1^2 + band_2^2).

    python benchmarks/check_normalization.py --budget 300                 # cpu (+ mlx if installed)
    python benchmarks/check_normalization.py --budget 60 --backends cpu   # shorter, cpu only

Time: per backend, the calibration (3.75 T + 5 start-ups and evals, unless cached) plus 4 T of
checks. Prints one table and writes --out (JSON) with every number.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHECK_SEED = 7  # not one of the calibration's seeds (0..repeats)


def run_baseline(plan_pr, plan, dataset, sizes, budget, seed, edits=None, log=print, budget_mode="wall", flop_budget=None):
    from autoresearch_portable.harness.calibrate import BASE_MODEL_SEED, baseline_source
    from autoresearch_portable.harness.runner import run_training
    from autoresearch_portable.harness.workspace import render_template

    text = baseline_source(plan, sizes, BASE_MODEL_SEED + seed)
    if edits:
        text = render_template(text, edits)
    with tempfile.TemporaryDirectory(prefix="arp-check-") as tmp:
        path = Path(tmp) / "train.py"
        path.write_text(text)
        t0 = time.time()
        r = run_training(path, probe=plan_pr, plan=plan, dataset=dataset, budget_seconds=budget, seed=seed, quiet=True,
                         budget_mode=budget_mode, flop_budget=flop_budget)
    log(f"    {r.get('status')}: val_bpb {r.get('val_bpb')}, {r.get('train_flops', 0):.4g} FLOPs, "
        f"{r.get('num_steps')} steps, {time.time() - t0:.0f}s")
    if r.get("status") != "ok":
        raise SystemExit(f"run failed: {r.get('status')}: {r.get('reason')}")
    return r


def check_backend(backend, args, log):
    from autoresearch_portable import data
    from autoresearch_portable.detect import make_plan, probe
    from autoresearch_portable.harness import calibrate as cal
    from autoresearch_portable.harness import normalize as nz
    from autoresearch_portable.harness.bench import reference_for

    pr = probe()
    plan = make_plan(pr, backend).to_dict()
    log(f"== {backend}: calibration at T={args.budget:g}s")
    profile = cal.calibrate(pr.to_dict(), plan, args.dataset, args.budget, args.repeats, log=log)
    sizes = profile["baseline_sizes"]
    ds_id = cal.dataset_identity(data.load(args.dataset))
    ref, _ = reference_for(ds_id)
    T = float(profile["budget_seconds"])
    out = dict(backend=backend, device=profile.get("device_name"), profile=profile.get("path"), budget_seconds=T,
               a=profile["a"], s=profile["s"], s_stderr=profile.get("s_stderr"), sigma=profile["sigma"],
               flops_at_budget=profile["flops_at_budget"], sizes=sizes,
               band_doublings=nz.BAND_SIGMAS * profile["sigma"] / profile["s"])
    band = out["band_doublings"]

    log(f"== {backend}: baseline at T (seed {CHECK_SEED})")
    r = run_baseline(pr.to_dict(), plan, args.dataset, sizes, T, CHECK_SEED, log=log)
    n = nz.normalize(r["val_bpb"], profile, budget_seconds=T, reference=ref)
    out["baseline"] = dict(val_bpb=r["val_bpb"], train_flops=r["train_flops"], g=n["doublings"],
                           g_from_compute=math.log2(r["train_flops"] / profile["flops_at_budget"]),
                           normalized_bpb=n.get("normalized_bpb"), passed=abs(n["doublings"]) <= band)

    if args.double_mode == "work":
        log(f"== {backend}: baseline with 2 C_T = {2 * profile['flops_at_budget']:.4g} FLOPs (work mode), scored against the budget-T baseline")
        r = run_baseline(pr.to_dict(), plan, args.dataset, sizes, 2 * T, CHECK_SEED, log=log, budget_mode="work",
                         flop_budget=2 * profile["flops_at_budget"])
    else:
        log(f"== {backend}: baseline at 2T = {2 * T:g}s wall clock, scored against the budget-T baseline")
        r = run_baseline(pr.to_dict(), plan, args.dataset, sizes, 2 * T, CHECK_SEED, log=log)
    n = nz.normalize(r["val_bpb"], profile, budget_seconds=T, reference=ref)  # b_base at C_T, not at 2 C_T
    out["double"] = dict(val_bpb=r["val_bpb"], train_flops=r["train_flops"], g=n["doublings"],
                         g_from_compute=math.log2(r["train_flops"] / profile["flops_at_budget"]),
                         normalized_bpb=n.get("normalized_bpb"), passed=abs(n["doublings"] - 1) <= band)

    edits = dict(args.variant)
    log(f"== {backend}: variant {edits} at T")
    r = run_baseline(pr.to_dict(), plan, args.dataset, sizes, T, CHECK_SEED, edits=edits, log=log)
    n = nz.normalize(r["val_bpb"], profile, budget_seconds=T, reference=ref)
    out["variant"] = dict(edits=edits, val_bpb=r["val_bpb"], g=n["doublings"], normalized_bpb=n.get("normalized_bpb"))
    return out


def parse_variant(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    return name.strip(), json.loads(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dataset", default="bundled")
    ap.add_argument("--backends", default=None, help="comma-separated (default: cpu, and mlx when importable)")
    ap.add_argument("--variant", action="append", type=parse_variant, default=None,
                    help="NAME=VALUE (JSON) edit of train.py for the cross-backend check; default WARMDOWN_FRAC=0.0")
    ap.add_argument("--double-mode", choices=("work", "wall"), default="work",
                    help="how the 2x check gets twice the compute: work = exactly 2 C_T FLOPs (default), "
                         "wall = 2T seconds (includes throughput noise)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "check_normalization.json"))
    args = ap.parse_args()
    args.variant = args.variant or [("WARMDOWN_FRAC", 0.0)]
    if args.backends:
        backends = args.backends.split(",")
    else:
        backends = ["cpu"]
        try:
            import mlx.core  # noqa: F401

            backends.append("mlx")
        except ImportError:
            print("mlx is not installed: torch cpu only", file=sys.stderr)
    from autoresearch_portable import data

    data.prepare(args.dataset, log=lambda m: print(m, file=sys.stderr))
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    results, failures = [], []
    for b in backends:
        try:
            results.append(check_backend(b, args, log))
        except Exception as e:  # one backend failing must not hide the other's numbers
            failures.append(dict(backend=b, error=f"{type(e).__name__}: {e}"))
            log(f"{b}: FAILED: {type(e).__name__}: {e}")

    print(f"\nself-consistency of the normalized metrics, T={args.budget:g}s, band = ±2σ/s doublings")
    hdr = f"{'backend':8} {'device':34} {'s':>7} {'σ':>7} {'band g':>7} | {'baseline g':>10} {'ok':>3} | {'2T g':>6} {'(compute)':>9} {'ok':>3} | {'variant g':>9}"
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        print(f"{r['backend']:8} {str(r['device'])[:34]:34} {r['s']:7.4f} {r['sigma']:7.4f} {r['band_doublings']:7.3f} | "
              f"{r['baseline']['g']:+10.3f} {'yes' if r['baseline']['passed'] else 'NO':>3} | "
              f"{r['double']['g']:+6.3f} {r['double']['g_from_compute']:+9.3f} {'yes' if r['double']['passed'] else 'NO':>3} | "
              f"{r['variant']['g']:+9.3f}")
    agree = None
    if len(results) >= 2:
        a, b = results[0], results[1]
        diff = abs(a["variant"]["g"] - b["variant"]["g"])
        comb = math.hypot(a["band_doublings"], b["band_doublings"])
        agree = dict(backends=[a["backend"], b["backend"]], diff=diff, band=comb, passed=diff <= comb)
        print(f"variant g, {a['backend']} vs {b['backend']}: |{a['variant']['g']:+.3f} - {b['variant']['g']:+.3f}| = {diff:.3f} "
              f"{'<=' if agree['passed'] else '>'} combined band {comb:.3f}: {'agree' if agree['passed'] else 'DISAGREE'}")
    for f in failures:
        print(f"{f['backend']}: not checked ({f['error']})")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(dict(budget_seconds=args.budget, repeats=args.repeats, results=results,
                                                  cross_backend=agree, failures=failures,
                                                  created=time.strftime("%Y-%m-%dT%H:%M:%S%z")), indent=2) + "\n")
        print(f"written: {args.out}")


if __name__ == "__main__":
    main()
