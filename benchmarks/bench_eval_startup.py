"""What a run waits for after train.py has handed its model over: the evaluator started then (cold:
Python, torch and the dataset first) against the evaluator started beside train.py at launch
(warm: harness/run/launch.py `_Evaluator`, its start-up paid while the run trains).

Both ways, alternately, a small baseline (the template at depth 2, width 64) trains for --budget
seconds through run_training, the path `arp train` takes; per run the time from train.py's exit to
the scored result (total_seconds - wall_seconds) and the evaluator's own scoring time
(eval_wall_seconds) are recorded. Their difference is what start-up costs.

    python benchmarks/bench_eval_startup.py --runs 3 --budget 5 --out benchmarks/measured/eval-startup.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def one_run(text: str, pr: dict, plan: dict, dataset: str, budget: float, warm: bool) -> dict:
    from autoresearch_portable.harness.run import launch

    real = launch._Evaluator
    started = []

    def factory(plan_, dataset_):  # cold: nothing at launch, the evaluator made when the job is there
        started.append(time.time())
        return real(plan_, dataset_) if warm or len(started) > 1 else None

    launch._Evaluator = factory
    try:
        with tempfile.TemporaryDirectory(prefix="arp-bench-eval-") as tmp:
            path = Path(tmp) / "train.py"
            path.write_text(text)
            r = launch.run_training(path, probe=pr, plan=plan, dataset=dataset, budget_seconds=budget, quiet=True,
                                    eval_rows=16)
    finally:
        launch._Evaluator = real
    return dict(warm=warm, status=str(r.get("status")), after_exit=r["total_seconds"] - r["wall_seconds"],
                eval_wall_seconds=r.get("eval_wall_seconds"), val_bpb=r.get("val_bpb"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs of each way")
    ap.add_argument("--budget", type=float, default=5.0)
    ap.add_argument("--dataset", default="bundled-v2")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "measured" / "eval-startup.json"))
    args = ap.parse_args()
    from autoresearch_portable.detect import make_plan, probe
    from autoresearch_portable.harness.baseline.template import baseline_source

    found = probe()
    pr, plan = found.to_dict(), make_plan(found, "cpu").to_dict()
    from autoresearch_portable import data

    seq = data.load(args.dataset).seq_len
    text = baseline_source(plan, dict(DEPTH=2, MODEL_DIM=64, HEAD_DIM=32, DEVICE_BATCH_SIZE=2, TOTAL_BATCH_SIZE=2 * seq))
    runs = []
    for i in range(args.runs):
        for warm in (False, True):
            r = one_run(text, pr, plan, args.dataset, args.budget, warm)
            runs.append(r)
            print(f"{'warm' if warm else 'cold'}: {r['status']}, {r['after_exit']:.2f}s after train.py's exit "
                  f"(scoring itself {r['eval_wall_seconds'] or float('nan'):.2f}s)", flush=True)
    summary = {}
    for way in ("cold", "warm"):
        rs = [r for r in runs if r["warm"] == (way == "warm") and r["status"] in ("ok", "noisy")]
        if rs:
            summary[way] = dict(runs=len(rs), after_exit_mean=statistics.fmean(r["after_exit"] for r in rs),
                                scoring_mean=statistics.fmean(r["eval_wall_seconds"] for r in rs))
    out = dict(machine=pr.get("cpu_model"), cores=pr.get("logical_cores"), budget=args.budget, dataset=args.dataset,
               runs=runs, summary=summary, measured=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for way, s in summary.items():
        print(f"{way}: {s['after_exit_mean']:.2f}s after train.py's exit, of which scoring {s['scoring_mean']:.2f}s "
              f"({s['runs']} runs)")


if __name__ == "__main__":
    main()
