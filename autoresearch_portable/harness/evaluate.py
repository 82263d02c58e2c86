"""Scoring: val_bpb from a model's logits (never from a loss the model reports), with its
standard error, the causality check on the scored rows and the entropy-floor check. Pure
decisions here; the evaluator process (harness/evaluator.py) feeds them."""

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


def causality_tolerance(dtype: str) -> float:
    """How far a logit before the cut may move, relative to (1 + the largest logit there).
    A row and its copy share a batch, so a causal model computes their common prefix identically
    (in practice bit for bit); the tolerance only absorbs kernels that are not batch-invariant.
    It is tight on purpose: a briefly trained model that peeks moves earlier logits only a little."""
    return 1e-5 if dtype == "float32" else 1e-3


def score(backend, model, rows: np.ndarray, token_bytes: np.ndarray, batch_rows: int,
          perturbed: np.ndarray | None = None, cuts: np.ndarray | None = None) -> dict:
    """Per-row nats, bytes and (with perturbed copies) causality ratios, batch_rows at a time."""
    t0 = time.perf_counter()
    parts = []
    for s in range(0, len(rows), batch_rows):
        sl = slice(s, s + batch_rows)
        parts.append(backend.score_rows(model, rows[sl], token_bytes, MAX_LOGIT_BYTES,
                                        None if perturbed is None else perturbed[sl],
                                        None if cuts is None else cuts[sl]))
    nats = np.concatenate([p[0] for p in parts])
    nbytes = np.concatenate([p[1] for p in parts])
    change = None if perturbed is None else np.concatenate([p[2] for p in parts])
    return dict(nats=nats, nbytes=nbytes, change=change, seconds=time.perf_counter() - t0)


def judge(nats: np.ndarray, nbytes: np.ndarray, change: np.ndarray | None, tolerance: float,
          floor_bits: np.ndarray | None = None, floor_bytes: int = 0) -> dict:
    """The evaluator's verdict on scored rows: status (ok, diverged, invalid), reason, metrics."""
    out: dict = dict(eval_rows=int(len(nats)), eval_bytes=int(nbytes.sum()))
    if not np.all(np.isfinite(nats)) or (change is not None and not np.all(np.isfinite(change))):
        return dict(out, status="diverged", reason="the model's logits are not finite (NaN or Inf) at evaluation")
    bpb, se = bpb_from_rows(nats, nbytes)
    out.update(val_bpb=bpb, val_bpb_stderr=se)
    if change is not None:
        bad = np.flatnonzero(change > tolerance)
        out["causality"] = dict(rows_checked=int(len(change)), rows_failed=int(len(bad)),
                                max_change=float(change.max()) if len(change) else 0.0, tolerance=tolerance)
        if len(bad):
            return dict(_rejected(out), status="invalid", reason=(
                f"model looks at later tokens: in {len(bad)} of {len(change)} scored rows, logits before a "
                f"random cut moved (up to {float(change.max()):.3g}, tolerance {tolerance:.0e}) when only "
                f"tokens after the cut changed"))
    if floor_bits is not None:
        floor = float(floor_bits.sum()) / floor_bytes
        excess, excess_se = bpb_from_rows(nats - floor_bits * math.log(2), nbytes)
        out.update(floor_bpb=floor, excess_bpb=excess, excess_stderr=excess_se)
        if bpb < floor:
            return dict(_rejected(out), status="invalid", reason=(
                f"below the entropy floor: val_bpb {bpb:.4f} < {floor:.4f}, the information content of the "
                f"scored text; no model can do that, so the score cannot be real"))
    return dict(out, status="ok")


def _rejected(out: dict) -> dict:
    """An invalid run has no val_bpb (a grep for it must not find a number); the number the
    model would have scored is kept under another name for diagnosis."""
    out = dict(out)
    out["rejected_val_bpb"] = out.pop("val_bpb", None)
    out.pop("val_bpb_stderr", None)
    return out
