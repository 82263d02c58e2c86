"""The one interface every backend implements. train.py gets its kernels from here, and the
harness counts, evaluates and hands over through it, so neither needs to know which hardware it
runs on (the harness never asks which backend it has)."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from typing import Any, Callable

import numpy as np

from autoresearch_portable.detect.plan import Plan


def attended_pairs(seq_len: int, window: int | None) -> int:
    """(query, key) pairs a causal attention with this window computes for one sequence.

    The convention everywhere in this project: window w lets position i attend to keys
    i-w .. i, that is w+1 keys including itself (FlashAttention's (w, 0)). None = full causal."""
    if window is None or window >= seq_len - 1:
        return seq_len * (seq_len + 1) // 2
    w = window
    # the first w+1 queries see 1..w+1 keys, the rest see w+1 each
    return (w + 1) * (w + 2) // 2 + (seq_len - w - 1) * (w + 1)


def peak_rss_bytes() -> int:
    """Peak resident memory of this process (a CPU's 'peak memory'; never 0)."""
    import resource  # POSIX only; a backend on Windows reports its own statistics

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS: bytes, Linux: KiB


def attention_flops(batch_heads: int, head_dim: int, pairs: float) -> float:
    """Training FLOPs of attention over `pairs` (query, key) pairs per sequence and head: 4 per
    pair and channel forward (QK^T and PV, 2 each), twice that backward. Counted from the pairs
    the mask allows, not from what a kernel computes (a dense mask computes every pair, a
    block-sparse kernel skips most of a window), so every backend counts alike."""
    return 3 * 4 * batch_heads * head_dim * pairs


def causal_pairs(queries: int, keys: int) -> int:
    """(query, key) pairs of a causal mask over `queries` x `keys` (query i sees keys 0..i)."""
    if keys >= queries:
        return queries * (queries + 1) // 2
    return keys * (keys + 1) // 2 + (queries - keys) * keys


class Backend:
    """What a backend provides. Tensors are the backend's own (torch or mlx arrays)."""

    name: str
    plan: Plan
    device: Any  # where the model and batches live (torch.device, mx.Device)
    dtype: Any  # the plan's compute dtype (torch.dtype, mx.Dtype)

    # --- kernels for the model -------------------------------------------------------------
    def attention(self, q: Any, k: Any, v: Any, window: int | None) -> Any:
        """Causal attention. q, k, v: (batch, heads, seq, head_dim). window as attended_pairs."""
        raise NotImplementedError

    def rms_norm(self, x: Any) -> Any:
        """RMS norm over the last axis, without a learnable gain."""
        raise NotImplementedError

    def rotary(self, x: Any, base: float) -> Any:
        """Rotary embedding of (batch, heads, seq, head_dim): the two halves (x1, x2) of each
        head's channels become (x1*cos + x2*sin, x2*cos - x1*sin), the angle of position t and
        channel pair i being t * base^(-2i/head_dim)."""
        raise NotImplementedError

    def autocast(self) -> AbstractContextManager:
        """Context for forward passes: applies the plan's compute dtype where that is autocast."""
        raise NotImplementedError

    def compile(self, fn: Callable) -> Callable:
        """Compile a model or a function (optimizer step) if the plan says it helps here.
        (MLX also takes inputs=/outputs=: the state a compiled step reads and updates.)"""
        raise NotImplementedError

    def grad_scaler(self) -> Any:
        """The loss scaler of a training step. torch: a torch.amp.GradScaler, enabled only when
        the plan computes in float16 (a pass-through otherwise, so a training loop needs no
        branch); mlx: None (it trains in bf16 or fp32, never fp16)."""
        raise NotImplementedError

    # --- device services ----------------------------------------------------------------
    def synchronize(self) -> None:
        raise NotImplementedError

    def reset_peak_memory(self) -> None:
        raise NotImplementedError

    def peak_memory_bytes(self) -> int:
        raise NotImplementedError

    def to_device(self, rows: np.ndarray) -> tuple[Any, Any]:
        """(B, T+1) int token rows -> (inputs, targets) on the device."""
        raise NotImplementedError

    # --- harness services (evaluation goes through the backend, not the model's loss) ---
    def forward_logits(self, model: Any, inputs: np.ndarray) -> np.ndarray:
        """float32 logits (B, T, V) of the model for (B, T) token ids, no grad."""
        raise NotImplementedError

    def score_rows(
        self, model: Any, rows: np.ndarray, token_bytes: np.ndarray, max_logit_bytes: int,
        perturbed: np.ndarray | None = None, cuts: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Per row of (B, T+1) tokens: summed cross-entropy in nats over targets with a byte
        length > 0 (BOS and other specials are skipped), and the summed byte lengths; logits are
        built a few rows at a time so no logits buffer exceeds max_logit_bytes. Plus the
        causality check when `perturbed` is given: perturbed[i] is row i's
        input (B, T) with every token from position cuts[i] on replaced. The copies go through the
        model in forward passes of their own, the same number of rows at a time as the rows
        (so the same kernels run), never in a pass with the row they check: a row and its copy
        share their prefix, and a model that reads a batch-mate sharing its prefix would compute
        the same logits for both. Returned per row: the largest change of any logit before the
        cut between the row's pass and its copy's, divided by (1 + the largest logit there) so the
        tolerance is relative. The model gets inputs of its own (never a view of the targets).
        A forward pass sees exactly the rows it is given: how rows are batched (which rows share
        a pass, and that scoring does not depend on it) is the harness's (harness/score/passes.py)."""
        raise NotImplementedError

    # --- hand-over: the trained model leaves train.py's process as a graph + weights ---------
    def export_model(self, model: Any, folder: str, seq_len: int, rows: int) -> dict:
        """Write `model`'s forward (token ids (rows, seq_len) -> float32 logits) into `folder` in
        a form that runs without train.py's Python: torch.export on torch, mx.export_function on
        mlx, traced for a fixed batch of `rows` rows (the evaluator's pass size). Returns a small
        description (format, batch)."""
        raise NotImplementedError

    @staticmethod
    def warm_up() -> None:
        """Import what load_model will need, touching no device: the evaluator calls it on the
        class while the run trains (a GPU context then would take memory from the training)."""

    def load_model(self, folder: str) -> Callable:
        """The exported model from `folder` as a callable that score_rows and forward_logits
        accept in place of the model. Its attribute `static_batch` is the number of rows the
        graph was traced for: it is padded to that, so the harness passes multiples of it
        (harness/score/passes.py) and no row shares a pass with padding made of its own copies."""
        raise NotImplementedError

    # --- the handed-over graph, as the evaluator sees it (what rt.start counted must match) ---
    def graph_params(self, model: Any) -> int:
        """How many numbers the parameters of a loaded graph (load_model) hold, each stored
        tensor counted once (a weight tied to another is one weight, as count_params sees it on
        the live model; buffers and constants, e.g. rotary tables, are not parameters)."""
        raise NotImplementedError

    def graph_matmul_flops_per_token(self, model: Any, seq_len: int, vocab_size: int) -> float | None:
        """Forward matmul FLOPs per token of a loaded graph on full-length rows, attention left
        out (it is counted from masks, not kernels: see train_flops_per_token). None where the
        backend cannot count the graph's operations."""
        raise NotImplementedError

    def graph_writes(self, model: Any) -> list[str]:
        """What a loaded graph writes when it runs (its own parameters or buffers, its input):
        a graph with state could carry what it saw in one forward pass into the next, so rows
        would not be scored independently. Empty for a pure function."""
        raise NotImplementedError

    def matmul_flops(self, n: int, dtype: str) -> float:
        """Measured dense matmul rate (FLOP/s) for an n x n matmul in `dtype` on this device."""
        raise NotImplementedError

    # --- counting (the harness's budget and MFU come from these, never from train.py) --------
    def train_flops_per_token(self, model: Any, seq_len: int, vocab_size: int) -> dict:
        """Training FLOPs (forward + backward) per token of `model` on full-length rows:
        {flops_per_token, matmul_flops_per_token, attention_flops_per_token}. Attention is
        counted with attention_flops from the pairs its mask allows, whether train.py calls it
        through `attention` above or calls the framework's scaled-dot-product attention itself."""
        raise NotImplementedError

    def count_params(self, model: Any) -> int:
        """How many numbers the model's parameters hold."""
        raise NotImplementedError
