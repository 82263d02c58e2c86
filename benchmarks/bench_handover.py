"""Where a short run's seconds go besides training: start-up (launch to rt.start), the hand-over
in train.py's process (export and its self-check), and what follows train.py's exit (the
evaluator's scoring and the parent's checks). Runs an existing workspace's train.py --runs times
(seeds 0, 1, ...) exactly as `arp train` does (experiment.plan + execute; no ledger line), at
--budget seconds instead of the workspace's own. Compare two versions of the harness by running it
on each commit, on the same quiet machine.

    flock /work/cpu.lock python benchmarks/bench_handover.py WORKSPACE --runs 3 --budget 5 --out FILE
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

KEYS = ("status", "reason", "val_bpb", "startup_seconds", "training_seconds", "export_seconds", "total_seconds",
        "eval_wall_seconds")


def after_exit(r: dict) -> float | None:
    """Seconds from train.py's exit to the scored result. Pure."""
    parts = [r.get(k) for k in ("total_seconds", "startup_seconds", "training_seconds", "export_seconds")]
    if any(p is None for p in parts):
        return None
    return parts[0] - parts[1] - parts[2] - parts[3]


def summarize(runs: list[dict]) -> dict:
    """Means over the ok runs: start-up, hand-over, after exit, the whole run. Pure."""
    ok = [r for r in runs if r.get("status") == "ok"]
    mean = lambda xs: statistics.fmean(xs) if xs else None  # noqa: E731
    return dict(ok=len(ok), startup=mean([r["startup_seconds"] for r in ok]),
                handover=mean([r["export_seconds"] for r in ok]),
                after_exit=mean([a for r in ok if (a := after_exit(r)) is not None]),
                wall=mean([r["wall"] for r in ok]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workspace")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--budget", type=float, default=5.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from autoresearch_portable.detect import probe_this_boot
    from autoresearch_portable.harness import experiment

    train_py = Path(args.workspace) / "train.py"
    runs = []
    for seed in range(args.runs):
        t0 = time.time()
        spec = experiment.plan(train_py, experiment.Options(seed=seed, abandon=False, budget=args.budget),
                               log=lambda m: None)
        r = experiment.execute(spec, quiet=True)
        runs.append(dict({k: r.get(k) for k in KEYS}, seed=seed, wall=round(time.time() - t0, 2)))
        print(json.dumps(runs[-1]), flush=True)
    machine = probe_this_boot()
    out = dict(cpu_model=machine.cpu_model, cpus=machine.usable_cores, budget=args.budget, runs=runs,
               summary=summarize(runs))
    print(json.dumps(out["summary"]))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
