"""Training throughput of the real template under the real harness, at any configuration.

    python benchmarks/bench_train.py --depth 8 --dim 512 --seq-len 2048 --vocab 8192 \
        --device-batch 128 --total-batch 524288 --budget 60          # the original's H100 config
    python benchmarks/bench_train.py --plain ...                      # same model, no device-specific choices

It renders train_template.py with the given sizes, runs it in a child process exactly as
`arp train` does (budget clock, warm-up exclusion, FLOPs counted by the harness), on random tokens
of the given vocab and sequence length (benchmarks/synthetic.py), and prints one JSON line:
tokens/s, MFU against the plan's peak, and the harness's MFU computed the original's way
(6·N_matmul + windowed attention, per token, against the datasheet peak) beside it, peak memory
and start-up seconds. The model is not scored (status `trained`): the evaluator loads prepared
datasets only, and val_bpb on random tokens means nothing. `--plain` runs the straightforward
version (fp32, eager, dense masks) for the "at least as fast as the obvious code" comparison. `--libc-defaults` starts train.py
without the harness's allocator settings, to measure what they are worth. `--out FILE` also
writes the JSON."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """\
import sys, runpy
sys.path.insert(0, {bench!r})
import autoresearch_portable.data as data
from synthetic import SyntheticDataset
data.load = lambda name: SyntheticDataset({vocab}, {seq_len})
runpy.run_path({train!r}, run_name="__main__")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--device-batch", type=int, default=4)
    ap.add_argument("--total-batch", type=int, default=None, help="tokens per step (default: one pass)")
    ap.add_argument("--window-pattern", default="SSSL")
    ap.add_argument("--budget", type=float, default=30.0)
    ap.add_argument("--backend", default=None)
    ap.add_argument("--plain", action="store_true", help="fp32, no compile, dense-mask attention")
    ap.add_argument("--libc-defaults", action="store_true",
                    help="start train.py without the harness's allocator settings (runner.MALLOC_SETTINGS)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from autoresearch_portable.detect import make_plan, probe
    from autoresearch_portable.harness.run import launch as runner
    from autoresearch_portable.harness.baseline.template import asset, render_template

    pr = probe()
    plan = make_plan(pr, args.backend)
    if args.plain:
        plan = replace(plan, dtype="float32", dtype_mode="none", grad_scaler=False, attention="sdpa_mask",
                       compile=False, peak_flops=None, peak_flops_source="measure")
    total = args.total_batch or args.device_batch * args.seq_len
    name = "train_template_mlx.py" if plan.backend == "mlx" else "train_template.py"
    text = render_template(asset(name).read_text(), dict(
        DEPTH=args.depth, MODEL_DIM=args.dim, HEAD_DIM=args.head_dim, DEVICE_BATCH_SIZE=args.device_batch,
        TOTAL_BATCH_SIZE=total, WINDOW_PATTERN=args.window_pattern))
    with tempfile.TemporaryDirectory(prefix="arp-bench-") as tmp:
        train_py = Path(tmp) / "template.py"
        train_py.write_text(text)
        child = Path(tmp) / "train.py"
        child.write_text(CHILD.format(bench=str(ROOT / "benchmarks"), vocab=args.vocab, seq_len=args.seq_len, train=str(train_py)))
        if args.libc_defaults:
            runner.MALLOC_SETTINGS = {}  # read by run_training when it starts the child
        r = runner.run_training(child, probe=pr.to_dict(), plan=plan.to_dict(), dataset="synthetic",
                                budget_seconds=args.budget, timeout=max(4 * args.budget, args.budget + 600),
                                evaluate=False)  # the evaluator cannot load random tokens; speed is the point
    out = dict(
        status=r.get("status"), reason=r.get("reason"), backend=plan.backend, device=r.get("device"),
        dtype=plan.dtype, attention=plan.attention, compile=plan.compile, plain=args.plain,
        allocator="C library defaults" if args.libc_defaults else "harness settings",
        config=dict(depth=args.depth, dim=args.dim, head_dim=args.head_dim, seq_len=args.seq_len, vocab=args.vocab,
                    device_batch=args.device_batch, total_batch=total, window_pattern=args.window_pattern),
        budget_seconds=args.budget, training_seconds=r.get("training_seconds"), num_steps=r.get("num_steps"),
        tokens_per_second=r.get("tokens_per_second"), flops_per_token=r.get("flops_per_token"),
        mfu_percent=r.get("mfu_percent"), peak_flops=r.get("peak_flops"), peak_flops_source=r.get("peak_flops_source"),
        peak_memory_mb=r.get("peak_memory_mb"), startup_seconds=r.get("startup_seconds"),
        warmup_seconds=r.get("warmup_seconds"), total_seconds=r.get("total_seconds"),
    )
    # The original autoresearch's MFU convention, for comparison with its 39.8%: 6 x (non-embedding
    # params, output head included) + 12 * heads * head_dim * (window, or the full sequence) per layer
    # per token -- the full window, not the causal half, so it reads higher than the harness's count.
    n_head = args.dim // args.head_dim
    n_ve = sum(1 for i in range(args.depth) if i % 2 == (args.depth - 1) % 2)
    nparams = 12 * args.dim**2 * args.depth + args.dim * args.vocab + min(32, args.dim) * n_head * n_ve
    pattern = [args.window_pattern[i % len(args.window_pattern)] for i in range(args.depth)]
    pattern[-1] = "L"
    eff = [args.seq_len // 2 if p == "S" else args.seq_len for p in pattern]
    orig_fpt = 6 * nparams + sum(12 * n_head * args.head_dim * e for e in eff)
    out["original_way"] = dict(flops_per_token=orig_fpt, peak_flops=r.get("peak_flops"),
                               mfu_percent=(100 * (r.get("tokens_per_second") or 0) * orig_fpt / r["peak_flops"]) if r.get("peak_flops") else None)
    line = json.dumps(out)
    print(line)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
