"""What a little load costs a wall-mode CPU run: the workspace's baseline on a quiet machine and
beside a partial hog (a process that keeps a share of one core busy, as a browser tab or an
indexer would), interleaved so that drift hits every level alike. For each level: the steps the
run made against the quiet runs', and the share of the CPU the load watch saw others use
(detect/load.py's figure). The slope of lost steps per share of the CPU sets the load watch's
threshold (OTHERS_CPU_SHARE): a run is `noisy` once others cost it more steps than quiet runs
differ by.

    arp init /tmp/lt --budget 30
    python benchmarks/load_threshold.py /tmp/lt --out benchmarks/measured/load-threshold.json

Run it on an otherwise quiet machine. It adds its runs to the workspace's ledger (`--again`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from noise_check import train  # noqa: E402

from autoresearch_portable.detect import probe_this_boot  # noqa: E402

PERIOD = 0.01  # seconds: the hog's cycle, busy for duty x PERIOD, then asleep


def duty_cycle(duty: float, stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:
        busy_until = time.perf_counter() + duty * PERIOD
        while time.perf_counter() < busy_until:
            x += 1
        time.sleep((1.0 - duty) * PERIOD)


class PartialHog:
    """One process that keeps `duty` of one core busy (nothing when duty is 0)."""

    def __init__(self, duty: float, seconds: float):
        self.duty, self.seconds, self.proc = duty, seconds, None

    def __enter__(self):
        if self.duty > 0:
            self.proc = multiprocessing.Process(target=duty_cycle, args=(self.duty, time.time() + self.seconds), daemon=True)
            self.proc.start()
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.join()


def analyse(runs: list[dict], quiet_noise_sigmas: float = 2.0) -> dict:
    """Steps lost per share of the CPU others used (a line through the origin, by least squares),
    the quiet runs' own spread of steps, and the share at which the expected loss is
    `quiet_noise_sigmas` times that spread: the threshold the measurements support."""
    quiet = [r["steps"] for r in runs if r["duty"] == 0 and r["steps"]]
    if len(quiet) < 2:
        return {}
    mean0, sd0 = statistics.fmean(quiet), statistics.stdev(quiet)
    points = [(r["others_share"], 1.0 - r["steps"] / mean0) for r in runs
              if r["duty"] > 0 and r["steps"] and r["others_share"] is not None]
    levels = {}
    for duty in sorted({r["duty"] for r in runs}):
        at = [r for r in runs if r["duty"] == duty and r["steps"]]
        levels[str(duty)] = dict(
            runs=len(at), steps_ratio=round(statistics.fmean(r["steps"] for r in at) / mean0, 3),
            others_share=round(statistics.fmean(r["others_share"] for r in at if r["others_share"] is not None), 3)
            if any(r["others_share"] is not None for r in at) else None,
            statuses=sorted(r["status"] for r in at))
    slope = (sum(s * loss for s, loss in points) / sum(s * s for s, _ in points)) if points else None
    noise = quiet_noise_sigmas * sd0 / mean0
    bpb0 = [r["val_bpb"] for r in runs if r["duty"] == 0 and r.get("val_bpb") is not None]
    shifts = [(r["others_share"], r["val_bpb"] - statistics.fmean(bpb0)) for r in runs
              if r["duty"] > 0 and r.get("val_bpb") is not None and r["others_share"] is not None] if bpb0 else []
    bpb_slope = sum(s * d for s, d in shifts) / sum(s * s for s, _ in shifts) if shifts else None
    return dict(quiet_steps_mean=round(mean0, 1), quiet_steps_sd=round(sd0, 2), levels=levels,
                lost_steps_per_share=round(slope, 3) if slope else None,
                bpb_per_share=round(bpb_slope, 3) if bpb_slope else None,
                quiet_bpb_sd=round(statistics.stdev(bpb0), 4) if len(bpb0) > 1 else None,
                quiet_noise=round(noise, 4), quiet_noise_sigmas=quiet_noise_sigmas,
                supported_threshold=round(noise / slope, 3) if slope and slope > 0 else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workspace", type=Path, nargs="?")
    ap.add_argument("--duties", default="0,0.1,0.25,0.5", help="shares of one core the hog keeps busy")
    ap.add_argument("--rounds", type=int, default=2, help="runs of every level, one per round")
    ap.add_argument("--seed", type=int, default=0, help="the order of the levels in each round")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--analyse-only", action="store_true", help="train nothing: analyse the runs in --out again")
    args = ap.parse_args()
    if args.analyse_only:
        out = json.loads(args.out.read_text())
        out["analysis"] = analyse(out["runs"])
        _report(out, args.out)
        return
    ws = args.workspace
    budget = json.loads((ws / ".arp.json").read_text())["budget_seconds"]
    duties = [float(d) for d in args.duties.split(",")]
    rng = random.Random(args.seed)
    runs = []
    for rnd in range(args.rounds):
        order = duties[:]
        rng.shuffle(order)
        for duty in order:
            with PartialHog(duty, 3 * budget + 300):
                r = train(ws, budget, "wall", seed=rnd)
            runs.append(dict(r, duty=duty))  # others_share: the load watch's figure (others' share of the run's cores)
            print(f"round {rnd} duty {duty:4.2f}: {r['status']:8} steps {r['steps']} others {runs[-1]['others_share']}",
                  flush=True)
    machine = probe_this_boot()
    out = dict(budget=budget, cpu_model=machine.cpu_model, cpus=machine.usable_cores, runs=runs, analysis=analyse(runs),
               commit=subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                                     text=True).stdout.strip())
    _report(out, args.out)


def _report(out: dict, path: Path | None) -> None:
    print(json.dumps(out["analysis"], indent=2))
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
