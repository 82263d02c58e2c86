"""The baseline as a user gets it, timed: `arp init` (measured sizing) then `arp train` on the
bundled corpus, for a real budget (default 300 s). Reports tokens/s, MFU against the device's
peak (datasheet or measured matmul), start-up, warm-up and eval seconds and their share of the
budget, and val_bpb against the untrained model.

`--runs N` trains the same workspace N times; `--unconfined-too` adds as many runs with
`ARP_NO_CONFINE=1`, alternating with the confined ones (what confinement costs, and that it
changes neither the status nor the score: harness/run/confine.py).

    python benchmarks/bench_baseline.py [--budget 300] [--backend cpu] [--runs N] [--unconfined-too] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=300)
    ap.add_argument("--backend", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--unconfined-too", action="store_true")
    args = ap.parse_args()
    backend = ["--backend", args.backend] if args.backend else []
    arp = [sys.executable, "-m", "autoresearch_portable"]
    subprocess.run([*arp, "prepare"], check=True)
    from autoresearch_portable import data
    from autoresearch_portable.harness.records import ledger

    runs = []
    with tempfile.TemporaryDirectory(prefix="arp-bench-") as tmp:
        ws = Path(tmp) / "ws"
        subprocess.run([*arp, "init", str(ws), "--budget", str(args.budget), *backend], check=True)
        sizing = json.loads((ws / ".arp.json").read_text())["sizing"]
        ways = [True, False] if args.unconfined_too else [True]
        for i in range(args.runs):
            for confined in ways:
                env = dict(os.environ, **({} if confined else {"ARP_NO_CONFINE": "1"}))
                again = ["--again"] if runs else []
                r = subprocess.run([*arp, "train", "--budget", str(args.budget), *backend, *again], cwd=ws, env=env)
                rec = ledger.read(ws / "results" / "ledger.jsonl")[-1]
                runs.append(dict(one_run(rec, args.budget, data.load(rec["metrics"]["dataset"]).vocab_size), exit_code=r.returncode,
                                 sizing={k: sizing[k] for k in ("DEPTH", "MODEL_DIM", "DEVICE_BATCH_SIZE", "TOTAL_BATCH_SIZE")}))
    out = runs[0] if len(runs) == 1 else dict(runs=runs, by_confinement=compare(runs))
    print(json.dumps(out, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    sys.exit(0 if all(r["status"] == "ok" and r["exit_code"] == 0 for r in runs) else 1)


def one_run(rec: dict, budget: float, vocab: int) -> dict:
    m = rec["metrics"]
    phases = m.get("phases") or {}
    return dict(
        status=rec["status"], reason=rec.get("reason"), confined=m.get("confined"),
        backend=m.get("backend"), device=m.get("device"), dtype=m.get("dtype"), budget_seconds=budget,
        val_bpb=m.get("val_bpb"), val_bpb_stderr=m.get("val_bpb_stderr"), floor_bpb=m.get("floor_bpb"),
        # an untrained model spreads probability evenly: log2(vocab) bits per token
        untrained_bits_per_token=math.log2(vocab),
        num_steps=m.get("num_steps"), tokens_per_second=m.get("tokens_per_second"), mfu_percent=m.get("mfu_percent"),
        peak_flops=m.get("peak_flops"), peak_flops_source=m.get("peak_flops_source"),
        peak_memory_mb=m.get("peak_memory_mb"),
        startup_seconds=m.get("startup_seconds"), warmup_seconds=m.get("warmup_seconds"),
        eval_seconds=m.get("eval_wall_seconds"), total_seconds=m.get("total_seconds"),
        # the phases as the parent's clock saw them (harness/run/phases.py), and their limits
        phases=phases, phase_limits=m.get("phase_limits"), processes_ended=m.get("processes_ended"),
        # the integrity path: export at the end of train.py's process, then the evaluator process
        # (start-up, loading and counting the graph, fresh text, scoring every row three times:
        # itself, its causality copy, and again in another batch arrangement)
        export_seconds=m.get("export_seconds"), wall_seconds=m.get("wall_seconds"),
        evaluator_process_seconds=(m.get("total_seconds") or 0) - (m.get("wall_seconds") or 0),
        eval_rows=m.get("eval_rows"), eval_rows_per_pass=m.get("eval_rows_per_pass"), eval_tokens=m.get("eval_tokens"),
        causality=m.get("causality"), batch_check=m.get("batch_check"),
        graph_num_params=m.get("graph_num_params"), num_params=m.get("num_params"),
        verified=m.get("verified"), machine_load=m.get("load_summary"), load_noisy=m.get("load_noisy"),
        startup_percent_of_budget=100 * (m.get("startup_seconds") or 0) / budget,
        eval_percent_of_budget=100 * (m.get("eval_wall_seconds") or 0) / budget,
        export_and_evaluator_percent_of_budget=100 * ((m.get("export_seconds") or 0) + (m.get("total_seconds") or 0)
                                                      - (m.get("wall_seconds") or 0)) / budget,
        overhead_seconds=(m.get("total_seconds") or 0) - (m.get("training_seconds") or 0),
    )


def compare(runs: list[dict]) -> dict:
    """Per way (confined or not): statuses, val_bpb, steps, start-up and hand-over as the parent
    saw them, the evaluator process."""
    out = {}
    for way in ("yes", "no"):
        rs = [r for r in runs if str(r["confined"]).startswith(way)]
        if rs:
            out[f"confined_{way}"] = dict(
                {k: [r.get(k) for r in rs] for k in ("status", "val_bpb", "num_steps", "tokens_per_second",
                                                      "evaluator_process_seconds", "total_seconds")},
                **{f"parent_{k}": [r["phases"].get(k) for r in rs] for k in ("startup_seconds", "handover_seconds")})
    return out


if __name__ == "__main__":
    main()
