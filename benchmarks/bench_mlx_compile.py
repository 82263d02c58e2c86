"""Time training steps of the MLX template with synthetic tokens: mx.compile off and on.

    python benchmarks/bench_mlx_compile.py --depth 2 --dim 128 --batch 4 --seq 256

Both configurations load the template's definitions (tests/template_loader.py), build the model and
optimizers and run warm-up steps (compilation happens there; on mlx's CPU device a cold compile
JIT-builds C++ kernels, cached under $TMPDIR/mlx). Then full optimizer steps (forward, backward,
Muon + AdamW, mx.eval at the end) are timed alternately, one step of each configuration in turn,
so background load on the machine hits both alike. Prints one JSON line per configuration."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np

from autoresearch_portable.backends.mlx import MLXBackend
from autoresearch_portable.detect.plan import Plan

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from template_loader import load_template  # noqa: E402

TEMPLATE = ROOT / "train_template_mlx.py"


class Trainer:
    def __init__(self, compile_: bool, device: str, dtype: str, depth: int, dim: int, head_dim: int, batch: int,
                 seq: int, vocab: int, template: Path = TEMPLATE):
        plan = Plan(backend="mlx", device=device, dtype=dtype, dtype_mode="explicit" if dtype != "float32" else "none",
                    grad_scaler=False, attention="mlx_fast", compile=compile_, pin_memory=False, peak_flops=None,
                    peak_flops_source="bench")
        self.K = MLXBackend(plan)
        ns = load_template(template, self.K, seq, vocab, dict(DEPTH=depth, MODEL_DIM=dim, HEAD_DIM=head_dim))
        self.model = ns["GPT"](vocab, seq, depth, dim, head_dim)
        self.model.init_weights()
        mx.eval(self.model.parameters())
        self.opts = ns["build_optimizers"](self.model)
        self.grad_step, self.update_step = ns["make_steps"](self.model, self.opts)
        rng = np.random.default_rng(0)
        self.batches = [self.K.to_device(rng.integers(0, vocab, size=(batch, seq + 1))) for _ in range(4)]
        self.tokens = batch * seq
        self.n = 0
        self.info = dict(compile=compile_, dtype=dtype, device=device)

    def step(self) -> float:
        x, y = self.batches[self.n % len(self.batches)]
        self.n += 1
        t0 = time.perf_counter()
        loss, grads = self.grad_step(x, y)
        self.update_step(grads, mx.array(1.0))
        mx.eval(loss, self.model.parameters(), [o.state for o in self.opts])
        self.loss = loss.item()
        return time.perf_counter() - t0


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
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args(argv)
    trainers = [Trainer(c, a.device, a.dtype, a.depth, a.dim, a.head_dim, a.batch, a.seq, a.vocab) for c in (False, True)]
    first = [[t.step() for _ in range(a.warmup)][0] for t in trainers]
    times: list[list[float]] = [[], []]
    for _ in range(a.steps):
        for i, t in enumerate(trainers):
            times[i].append(t.step())
    for t, f, ts in zip(trainers, first, times):
        med = float(np.median(ts))
        print(json.dumps(dict(**t.info, first_step_s=round(f, 3), median_step_s=round(med, 4),
                              tokens_per_s=round(t.tokens / med, 1), final_loss=round(t.loss, 4))), flush=True)


if __name__ == "__main__":
    main()
