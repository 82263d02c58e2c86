"""Time training steps of the MLX template with synthetic tokens: mx.compile on and off.

    python -m autoresearch_portable.backends.mlx.bench --depth 2 --dim 128 --batch 4 --seq 256

Each configuration loads the template's definitions (backends.mlx.templates), builds the model
and optimizers, runs warm-up steps (compilation happens there) and then times full optimizer
steps (forward, backward, Muon + AdamW) with mx.eval at the end of each."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import mlx.core as mx
import numpy as np

from autoresearch_portable.backends.mlx import MLXBackend
from autoresearch_portable.backends.mlx.templates import load_template
from autoresearch_portable.detect.plan import Plan

TEMPLATE = Path(__file__).resolve().parents[3] / "train_template_mlx.py"


def time_steps(compile_: bool, device: str, dtype: str, depth: int, dim: int, head_dim: int, batch: int,
               seq: int, vocab: int, steps: int, warmup: int, template: Path = TEMPLATE) -> dict:
    plan = Plan(backend="mlx", device=device, dtype=dtype, dtype_mode="explicit" if dtype != "float32" else "none",
                grad_scaler=False, attention="mlx_fast", compile=compile_, pin_memory=False, peak_flops=None,
                peak_flops_source="bench")
    K = MLXBackend(plan)
    ns = load_template(template, K, seq, vocab, dict(DEPTH=depth, MODEL_DIM=dim, HEAD_DIM=head_dim))
    model = ns["GPT"](vocab, seq, depth, dim, head_dim)
    model.init_weights()
    mx.eval(model.parameters())
    opts = ns["build_optimizers"](model)
    grad_step, update_step = ns["make_steps"](model, opts)
    rng = np.random.default_rng(0)
    batches = [K.to_device(rng.integers(0, vocab, size=(batch, seq + 1))) for _ in range(4)]
    lrm = mx.array(1.0)
    times = []
    t_first = None
    for i in range(warmup + steps):
        x, y = batches[i % len(batches)]
        t0 = time.perf_counter()
        loss, grads = grad_step(x, y)
        update_step(grads, lrm)
        mx.eval(loss, model.parameters(), [o.state for o in opts])
        dt = time.perf_counter() - t0
        if i == 0:
            t_first = dt
        if i >= warmup:
            times.append(dt)
    med = float(np.median(times))
    return dict(compile=compile_, dtype=dtype, first_step_s=t_first, median_step_s=med,
                tokens_per_s=batch * seq / med, final_loss=loss.item())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="gpu" if mx.metal.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args(argv)
    for compile_ in (False, True):
        r = time_steps(compile_, a.device, a.dtype, a.depth, a.dim, a.head_dim, a.batch, a.seq, a.vocab, a.steps, a.warmup)
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
