"""Decisions above the noise, measured: the unmodified baseline on a quiet machine and under a CPU
hog (a busy loop on every core), in work mode (fixed FLOPs) and wall mode (fixed seconds).

Expected: in work mode the six val_bpb agree within the calibrated band (the FLOP budget fixes
the number of steps whatever the load); in wall mode every hogged run is marked `noisy`.

    arp init /tmp/nc --budget 60 && (cd /tmp/nc && arp calibrate --budget 60)
    python benchmarks/noise_check.py /tmp/nc --budget 60 --out benchmarks/measured/noise-check.json

Run it on a quiet machine: the quiet half of the comparison must really be quiet.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path


def spin(stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:
        x += 1


class Hog:
    """A busy loop on every core, for at most `seconds`."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.procs: list[multiprocessing.Process] = []

    def __enter__(self):
        stop_at = time.time() + self.seconds
        self.procs = [multiprocessing.Process(target=spin, args=(stop_at,), daemon=True) for _ in range(os.cpu_count() or 1)]
        for p in self.procs:
            p.start()
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.terminate()
            p.join()


def calibrated_profile(budget: float) -> dict | None:
    """The newest calibration profile at this budget in the cache (`arp calibrate` wrote it)."""
    from autoresearch_portable import paths

    found = []
    for f in paths.profiles_dir().glob("*.json"):
        p = json.loads(f.read_text())
        if p.get("budget_seconds") == budget:
            found.append((f.stat().st_mtime, p))
    return max(found, key=lambda t: t[0])[1] if found else None


def train(ws: Path, budget: float, mode: str, seed: int) -> dict:
    # --again: the same commit on purpose (the duplicate check would refuse it, exit 2)
    cmd = [sys.executable, "-m", "autoresearch_portable", "train", "--budget", str(budget), "--budget-mode", mode,
           "--seed", str(seed), "--again"]
    ledger = ws / "results" / "ledger.jsonl"
    before = len(ledger.read_text().splitlines()) if ledger.exists() else 0
    r = subprocess.run(cmd, cwd=ws, capture_output=True, text=True)
    lines = ledger.read_text().splitlines()
    if len(lines) != before + 1:
        sys.exit(f"arp train did not record this run (exit {r.returncode}): {r.stderr.strip()[-500:]}")
    rec = json.loads(lines[-1])
    m = rec["metrics"]
    load = m.get("load") or {}
    return dict(mode=mode, seed=seed, status=rec["status"], reason=rec.get("reason"), val_bpb=m.get("val_bpb"),
                abandon_held=(m.get("abandon_watch") or {}).get("held"), wall_seconds=m.get("wall_seconds"),
                stderr=m.get("val_bpb_stderr"), steps=m.get("num_steps"), tokens_per_second=m.get("tokens_per_second"),
                others_share=load.get("others_share_mean"), exit_code=r.returncode)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--budget", type=float, default=60)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    ws = args.workspace
    runs = []
    for i in range(args.runs):
        runs.append(dict(train(ws, args.budget, "work", seed=i), hog=False))
    for i in range(args.runs):
        with Hog(40 * args.budget + 600):  # past the work-mode backstop: the hog outlives the run
            runs.append(dict(train(ws, args.budget, "work", seed=i), hog=True))
    for i in range(args.runs):
        with Hog(3 * args.budget + 300):
            runs.append(dict(train(ws, args.budget, "wall", seed=i), hog=True))
    work = [r["val_bpb"] for r in runs if r["mode"] == "work" and r["val_bpb"] is not None]
    profile = calibrated_profile(args.budget)
    sigma = profile.get("sigma") if profile else None
    band = profile["band_sigmas"] * sigma if sigma is not None else None
    mean = statistics.fmean(work) if work else None
    out = dict(
        budget=args.budget, cpu_count=os.cpu_count(), cpu_model=platform.processor() or None, runs=runs,
        calibrated_sigma=sigma, calibrated_repeats=profile.get("repeats") if profile else None, band=band,
        # the claim: all six work-mode runs (quiet and hogged) lie within the calibrated band of their mean
        work_runs_finished=len(work),
        work_max_deviation=max(abs(v - mean) for v in work) if work else None,
        work_within_band=(len(work) == 2 * args.runs and band is not None and all(abs(v - mean) <= band for v in work)),
        # the band the verdict uses for one run: 2 x sqrt(sigma^2 + the run's own eval stderr^2)
        work_within_verdict_band=(len(work) == 2 * args.runs and sigma is not None and all(
            abs(r["val_bpb"] - mean) <= 2 * (sigma ** 2 + (r["stderr"] or 0) ** 2) ** 0.5
            for r in runs if r["mode"] == "work")),
        hog_minus_quiet=[round(h["val_bpb"] - q["val_bpb"], 4) for q, h in zip(runs[:args.runs], runs[args.runs:2 * args.runs])
                         if q["val_bpb"] is not None and h["val_bpb"] is not None],
        work_mean=mean,
        work_spread=statistics.stdev(work) if len(work) > 1 else None,
        work_range=(max(work) - min(work)) if work else None,
        wall_hogged_noisy=sum(1 for r in runs if r["mode"] == "wall" and r["status"] == "noisy"),
    )
    for r in runs:
        print(f"{r['mode']:5} hog={str(r['hog']):5} seed={r['seed']} status={r['status']:11} "
              f"val_bpb={r['val_bpb'] if r['val_bpb'] is None else round(r['val_bpb'], 4)} steps={r['steps']} "
              f"tok/s={r['tokens_per_second'] and round(r['tokens_per_second'])} others={r['others_share']}")
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
