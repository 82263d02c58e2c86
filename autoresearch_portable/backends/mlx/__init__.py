"""The MLX backend: Apple Silicon through Metal, or mlx's CPU device elsewhere (Linux CI).

The model and optimizer live in `train_template_mlx.py` (agent-editable, like the torch
template); this module provides the kernels and device services it gets through `K = rt.backend`,
plus the harness services (evaluation from logits in chunks, FLOP counting in flops.py).

* attention: `mx.fast.scaled_dot_product_attention`, causal; sliding-window layers add a boolean
  mask cached per (seq_len, window). Window w = the query itself and the w keys before it, the
  one convention of this project (`base.attended_pairs`, `torch_common.window_mask`).
* rms_norm: `mx.fast.rms_norm` without a gain, eps as torch's default for fp32 inputs.
* dtype: explicit. mlx has no autocast; the template keeps fp32 master weights and casts them
  and the activations to the plan's compute dtype, so `autocast()` is a null context.
* compile: `mx.compile` when the plan says so, else the function itself. mlx compiles pure
  functions; a step that reads or writes model/optimizer arrays passes them as `inputs`/`outputs`.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten, tree_map

from autoresearch_portable.backends.base import Backend, peak_rss_bytes
from autoresearch_portable.backends.mlx import flops
from autoresearch_portable.detect.plan import Plan

DTYPES = {"bfloat16": mx.bfloat16, "float16": mx.float16, "float32": mx.float32}

# torch's F.rms_norm default eps for fp32 (torch.finfo(torch.float32).eps). mx.fast.rms_norm
# accumulates in fp32 whatever the input dtype, so the same eps serves bf16 inputs.
RMS_EPS = float(np.finfo(np.float32).eps)


def window_mask(seq_len: int, window: int | None) -> mx.array:
    """Boolean (T, T) mask, True where query i may attend key j: 0 <= i - j <= window."""
    i = mx.arange(seq_len)[:, None]
    j = mx.arange(seq_len)[None, :]
    d = i - j
    allowed = d >= 0
    if window is not None:
        allowed = allowed & (d <= window)
    return allowed


class MLXBackend(Backend):
    def __init__(self, plan: Plan):
        self.plan = plan
        self.name = "mlx"
        self.device = mx.gpu if plan.device == "gpu" else mx.cpu
        mx.set_default_device(self.device)
        self.dtype = DTYPES[plan.dtype]
        self._masks: dict[tuple[int, int | None], mx.array] = {}

    # --- kernels ---------------------------------------------------------------------------
    def attention(self, q, k, v, window):
        T, D = q.shape[-2], q.shape[-1]
        if window is None or window >= T - 1:  # the window covers the whole sequence: plain causal
            return mx.fast.scaled_dot_product_attention(q, k, v, scale=D**-0.5, mask="causal")
        mask = self._masks.get((T, window))
        if mask is None:
            mask = self._masks[(T, window)] = window_mask(T, window)
            mx.eval(mask)
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=D**-0.5, mask=mask)

    def rms_norm(self, x):
        return mx.fast.rms_norm(x, None, RMS_EPS)

    def rotary(self, x, base: float):
        """Rotary embedding of (B, H, T, D), rotating the two halves of each head's channels the
        way the torch template does: (x1*cos + x2*sin, x2*cos - x1*sin). mx.fast.rope rotates by
        +angle (x1*cos - x2*sin, ...); scale=-1 negates the positions, hence the angles."""
        return mx.fast.rope(x, x.shape[-1], traditional=False, base=base, scale=-1.0, offset=0)

    def autocast(self):
        return contextlib.nullcontext()  # dtype is explicit on mlx

    def compile(self, fn, inputs=None, outputs=None):
        """mx.compile(fn) if the plan compiles. A function that reads model or optimizer arrays
        must name them in `inputs` (and in `outputs` if it writes them): mlx compiles pure
        functions and would otherwise freeze them as constants."""
        if not self.plan.compile:
            return fn
        kw = {}
        if inputs is not None:
            kw["inputs"] = inputs
        if outputs is not None:
            kw["outputs"] = outputs
        return mx.compile(fn, **kw)

    def grad_scaler(self):
        return None  # bf16 or fp32 only: no loss scaling

    # --- device services -------------------------------------------------------------------
    def synchronize(self):
        mx.synchronize()

    def reset_peak_memory(self):
        mx.reset_peak_memory()

    def peak_memory_bytes(self) -> int:
        peak = int(mx.get_peak_memory())
        if peak == 0 and self.plan.device == "cpu":
            return peak_rss_bytes()
        return peak

    def to_device(self, rows: np.ndarray):
        t = mx.array(np.ascontiguousarray(rows).astype(np.int32, copy=False))
        return t[:, :-1], t[:, 1:]

    # --- harness services ------------------------------------------------------------------
    def forward_logits(self, model, inputs: np.ndarray) -> np.ndarray:
        x = mx.array(np.ascontiguousarray(inputs).astype(np.int32, copy=False))
        logits = model(x).astype(mx.float32)
        return np.array(logits)

    def score_rows(self, model, rows, token_bytes, max_logit_bytes, perturbed=None, cuts=None):
        tb = mx.array(np.asarray(token_bytes).astype(np.int32))
        B, T1 = rows.shape
        T, vocab = T1 - 1, int(tb.size)
        nats = np.zeros(B, dtype=np.float64)
        nbytes = np.zeros(B, dtype=np.int64)
        change = None if perturbed is None else np.zeros(B, dtype=np.float64)
        buffers = 1 if perturbed is None else 2  # a chunk's logits are kept while its copies' are made
        # rows per chunk so the float32 logits alive at once stay under the bound; each chunk is
        # evaluated before the next is built, so only one chunk's logits exist at a time
        per_chunk = max(1, int(max_logit_bytes // (buffers * T * vocab * 4)))
        for s in range(0, B, per_chunk):
            x, y = self.to_device(rows[s : s + per_chunk])
            n = x.shape[0]
            own = self._logits(model, x, T, vocab)
            loss = mx.logsumexp(own, axis=-1) - mx.take_along_axis(own, y[..., None], axis=-1)[..., 0]
            yb = tb[y]
            loss = mx.where(yb > 0, loss, 0.0)
            out = [loss.sum(axis=1), yb.sum(axis=1)]
            if perturbed is not None:
                # the copies in a pass of their own (the row is not in it), evaluated in the same
                # graph as the rows' pass: mlx is lazy, nothing runs before mx.eval below
                copy = self._logits(model, mx.array(np.ascontiguousarray(perturbed[s : s + n]).astype(np.int32)), T, vocab)
                before = mx.arange(T)[None, :] < mx.array(np.asarray(cuts[s : s + n]).astype(np.int32))[:, None]
                moved = mx.where(before, mx.abs(own - copy).max(axis=-1), 0.0).max(axis=-1)
                size = mx.where(before, mx.abs(own).max(axis=-1), 0.0).max(axis=-1)
                out.append(moved / (1 + size))
            mx.eval(*out)
            nats[s : s + n] = np.array(out[0]).astype(np.float64)
            nbytes[s : s + n] = np.array(out[1]).astype(np.int64)
            if perturbed is not None:
                change[s : s + n] = np.array(out[2]).astype(np.float64)
            del own, loss, out
        return nats, nbytes, change

    def _logits(self, model, x, T: int, vocab: int):
        logits = model(x).astype(mx.float32)
        if tuple(logits.shape) != (x.shape[0], T, vocab):
            raise ValueError(f"the model returned logits of shape {tuple(logits.shape)}, expected {(x.shape[0], T, vocab)}")
        return logits

    # --- hand-over -------------------------------------------------------------------------
    def export_model(self, model, folder, seq_len, rows):
        """mx.export_function traces the forward with the weights as inputs (they would be frozen
        in as constants otherwise), for a fixed batch of `rows` rows; the weights go to a
        safetensors file beside it."""
        folder = Path(folder)
        model.eval()
        params = model.parameters()
        flat = tree_flatten(params)

        def forward(x, *weights):
            # the weights back into the model's own structure, leaf by leaf in flatten order
            # (rebuilding it from dotted names would turn a dict of modules keyed "1", "3" into a list)
            leaves = iter(weights)
            model.update(tree_map(lambda _: next(leaves), params))
            return model(x).astype(mx.float32)

        x = mx.zeros((rows, seq_len), dtype=mx.int32)
        masks = dict(self._masks)
        try:
            mx.export_function(str(folder / "model.mlxfn"), forward, x, *[v for _, v in flat])
        finally:
            model.update(params)  # tracing left placeholders in the model
            self._masks = masks
        mx.save_safetensors(str(folder / "weights.safetensors"), {f"w{i}": v for i, (_, v) in enumerate(flat)})
        info = dict(format="mlx.export_function", batch=rows, weights=len(flat))
        (folder / "model.json").write_text(json.dumps(info))
        return info

    def load_model(self, folder):
        folder = Path(folder)
        info = json.loads((folder / "model.json").read_text())
        fn = mx.import_function(str(folder / "model.mlxfn"))
        stored = mx.load(str(folder / "weights.safetensors"))
        weights = [stored[f"w{i}"] for i in range(int(info["weights"]))]
        return _Exported(fn, weights, int(info["batch"]))

    def train_flops_per_token(self, model, seq_len: int, vocab_size: int) -> dict:
        return flops.train_flops_per_token(model, seq_len)

    def graph_params(self, model) -> int:
        # the weights file holds model.parameters() flattened, what count_params counts
        return int(sum(w.size for w in model.weights))

    def graph_matmul_flops_per_token(self, model, seq_len: int, vocab_size: int) -> float | None:
        # Not countable: an imported function is opaque. mlx has no FLOP counter, flops.py counts
        # a live model from its modules' shapes (the exported function has none), and the only
        # view into the function's graph, mx.export_to_dot, names its primitives without their
        # shapes. So on mlx the evaluator checks the handed-over parameters only.
        return None

    def graph_writes(self, model) -> list[str]:
        return []  # mx.export_function exports a pure function: the weights are inputs, never state

    def count_params(self, model) -> int:
        return int(sum(v.size for _, v in tree_flatten(model.parameters())))

    def matmul_flops(self, n: int, dtype: str) -> float:
        dt = DTYPES[dtype]
        a = mx.random.normal((n, n)).astype(dt)
        b = mx.random.normal((n, n)).astype(dt)
        mx.eval(a, b)
        mx.eval(a @ b)  # warm-up: kernel selection (Metal), thread pools
        reps, elapsed = 0, 0.0
        t0 = time.perf_counter()
        while elapsed < 0.15 or reps < 3:
            mx.eval(a @ b)
            reps += 1
            elapsed = time.perf_counter() - t0
        return 2 * n**3 * reps / elapsed


class _Exported:
    """An imported mlx function and its weights as a model: (B, T) ids -> float32 logits, the
    input split and padded to the traced batch (the evaluator passes whole multiples of it: see
    Backend.load_model)."""

    def __init__(self, fn, weights: list, static_batch: int):
        self.fn, self.weights, self.static_batch = fn, weights, static_batch

    def __call__(self, x):
        outs = []
        for s in range(0, x.shape[0], self.static_batch):
            part = x[s : s + self.static_batch]
            pad = self.static_batch - part.shape[0]
            if pad:
                part = mx.concatenate([part, mx.repeat(part[:1], pad, axis=0)])
            outs.append(self.fn(part, *self.weights)[0][: self.static_batch - pad])
        return mx.concatenate(outs) if len(outs) > 1 else outs[0]

    def parameters(self):
        return {f"w{i}": w for i, w in enumerate(self.weights)}


__all__ = ["MLXBackend", "window_mask", "DTYPES", "RMS_EPS"]
