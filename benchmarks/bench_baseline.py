"""The baseline as a user gets it, timed: `arp init` (measured sizing) then `arp train` on the
bundled corpus, for a real budget (default 300 s). Reports tokens/s, MFU against the device's
peak (datasheet or measured matmul), start-up, warm-up and eval seconds and their share of the
budget, and val_bpb against the untrained model.

    python benchmarks/bench_baseline.py [--budget 300] [--backend cpu] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=300)
    ap.add_argument("--backend", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    backend = ["--backend", args.backend] if args.backend else []
    arp = [sys.executable, "-m", "autoresearch_portable"]
    subprocess.run([*arp, "prepare"], check=True)
    with tempfile.TemporaryDirectory(prefix="arp-bench-") as tmp:
        ws = Path(tmp) / "ws"
        subprocess.run([*arp, "init", str(ws), "--budget", str(args.budget), *backend], check=True)
        sizing = json.loads((ws / ".arp.json").read_text())["sizing"]
        r = subprocess.run([*arp, "train", "--budget", str(args.budget), *backend], cwd=ws)
        from autoresearch_portable.harness import ledger

        rec = ledger.read(ws / "results" / "ledger.jsonl")[-1]
    m = rec["metrics"]
    from autoresearch_portable import data

    vocab = data.load("bundled").vocab_size
    out = dict(
        status=rec["status"], backend=m.get("backend"), device=m.get("device"), dtype=m.get("dtype"),
        budget_seconds=args.budget, sizing={k: sizing[k] for k in ("DEPTH", "MODEL_DIM", "DEVICE_BATCH_SIZE", "TOTAL_BATCH_SIZE")},
        val_bpb=m.get("val_bpb"), val_bpb_stderr=m.get("val_bpb_stderr"), floor_bpb=m.get("floor_bpb"),
        # an untrained model spreads probability evenly: log2(vocab) bits per token
        untrained_bits_per_token=math.log2(vocab),
        num_steps=m.get("num_steps"), tokens_per_second=m.get("tokens_per_second"), mfu_percent=m.get("mfu_percent"),
        peak_flops=m.get("peak_flops"), peak_flops_source=m.get("peak_flops_source"),
        peak_memory_mb=m.get("peak_memory_mb"),
        startup_seconds=m.get("startup_seconds"), warmup_seconds=m.get("warmup_seconds"),
        eval_seconds=m.get("eval_wall_seconds"), total_seconds=m.get("total_seconds"),
        # the integrity path, as the parent's clock sees it: export at the end of train.py's
        # process, then the evaluator process (start-up, loading the graph, fresh text, scoring
        # every row and its causality copy)
        export_seconds=m.get("export_seconds"), wall_seconds=m.get("wall_seconds"),
        evaluator_process_seconds=(m.get("total_seconds") or 0) - (m.get("wall_seconds") or 0),
        eval_rows=m.get("eval_rows"), eval_tokens=m.get("eval_tokens"), causality=m.get("causality"),
        verified=m.get("verified"), allowance_seconds=m.get("allowance_seconds"),
        machine_load=m.get("load_summary"), load_noisy=m.get("load_noisy"),
        startup_percent_of_budget=100 * (m.get("startup_seconds") or 0) / args.budget,
        eval_percent_of_budget=100 * (m.get("eval_wall_seconds") or 0) / args.budget,
        export_and_evaluator_percent_of_budget=100 * ((m.get("export_seconds") or 0) + (m.get("total_seconds") or 0)
                                                      - (m.get("wall_seconds") or 0)) / args.budget,
        overhead_seconds=(m.get("total_seconds") or 0) - (m.get("training_seconds") or 0),
    )
    print(json.dumps(out, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    sys.exit(0 if rec["status"] == "ok" and r.returncode == 0 else 1)


if __name__ == "__main__":
    main()
