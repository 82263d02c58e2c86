"""Evaluation integrity: val_bpb is computed here from the model's logits, never from a loss the
model reports, and only after a causality probe shows the model cannot see later tokens."""

from __future__ import annotations

import math
import time

import numpy as np

# A logits buffer never grows beyond this, whatever the vocab and batch (a 24 GB Mac once died
# building one 16 GiB buffer for the final eval).
MAX_LOGIT_BYTES = 256 * 2**20


def bpb_from_rows(nats: np.ndarray, nbytes: np.ndarray) -> tuple[float, float]:
    """Bits per byte over all rows and its standard error.

    bpb is a ratio of sums (bits / bytes); its standard error comes from the ratio estimator's
    linearisation over rows: residual_i = bits_i - bpb * bytes_i."""
    bits = nats / math.log(2)
    total_bytes = float(nbytes.sum())
    bpb = float(bits.sum() / total_bytes)
    n = len(bits)
    if n < 2:
        return bpb, float("nan")
    resid = bits - bpb * nbytes
    se = math.sqrt(float((resid**2).sum()) / (n * (n - 1))) / (total_bytes / n)
    return bpb, se


def evaluate_bpb(backend, model, val_rows: np.ndarray, token_bytes: np.ndarray, batch_rows: int) -> dict:
    """Score the rows (a prefix of the fixed validation stream) in batches of batch_rows."""
    t0 = time.perf_counter()
    nats_all, bytes_all = [], []
    for s in range(0, len(val_rows), batch_rows):
        nats, nbytes = backend.row_losses(model, val_rows[s : s + batch_rows], token_bytes, MAX_LOGIT_BYTES)
        nats_all.append(nats)
        bytes_all.append(nbytes)
    nats, nbytes = np.concatenate(nats_all), np.concatenate(bytes_all)
    bpb, se = bpb_from_rows(nats, nbytes)
    return dict(
        val_bpb=bpb,
        val_bpb_stderr=se,
        eval_rows=len(val_rows),
        eval_tokens=int(val_rows[:, 1:].size),
        eval_bytes=int(nbytes.sum()),
        eval_seconds=time.perf_counter() - t0,
    )


def causality_probe(backend, model, row: np.ndarray, vocab_size: int, seed: int = 0) -> dict:
    """Replace the second half of a sequence with random tokens and check that the logits of the
    first half do not move. A model that attends to later positions (a broken mask, a leak
    through any other path) changes them a lot: every earlier position sees the new tokens."""
    x = np.asarray(row, dtype=np.int64)[None, :]
    T = x.shape[1]
    cut = T // 2
    rng = np.random.default_rng(seed)
    changed = x.copy()
    changed[0, cut:] = rng.integers(1, vocab_size, size=T - cut)
    logits = backend.forward_logits(model, np.concatenate([x, changed]))
    before, after = logits[0, :cut], logits[1, :cut]
    diff = float(np.abs(before - after).max())
    scale = float(np.abs(before).max()) + 1.0
    # Both sequences go through the model in one batch, so a causal model computes their shared
    # prefix identically (in practice bit for bit); the tolerance only absorbs kernels that are
    # not batch-invariant. It is tight on purpose: a briefly trained model that peeks at the
    # future moves earlier logits by little, since its attention outputs start at zero.
    tol = (1e-3 if backend.plan.dtype != "float32" else 1e-5) * scale
    later = float(np.abs(logits[0, cut:] - logits[1, cut:]).max())
    return dict(causal=diff <= tol, max_earlier_change=diff, tolerance=tol, later_change=later, position=cut)
