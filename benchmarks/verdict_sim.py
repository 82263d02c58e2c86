"""The verdict's error rates on simulated research loops (harness/records/verdict.py, the rule program.md
tells the agent to follow).

A loop: the baseline runs `--baseline-runs` times (program.md's step 0: `arp train --repeat 3`);
then `--edits` edits, each starting from the bar, each run once and
then treated as the verdict says: `keep` (the commit stays on the branch), `discard` (it leaves the
branch), `repeat N` (N more runs, then the verdict again; at most `--rounds` times, then whatever it
says is final, a repeat counting as a discard). A run's val_bpb is the code's true value plus
normal noise σ. The true gain of an edit over the code it started from is drawn from --gains (in
σ). With --calibration-dof D, the device's calibration measured σ with D degrees of freedom
(`arp calibrate`'s 4 extra runs at T: 4); 0: no calibration.

Reports, per true gain: how often the edit was kept, and the runs spent on it; and the false-keep
rate (a neutral or harmful edit kept). The loop itself (run_loop) takes its runs from a function:
benchmarks/loop_replay.py replays it on runs measured on this CPU instead of simulated ones.

    python benchmarks/verdict_sim.py [--loops 1000] [--edits 20] [--calibration-dof 4] [--baseline-runs 3] [--seed 0] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np

from autoresearch_portable.harness.records import verdict
from autoresearch_portable.harness.records.verdict import Noise, decide

SETTINGS = dict(budget_seconds=30.0, budget_mode="wall", backend="cpu", device="sim", dataset="sim", harness_version="sim")


def run_loop(edits: list[str], draw: Callable[[str, list[str]], float], rounds: int, baseline_runs: int = 3,
             calibrated: Noise | None = None, baseline: str = "c0") -> list[dict]:
    """One research loop as program.md has the agent run it, on any source of runs: the baseline
    `baseline_runs` times, then each of `edits` in order, run once and then treated as the verdict
    says (keep: it stays on the branch and is the code the next edit starts from; discard: it leaves
    the branch; repeat N: N more runs, at most `rounds` times, then a repeat counts as a discard).
    `draw(code, kept)`: the val_bpb of one new run of `code`, committed on top of the edits kept so
    far (`kept`, in order; [] for the baseline). Returns per edit: code, kept, runs, repeated, verdict."""
    records: list[dict] = []
    branch: set[str] = {baseline}
    kept: list[str] = []

    def run(code: str) -> verdict.Decision:
        result = dict(SETTINGS, status="ok", val_bpb=float(draw(code, list(kept))), train_py_sha256=code,
                      git_commit=code, calibrated_sigma=calibrated.sigma if calibrated else None,
                      calibrated_sigma_dof=calibrated.dof if calibrated else None)
        d = decide(records, result, calibrated, branch)
        records.append(dict(status="ok", git_commit=code, train_py_sha256=code, harness_version="sim", metrics=result))
        return d

    for _ in range(baseline_runs):
        run(baseline)
    out = []
    for code in edits:
        branch.add(code)  # committed: on the branch until discarded
        d, spent = run(code), 1
        for _ in range(rounds):
            if d.action != "repeat":
                break
            for _ in range(d.runs):
                d = run(code)
                spent += 1
        if d.action == "keep":
            kept.append(code)
        else:
            branch.discard(code)
        out.append(dict(code=code, kept=d.action == "keep", runs=spent, repeated=spent > 1, verdict=d.word))
    return out


def one_loop(rng, edits: int, gains: list[float], cal_dof: int, rounds: int, baseline_runs: int = 3,
             sigma: float = 1.0) -> list[dict]:
    """run_loop on simulated runs: a run is its code's true value plus normal noise σ; an edit's
    true gain over the code it started from (the last kept edit) is drawn from `gains` (in σ)."""
    calibrated = Noise(sigma * float(np.sqrt(rng.chisquare(cal_dof) / cal_dof)), cal_dof) if cal_dof else None
    truth: dict[str, float] = {"c0": 0.0}
    gain: dict[str, float] = {}

    def draw(code: str, kept: list[str]) -> float:
        if code not in truth:
            gain[code] = float(rng.choice(gains))
            truth[code] = truth[kept[-1] if kept else "c0"] - gain[code] * sigma
        return truth[code] + sigma * rng.standard_normal()

    out = run_loop([f"c{i}" for i in range(1, edits + 1)], draw, rounds, baseline_runs, calibrated)
    return [dict(gain=gain[e["code"]], kept=e["kept"], runs=e["runs"], repeated=e["repeated"]) for e in out]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loops", type=int, default=1000)
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--gains", default="-1,0,0,0,0,0.5,1,2", help="true gains in σ, drawn uniformly per edit")
    ap.add_argument("--calibration-dof", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=10, help="repeat rounds before the verdict is final (the rule "
                    "itself stops repeating at verdict.MAX_RUNS runs of one code)")
    ap.add_argument("--repeat-se", type=float, default=None, help="try another verdict.REPEAT_SE")
    ap.add_argument("--baseline-runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    gains = [float(g) for g in args.gains.split(",")]
    if args.repeat_se is not None:
        verdict.REPEAT_SE = args.repeat_se
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    by_gain: dict[float, list[dict]] = defaultdict(list)
    for _ in range(args.loops):
        for e in one_loop(rng, args.edits, gains, args.calibration_dof, args.rounds, args.baseline_runs):
            by_gain[e["gain"]].append(e)
    table = {f"{g:+g} sigma": dict(edits=len(es), kept=round(float(np.mean([e["kept"] for e in es])), 4),
                                   repeated=round(float(np.mean([e["repeated"] for e in es])), 4),
                                   runs_per_edit=round(float(np.mean([e["runs"] for e in es])), 3))
             for g, es in sorted(by_gain.items())}
    bad = [e for g, es in by_gain.items() if g <= 0 for e in es]
    out = dict(loops=args.loops, edits_per_loop=args.edits, calibration_dof=args.calibration_dof, rounds=args.rounds,
               baseline_runs=args.baseline_runs, repeat_se=verdict.REPEAT_SE, max_repeat=verdict.MAX_REPEAT,
               max_runs=verdict.MAX_RUNS,
               seed=args.seed, by_true_gain=table, false_keep_rate=round(float(np.mean([e["kept"] for e in bad])), 4),
               seconds=round(time.time() - t0, 1))
    print(json.dumps(out, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
