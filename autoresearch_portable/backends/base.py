"""The one interface every backend implements. train.py gets its kernels from here, and the
harness evaluates through it, so neither needs to know which hardware it runs on."""

from __future__ import annotations

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


class Backend:
    """What a backend provides. Tensors are the backend's own (torch or mlx arrays)."""

    name: str
    plan: Plan

    # --- kernels for the model -------------------------------------------------------------
    def attention(self, q: Any, k: Any, v: Any, window: int | None) -> Any:
        """Causal attention. q, k, v: (batch, heads, seq, head_dim). window as attended_pairs."""
        raise NotImplementedError

    def rms_norm(self, x: Any) -> Any:
        raise NotImplementedError

    def autocast(self) -> AbstractContextManager:
        """Context for forward passes: applies the plan's compute dtype where that is autocast."""
        raise NotImplementedError

    def compile(self, fn: Callable) -> Callable:
        """Compile a model or a function (optimizer step) if the plan says it helps here.
        (MLX also takes inputs=/outputs=: the state a compiled step reads and updates.)"""
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

    def row_losses(
        self, model: Any, rows: np.ndarray, token_bytes: np.ndarray, max_logit_bytes: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per row of (B, T+1) tokens: summed cross-entropy in nats over targets with a byte
        length > 0 (BOS and other specials are skipped), and the summed byte lengths. Logits are
        built a few rows at a time so no logits buffer exceeds max_logit_bytes."""
        nats, nbytes, _ = self.score_rows(model, rows, token_bytes, max_logit_bytes)
        return nats, nbytes

    def score_rows(
        self, model: Any, rows: np.ndarray, token_bytes: np.ndarray, max_logit_bytes: int,
        perturbed: np.ndarray | None = None, cuts: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """row_losses, plus the causality check when `perturbed` is given: perturbed[i] is row i's
        input (B, T) with every token from position cuts[i] on replaced. Each copy goes through
        the model in the same batch as its row, so a causal model computes their shared prefix
        identically; returned per row: the largest change of any logit before the cut, divided
        by (1 + the largest logit there) so the tolerance is relative."""
        raise NotImplementedError

    # --- hand-over: the trained model leaves train.py's process as a graph + weights ---------
    def export_model(self, model: Any, folder: str, seq_len: int) -> dict:
        """Write `model`'s forward (token ids (B, seq_len) -> float32 logits) into `folder` in a
        form that runs without train.py's Python: torch.export on torch, mx.export_function on
        mlx. Returns a small description (format, static batch or None)."""
        raise NotImplementedError

    def load_model(self, folder: str) -> Callable:
        """The exported model from `folder` as a callable that score_rows and forward_logits
        accept in place of the model."""
        raise NotImplementedError

    def matmul_flops(self, n: int, dtype: str) -> float:
        """Measured dense matmul rate (FLOP/s) for an n x n matmul in `dtype` on this device."""
        raise NotImplementedError
