"""The torch backend, shared by cpu, cuda and mps; those subclasses only change device services.

Attention: full-causal layers use SDPA's fused causal kernel everywhere. Sliding-window layers
use flex_attention with a block-sparse mask where the plan says so (CUDA), otherwise SDPA with a
cached boolean mask (dense, but correct on every device)."""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from autoresearch_portable.backends.base import Backend, attended_pairs
from autoresearch_portable.detect.plan import Plan

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def window_mask(seq_len: int, window: int | None, device: Any = "cpu") -> torch.Tensor:
    """Boolean (T, T) mask, True where query i may attend key j: 0 <= i - j <= window."""
    i = torch.arange(seq_len, device=device)[:, None]
    j = torch.arange(seq_len, device=device)[None, :]
    d = i - j
    allowed = d >= 0
    if window is not None:
        allowed &= d <= window
    return allowed


class TorchBackend(Backend):
    def __init__(self, plan: Plan):
        self.plan = plan
        self.name = plan.backend
        self.device = torch.device(plan.device)
        self.dtype = DTYPES[plan.dtype]
        self._masks: dict[tuple[int, int], torch.Tensor] = {}
        self._block_masks: dict[tuple[int, int], Any] = {}
        self._flex: Callable | None = None
        # While the harness counts FLOPs it sets this list; attention calls append their
        # (query, key) pair counts so attention FLOPs are counted the same way on every kernel.
        self.attention_log: list[tuple[int, int, int]] | None = None

    # --- kernels ---------------------------------------------------------------------------
    def attention(self, q, k, v, window):
        B, H, T, D = q.shape
        if self.attention_log is not None:
            # FLOP counting pass: log the pairs, skip the kernel (its ops would be miscounted);
            # the output keeps shape and autograd links, so everything downstream is counted
            self.attention_log.append((B * H, D, attended_pairs(T, window)))
            return v + 0 * (q + k)
        if window is None or window >= T - 1:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        if self.plan.attention == "flex":
            return self._flex_attention(q, k, v, window)
        key = (T, window)
        mask = self._masks.get(key)
        if mask is None:
            mask = self._masks[key] = window_mask(T, window, self.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def _flex_attention(self, q, k, v, window):
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        T = q.size(-2)
        key = (T, window)
        block_mask = self._block_masks.get(key)
        if block_mask is None:
            def sliding_causal(b, h, qi, ki):
                return (qi >= ki) & (qi - ki <= window)

            block_mask = create_block_mask(sliding_causal, None, None, T, T, device=self.device)
            self._block_masks[key] = block_mask
        if self._flex is None:
            # flex_attention is only fast compiled; eager it materialises the scores.
            self._flex = torch.compile(flex_attention, dynamic=False) if self.plan.compile else flex_attention
        return self._flex(q, k, v, block_mask=block_mask)

    def rms_norm(self, x):
        return F.rms_norm(x, (x.size(-1),))

    def autocast(self):
        if self.plan.dtype_mode == "autocast":
            return torch.autocast(device_type=self.device.type, dtype=self.dtype)
        return contextlib.nullcontext()

    def compile(self, fn):
        return torch.compile(fn, dynamic=False) if self.plan.compile else fn

    def grad_scaler(self):
        """A GradScaler when the plan computes in float16 (no bf16 on this GPU), else None."""
        return torch.amp.GradScaler(self.device.type) if self.plan.grad_scaler else None

    # --- device services -------------------------------------------------------------------
    def synchronize(self):
        pass

    def reset_peak_memory(self):
        pass

    def peak_memory_bytes(self) -> int:
        return _peak_rss_bytes()

    def to_device(self, rows: np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(rows)).to(torch.long)
        if self.plan.pin_memory:
            t = t.pin_memory()
        t = t.to(self.device, non_blocking=self.plan.pin_memory)
        return t[:, :-1], t[:, 1:]

    # --- harness services ------------------------------------------------------------------
    @torch.no_grad()
    def forward_logits(self, model, inputs: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(inputs)).to(torch.long).to(self.device)
        with self.autocast():
            logits = model(x)
        return logits.float().cpu().numpy()

    @torch.no_grad()
    def row_losses(self, model, rows, token_bytes, max_logit_bytes):
        tb = torch.as_tensor(token_bytes, dtype=torch.long, device=self.device)
        B, T1 = rows.shape
        nats = np.zeros(B, dtype=np.float64)
        nbytes = np.zeros(B, dtype=np.int64)
        vocab = int(tb.numel())
        # rows per chunk so the float32 logits of one chunk stay under the bound
        per_chunk = max(1, int(max_logit_bytes // ((T1 - 1) * vocab * 4)))
        for s in range(0, B, per_chunk):
            x, y = self.to_device(rows[s : s + per_chunk])
            with self.autocast():
                logits = model(x)
            loss = F.cross_entropy(
                logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none"
            ).view_as(y)
            yb = tb[y]
            loss = torch.where(yb > 0, loss, torch.zeros_like(loss))
            nats[s : s + per_chunk] = loss.sum(1).double().cpu().numpy()
            nbytes[s : s + per_chunk] = yb.sum(1).cpu().numpy()
        return nats, nbytes

    def matmul_flops(self, n: int, dtype: str) -> float:
        dt = DTYPES[dtype]
        a = torch.randn(n, n, device=self.device, dtype=dt)
        b = torch.randn(n, n, device=self.device, dtype=dt)
        for _ in range(2):  # warm-up: thread pools, kernel selection
            a @ b
        self.synchronize()
        reps, elapsed = 0, 0.0
        t0 = time.perf_counter()
        while elapsed < 0.15 or reps < 3:
            a @ b
            reps += 1
            self.synchronize()
            elapsed = time.perf_counter() - t0
        return 2 * n**3 * reps / elapsed


def _peak_rss_bytes() -> int:
    """Peak resident memory of this process (the CPU's 'peak memory'; never 0)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS: bytes, Linux: KiB
