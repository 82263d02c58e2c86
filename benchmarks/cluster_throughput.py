"""Experiments per hour with `arp submit` on a local Ray cluster: the same 4 commits run with
1 slot of all cores (here 2 threads) and with 2 slots of 1 core each, and the overhead each task
adds to its training budget (Ray start, checkout of the commit, start-up, export, evaluation).

    flock /work/cpu.lock python benchmarks/cluster_throughput.py --budget 30 --out benchmarks/measured/cluster-throughput.json

Each configuration gets a fresh copy of one workspace (baseline depth 2, width 128, 2048 tokens
per step: the CPU baseline of the README) and its own local Ray cluster, started by the
workspace's driver, so the first task's wait includes starting Ray. The machine must be otherwise
idle (run it under the CPU lock). The two configurations alternate for --rounds rounds."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = ["--depth", "2", "--dim", "128", "--device-batch", "2", "--total-batch", "2048"]
CONFIGS = {"1 slot x 2 threads": 2, "2 slots x 1 thread": 1}  # name -> --cpus-per-slot


def arp(*args, cwd, env, timeout=3600):
    r = subprocess.run([sys.executable, "-m", "autoresearch_portable", *args], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"arp {' '.join(args)} failed:\n{r.stderr[-3000:]}\n{r.stdout[-2000:]}")
    return r


def git(ws, *args):
    return subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", *args], cwd=ws, check=True,
                          capture_output=True, text=True).stdout.strip()


def make_workspace(root: Path, env: dict, n: int) -> tuple[Path, list[str]]:
    ws = root / "template"
    arp("init", str(ws), "--backend", "cpu", *SIZES, cwd=root, env=env)
    shas = []
    for i in range(n):  # n commits that all train the baseline (an edit that changes no number)
        with open(ws / "train.py", "a") as f:
            f.write(f"\n# experiment {i}\n")
        git(ws, "commit", "-qam", f"experiment {i}")
        shas.append(git(ws, "rev-parse", "HEAD"))
    return ws, shas


def run_config(template: Path, shas: list[str], cpus_per_slot: int, budget: float, env: dict, name: str) -> dict:
    ws = template.parent / f"ws-{cpus_per_slot}-{time.time_ns()}"
    shutil.copytree(template, ws, ignore=shutil.ignore_patterns("results"))
    t0 = time.time()
    arp("submit", *shas, "--budget", f"{budget:g}", "--cpus-per-slot", str(cpus_per_slot), cwd=ws, env=env)
    arp("wait", cwd=ws, env=env)
    elapsed = time.time() - t0
    recs = [json.loads(l) for l in (ws / "results" / "ledger.jsonl").read_text().splitlines() if l.strip()]
    tasks = []
    for rec in recs:
        m, c = rec["metrics"], rec["cluster"]
        task_wall = c["finished"] - c["started"]
        tasks.append(dict(
            status=rec["status"], val_bpb=m.get("val_bpb"), num_steps=m.get("num_steps"),
            training_seconds=m.get("training_seconds"), task_seconds=round(task_wall, 2),
            overhead_seconds=round(task_wall - (m.get("training_seconds") or 0), 2),
            checkout_seconds=c.get("checkout_seconds"),
            before_launch_seconds=round(task_wall - m["total_seconds"] - (c.get("checkout_seconds") or 0), 2),
            startup_export_seconds=round(m["wall_seconds"] - m["training_seconds"], 2),
            evaluation_seconds=round(m["total_seconds"] - m["wall_seconds"], 2),
        ))
    first_start = min(r["cluster"]["started"] for r in recs)
    out = dict(config=name, cpus_per_slot=cpus_per_slot, experiments=len(recs), seconds=round(elapsed, 1),
               experiments_per_hour=round(len(recs) / elapsed * 3600, 1),
               first_task_wait_seconds=round(first_start - t0, 2),  # driver start + Ray start + scheduling
               mean_overhead_seconds=round(statistics.fmean(t["overhead_seconds"] for t in tasks), 2),
               statuses=sorted(t["status"] for t in tasks), tasks=tasks)
    print(json.dumps({k: v for k, v in out.items() if k != "tasks"}), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=30.0)
    ap.add_argument("--commits", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="arp-cluster-bench-"))
    env = dict(os.environ, ARP_DRIVER_IDLE="1")
    env.pop("RAY_ADDRESS", None)  # a local cluster per configuration
    env.setdefault("ARP_CACHE_DIR", str(root / "cache"))
    try:
        template, shas = make_workspace(root, env, args.commits)
        runs = [run_config(template, shas, per_slot, args.budget, env, name)
                for _ in range(args.rounds) for name, per_slot in CONFIGS.items()]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report = dict(machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", budget=args.budget,
                  commits=args.commits, runs=runs, command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    try:
        import torch

        report["torch"] = torch.__version__
    except ImportError:
        pass
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
