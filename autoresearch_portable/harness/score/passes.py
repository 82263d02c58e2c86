"""Scoring: val_bpb from a model's logits (never from a loss the model reports), with its
standard error, the causality check on the scored rows and the entropy-floor check. Pure
decisions here; the evaluator process (harness/score/evaluator.py) feeds them."""

from __future__ import annotations

import math
import time

import numpy as np

from autoresearch_portable.harness.score.evalset import perturbed_copies

# A logits buffer never grows beyond this, whatever the vocab and batch (a 24 GB Mac once died
# building one 16 GiB buffer for the final eval).
MAX_LOGIT_BYTES = 256 * 2**20
MAX_BATCH_ROWS = 64  # rows in one pass at most, whatever the run's batch


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
    A row and its copy go through forward passes of the same size (the same kernels), so a causal
    model computes their common prefix identically (in practice bit for bit); the tolerance only
    absorbs kernels that are not batch-invariant. It is tight on purpose: a briefly trained model
    that peeks moves earlier logits only a little."""
    return 1e-5 if dtype == "float32" else 1e-3


def batch_tolerance(dtype: str) -> float:
    """How far a row's summed loss may move, relative to (1 + that loss), when the row is scored
    again among other rows. Every pass holds the same number of rows, so a model that computes
    each row on its own gets the same result bit for bit in practice (as for causality_tolerance);
    1e-3 in half precision leaves a model at most that fraction of its loss to gain from
    batch-mates, far below the noise of val_bpb."""
    return causality_tolerance(dtype)


def rows_per_pass(batch_rows: int | None, n: int, seq_len: int, vocab: int, static_batch: int | None = None) -> int:
    """Rows in every forward pass of an evaluation of n rows: the run's batch (8 if it reported
    none, at most MAX_BATCH_ROWS), no more than the logits bound allows with two passes' logits
    alive (a chunk's and its copies'), a whole multiple of a graph's fixed batch (that many rows
    run however few are given). train.py's process traces its graph for this many rows
    (Runtime.finish), so that nothing is padded or cut."""
    fit = max(1, MAX_LOGIT_BYTES // (2 * seq_len * vocab * 4))
    b = max(1, min(MAX_BATCH_ROWS, int(batch_rows or 8), fit, n))
    if static_batch:
        b = -(-b // static_batch) * static_batch
    return b


def arrangements(n: int, b: int, rng: np.random.Generator, tries: int = 8
                 ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Two ways to put n rows into passes of at most b rows: (first, second, differ). First: in
    order. Second: shuffled into at least two passes, the shuffle of `tries` whose rows most often
    have other batch-mates than in the first; differ[i]: row i's batch-mates are not the same
    rows in both (only those rows say anything about batch dependence). No second arrangement
    where no row can have batch-mates (one row, or one row per pass)."""
    first = [np.arange(s, min(s + b, n)) for s in range(0, n, b)]
    if n < 2 or b < 2:
        return first, [], np.zeros(n, dtype=bool)
    best: tuple[list[np.ndarray], np.ndarray] | None = None
    for _ in range(tries):
        second = np.array_split(rng.permutation(n), max(2, len(first)))  # each part <= b rows
        differ = _mates_differ(first, second, n)
        if best is None or differ.sum() > best[1].sum():
            best = (second, differ)
        if differ.all():
            break
    return first, best[0], best[1]


def _mates_differ(first: list[np.ndarray], second: list[np.ndarray], n: int) -> np.ndarray:
    where = np.empty((2, n), dtype=np.int64)
    sets = []
    for k, parts in enumerate((first, second)):
        sets.append([frozenset(p.tolist()) for p in parts])
        for g, p in enumerate(parts):
            where[k, p] = g
    return np.array([sets[0][where[0, i]] != sets[1][where[1, i]] for i in range(n)], dtype=bool)


def batch_changes(nats: np.ndarray, again: np.ndarray) -> np.ndarray:
    """Per row: how far its summed loss moved between two arrangements, relative to (1 + it)."""
    return np.abs(nats - again) / (1 + np.abs(nats))


def score(backend, model, rows: np.ndarray, token_bytes: np.ndarray, batch_rows: int,
          rng: np.random.Generator | None = None, causality: bool = False, batch_check: bool = False) -> dict:
    """Per-row nats and bytes, rows_per_pass rows at a time. Every forward pass holds that many
    rows: a short one is filled with rows of random tokens from `rng` (never copies of a row in
    it, which would share its prefix), whose results are dropped.

    causality: every pass of rows is followed by a pass of their perturbed copies (evalset.py),
    with one cut for the whole pass and the same filler rows, so before the cut the two passes
    are the same input and any difference there is a look at later tokens; `change` per row.
    batch_check: every row is scored again in a second arrangement (arrangements); `batch_change`
    per row whose batch-mates differ. Each check sees only what it is about: a model that mixes
    rows but never looks ahead passes the first and fails the second.

    Cost: one pass per row, one more for the copies, one more for the second arrangement
    (harness/run/budget.py eval_rows counts three)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng() if rng is None else rng
    n, T1 = rows.shape
    vocab = len(token_bytes)
    b = rows_per_pass(batch_rows, n, T1 - 1, vocab, getattr(model, "static_batch", None))
    limit = max(MAX_LOGIT_BYTES, 2 * b * (T1 - 1) * vocab * 4)  # one call is one pass of b rows
    if batch_check:
        first, second, differ = arrangements(n, b, rng)
    else:
        first, second, differ = [np.arange(s, min(s + b, n)) for s in range(0, n, b)], [], None
    copies = cuts = change = None
    if causality:
        cuts = np.zeros(n, dtype=np.int64)
        for idx in first:
            cuts[idx] = rng.integers(1, T1 - 1)  # uniform over 1..T-1, unpredictable, one per pass
        copies, cuts = perturbed_copies(rows, rng, cuts)
        change = np.zeros(n)
    nats, nbytes = np.zeros(n), np.zeros(n, dtype=np.int64)
    for idx in first:
        k = len(idx)
        x = _filled(rows[idx], b, vocab, rng)
        p = c = None
        if causality:
            p, c = np.concatenate([copies[idx], x[k:, :-1]]), np.full(b, cuts[idx[0]])
        a, nb, ch = backend.score_rows(model, x, token_bytes, limit, p, c)
        nats[idx], nbytes[idx] = a[:k], nb[:k]
        if causality:
            change[idx] = ch[:k]
    batch_change = None
    if batch_check:
        again = nats.copy()
        for idx in second:
            again[idx] = backend.score_rows(model, _filled(rows[idx], b, vocab, rng), token_bytes, limit)[0][: len(idx)]
        batch_change = batch_changes(nats[differ], again[differ])
    return dict(nats=nats, nbytes=nbytes, change=change, batch_change=batch_change, rows_per_pass=b,
                seconds=time.perf_counter() - t0)


def _filled(rows: np.ndarray, b: int, vocab: int, rng: np.random.Generator) -> np.ndarray:
    if len(rows) == b:
        return rows
    return np.concatenate([rows, rng.integers(0, vocab, size=(b - len(rows), rows.shape[1])).astype(rows.dtype)])


def judge(nats: np.ndarray, nbytes: np.ndarray, change: np.ndarray | None, tolerance: float,
          floor_bits: np.ndarray | None = None, floor_bytes: int = 0,
          batch_change: np.ndarray | None = None, batch_tol: float | None = None) -> dict:
    """The evaluator's verdict on scored rows: status (ok, diverged, invalid), reason, metrics.
    change: causality per row (score); batch_change: per row scored in two arrangements."""
    out: dict = dict(eval_rows=int(len(nats)), eval_bytes=int(nbytes.sum()))
    extra = [a for a in (change, batch_change) if a is not None]
    if not np.all(np.isfinite(nats)) or not all(np.all(np.isfinite(a)) for a in extra):
        return dict(out, status="diverged", reason="the model's logits are not finite (NaN or Inf) at evaluation")
    bpb, se = bpb_from_rows(nats, nbytes)
    out.update(val_bpb=bpb, val_bpb_stderr=se)
    if change is not None:
        bad = np.flatnonzero(change > tolerance)
        out["causality"] = dict(rows_checked=int(len(change)), rows_failed=int(len(bad)),
                                max_change=float(change.max()) if len(change) else 0.0, tolerance=tolerance)
        if len(bad):
            return rejected(out, (
                f"model looks at later tokens: in {len(bad)} of {len(change)} scored rows, logits before a "
                f"random cut moved (up to {float(change.max()):.3g}, tolerance {tolerance:.0e}) when only "
                f"tokens after the cut changed"))
    if batch_change is not None:
        tol = tolerance if batch_tol is None else batch_tol
        bad = np.flatnonzero(batch_change > tol)
        top = float(batch_change.max()) if len(batch_change) else 0.0
        out["batch_check"] = dict(rows_checked=int(len(batch_change)), rows_failed=int(len(bad)), max_change=top,
                                  tolerance=tol)
        if len(bad):
            return rejected(out, (
                f"the model's output for a row depends on the other rows of its batch: in {len(bad)} of "
                f"{len(batch_change)} rows scored again among other rows, the loss moved (up to {top:.3g} "
                f"relative, tolerance {tol:.0e}); a score must not depend on how rows are batched"))
    if floor_bits is not None:
        floor = float(floor_bits.sum()) / floor_bytes
        excess, excess_se = bpb_from_rows(nats - floor_bits * math.log(2), nbytes)
        out.update(floor_bpb=floor, excess_bpb=excess, excess_stderr=excess_se)
        if bpb < floor:
            return rejected(out, (
                f"below the entropy floor: val_bpb {bpb:.4f} < {floor:.4f}, the information content of the "
                f"scored text; no model can do that, so the score cannot be real"))
    return dict(out, status="ok")


# How far 3 x the graph's forward matmul FLOPs may exceed what rt.start counted. rt.start counts
# forward + backward of the live model, and a matmul's backward costs twice its forward when its
# input and its weight both need gradients: true of every matmul of the template, whose counts
# agree exactly (tests/test_evaluator_checks.py). A matmul whose input needs no gradient (say a
# projection of a fixed buffer) or whose weight is frozen skips part of its backward, so 3 x its
# forward exceeds what was counted for it; 5% leaves room for small ones of those, while a
# handed-over model with one more layer in ~20 (or a block run twice) is caught.
FLOP_SLACK = 0.05


def graph_problem(writes: list[str], counted: dict | None, graph_params: int, graph_flops: float | None) -> str | None:
    """Why the handed-over graph is not what the run counted or cannot be scored row by row, or
    None. `counted`: what rt.start(model) counted in train.py's process ({num_params,
    matmul_flops_per_token}; the budget and MFU were counted from it); graph_*: the evaluator's
    own counts of the graph (graph_flops: forward matmul FLOPs per token, None if uncountable)."""
    if writes:
        return (f"the handed-over graph writes to its own state when it runs ({', '.join(writes[:3])}): what it "
                f"saw in one forward pass could change the next, so rows would not be scored independently")
    counted = counted or {}
    n = counted.get("num_params")
    if n is not None and int(n) != int(graph_params):
        return (f"the handed-over model is not the one counted: its graph has {int(graph_params):,} parameters, "
                f"rt.start(model) counted {int(n):,} (the FLOPs and the budget were counted for that model)")
    f = counted.get("matmul_flops_per_token")
    if f and graph_flops is not None and 3 * graph_flops > (1 + FLOP_SLACK) * float(f):
        return (f"the handed-over model computes more than the one counted: 3 x its forward matmul FLOPs per token "
                f"is {3 * graph_flops:.4g}, rt.start(model) counted {float(f):.4g} for training (+{FLOP_SLACK:.0%} "
                f"allowed)")
    return None


def rejected(out: dict, reason: str) -> dict:
    """An invalid run has no val_bpb (a grep for it must not find a number); the number the
    model would have scored is kept under another name for diagnosis."""
    out = dict(out, status="invalid", reason=reason)
    if "val_bpb" in out:
        out["rejected_val_bpb"] = out.pop("val_bpb")
    out.pop("val_bpb_stderr", None)
    return out
