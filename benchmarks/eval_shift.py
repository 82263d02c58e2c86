"""Does the evaluator's fresh-document evaluation measure the same quantity as the old
validation-shard evaluation? Trains the torch template briefly, then scores the same model on
(a) the first rows of the cached validation split (best-fit packed, documents cropped) and
(b) fresh generated documents packed whole (what the evaluator scores), several fresh seeds.

The spread over the fresh seeds is the evaluation noise itself (one model, only the scored text
changes): its sd is printed beside the evaluator's own standard error (root mean square over the
seeds), and beside the sd of val_bpb minus the scored text's entropy floor (known exactly for
generated text).

    python benchmarks/eval_shift.py --seconds 120 --rows 64
    python benchmarks/eval_shift.py --dataset bundled-v2 --seconds 120 --rows 67 --seeds 12 \
        --out benchmarks/measured/eval-noise-120s.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--dataset", default="bundled")
    ap.add_argument("--out", default=None, help="also write the result here")
    args = ap.parse_args()

    from autoresearch_portable import data
    from autoresearch_portable.backends import load_backend
    from autoresearch_portable.detect import make_plan, probe
    from autoresearch_portable.harness.score.evalset import eval_set
    from autoresearch_portable.harness.score.passes import bpb_from_rows, score
    from autoresearch_portable.harness.baseline.template import asset
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from template_loader import load_template

    ds = data.load(args.dataset)
    plan = make_plan(probe(), "cpu")
    K = load_backend(plan)
    ns = load_template(asset("train_template.py"), K, ds.seq_len, ds.vocab_size,
                       dict(DEPTH=args.depth, MODEL_DIM=args.dim))
    torch.manual_seed(0)
    model = ns["GPT"](ds.vocab_size, ds.seq_len, args.depth, args.dim, 64)
    model.init_weights()
    opts = ns["build_optimizers"](model)
    batches = ds.train_batches(2, seed=0)
    t0, steps = time.time(), 0
    while time.time() - t0 < args.seconds:
        x, y = K.to_device(next(batches))
        with K.autocast():
            loss = model(x, y)
        loss.backward()
        for o in opts:
            o.step()
        model.zero_grad(set_to_none=True)
        steps += 1
    out = dict(dataset=args.dataset, seconds=args.seconds, depth=args.depth, dim=args.dim, steps=steps,
               train_loss=float(loss), plan=dict(dtype=plan.dtype), rows=args.rows)
    s = score(K, model, ds.val_rows(min(args.rows, ds.max_val_rows)), ds.token_bytes, 4)
    out["val_shard"] = dict(zip(("val_bpb", "stderr"), bpb_from_rows(s["nats"], s["nbytes"])))
    out["fresh"] = []
    for seed in range(args.seeds):
        es = eval_set(ds, args.rows, seed=1000 + seed)
        s = score(K, model, es.rows, ds.token_bytes, 4)
        bpb, se = bpb_from_rows(s["nats"], s["nbytes"])
        out["fresh"].append(dict(val_bpb=bpb, stderr=se, floor_bpb=float(es.floor_bits.sum() / es.text_bytes)))
    out["spread"] = spread(out["fresh"])
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


def spread(fresh: list[dict]) -> dict | None:
    """Over fresh evaluation sets of one model: the sd of val_bpb (the evaluation noise), the
    evaluator's stderr (root mean square), and the sd of val_bpb minus the text's floor. Pure."""
    if len(fresh) < 2:
        return None
    bpb = [f["val_bpb"] for f in fresh]
    return dict(n=len(fresh), sd_val_bpb=statistics.stdev(bpb),
                rms_stderr=math.sqrt(statistics.fmean(f["stderr"] ** 2 for f in fresh)),
                sd_floor=statistics.stdev(f["floor_bpb"] for f in fresh),
                sd_above_floor=statistics.stdev(f["val_bpb"] - f["floor_bpb"] for f in fresh))


if __name__ == "__main__":
    main()
