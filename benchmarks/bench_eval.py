"""The evaluator's own cost, timed: one short training of the baseline (`arp init` sizes it for
--budget, so the batch and model are the ones a user gets), its hand-over kept, then the
evaluator process scoring --rows rows of it, --repeats times each with the allocator settings the
harness gives it (runner.MALLOC_SETTINGS) and without them. Prints eval seconds (scoring only)
and the process's wall seconds.

    python benchmarks/bench_eval.py [--budget 300] [--rows 64] [--repeats 2] [--backend cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoresearch_portable.harness.run import launch as runner  # noqa: E402


def keep_handover(into: Path):
    """Make the runner's evaluator call copy the job and the hand-over to `into` first (until the
    returned function is called)."""
    real = subprocess.run

    def spy(cmd, *a, **kw):
        if "autoresearch_portable.harness.score.evaluator" in cmd:
            job = json.loads(Path(cmd[-1]).read_text())
            shutil.copytree(job["handover"], into / "handover", dirs_exist_ok=True)
            (into / "job.json").write_text(json.dumps(dict(job, handover=str(into / "handover"))))
        return real(cmd, *a, **kw)

    runner.subprocess.run = spy  # the subprocess module's own: undone before we time anything

    def undo():
        runner.subprocess.run = real
    return undo


def evaluate(job: Path, env: dict) -> tuple[float, float]:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autoresearch_portable.harness.score.evaluator", str(job)], env=env, check=True,
                   capture_output=True)
    wall = time.perf_counter() - t0
    res = json.loads(Path(json.loads(job.read_text())["result_path"]).read_text())
    if res.get("status") != "ok":
        raise SystemExit(f"error: the evaluator said {res.get('status')}: {res.get('reason')}")
    return res["eval_seconds"], wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=300, help="the budget `arp init` sizes the baseline for")
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--backend", default=None)
    args = ap.parse_args()
    backend = ["--backend", args.backend] if args.backend else []
    with tempfile.TemporaryDirectory(prefix="arp-bench-eval-") as tmp:
        tmp = Path(tmp)
        ws = tmp / "ws"
        subprocess.run([sys.executable, "-m", "autoresearch_portable", "init", str(ws), "--budget", str(args.budget),
                        *backend], check=True, capture_output=True)
        undo = keep_handover(tmp)
        from autoresearch_portable.cli import main as arp

        sys.argv = ["arp", "train", "--budget", "2", *backend]
        cwd = os.getcwd()
        os.chdir(ws)
        try:
            arp()
        except SystemExit:
            pass
        finally:
            os.chdir(cwd)
            undo()
        job = json.loads((tmp / "job.json").read_text())
        job.update(eval_rows=args.rows, result_path=str(tmp / "result.json"))
        (tmp / "job.json").write_text(json.dumps(job))
        print(f"\nevaluator: {args.rows} rows, batch {job.get('batch_rows')}, {args.repeats} repeats each")
        for name, env in (("harness allocator settings", dict(os.environ, **runner.MALLOC_SETTINGS)),
                          ("C library defaults", {k: v for k, v in os.environ.items() if k not in runner.MALLOC_SETTINGS})):
            times = [evaluate(tmp / "job.json", env) for _ in range(args.repeats)]
            print(f"  {name:28} eval {', '.join(f'{e:.2f}' for e, _ in times)} s "
                  f"(process {', '.join(f'{w:.2f}' for _, w in times)} s; mean eval {statistics.fmean(e for e, _ in times):.2f} s)")


if __name__ == "__main__":
    main()
