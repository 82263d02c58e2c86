"""What the evaluator scores, and the perturbed copies that check causality on it.

* The bundled corpora (every version: data/generated.py picks the generator by the dataset's
  kind) are generated, so its scored text is generated fresh at evaluation time,
  from a seed drawn then: train.py cannot have read it, trained on it or prepared for it. Whole
  documents are packed into rows (best fit, BOS first, the rest of a row padded with BOS, whose
  targets have no bytes and are not scored), so every scored document is scored entirely and the
  entropy floor of exactly the scored text is known: the generator records the information
  content of every choice it makes.
* Other datasets have no generator: the scored rows are a prefix of the prepared validation
  stream (readable by anyone who can read the cache; the README says so).

Causality is checked on the scored rows themselves: each row gets a copy whose tokens from an
unpredictable cut on are replaced by another scored row's tokens at the same positions (real
text, so a model cannot tell the copy from a row), and the model's logits before the cut must not
move. The copies go through forward passes of their own (harness/score/passes.py score)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable

import numpy as np

from autoresearch_portable.data.generated import document_generator


@dataclass
class EvalSet:
    rows: np.ndarray                  # (n, seq_len + 1) int32 token rows
    floor_bits: np.ndarray | None     # per row: information content of its text (generated only)
    text_bytes: int                   # UTF-8 bytes of the scored text (generated), else 0
    source: str                       # how the rows were made, for the ledger


def eval_set(ds, n_rows: int, seed: int) -> EvalSet:
    """What the evaluator scores on the prepared dataset `ds`: fresh documents of stream `seed`
    where the dataset is generated, else the validation prefix."""
    kind = ds.meta.get("kind")
    generate = document_generator(kind)
    if generate is None:
        return validation_rows(ds, n_rows)
    return bundled_rows(ds.tokenizer, ds.seq_len, n_rows, seed, generate, f"{kind} corpus, fresh documents")


def bundled_rows(tokenizer, seq_len: int, n_rows: int, seed: int, generate: Callable, source: str,
                 buffer: int = 64) -> EvalSet:
    """n_rows rows of whole fresh documents from stream `seed` of `generate` (a generated corpus's
    generate_document(seed, index) -> (text, bits))."""
    cap = seq_len + 1
    bos = tokenizer.bos_id
    rows = np.full((n_rows, cap), bos, dtype=np.int32)
    floor_bits = np.zeros(n_rows)
    text_bytes = 0
    pending: list[tuple[int, int]] = []  # sorted (length, doc number)
    docs: dict[int, tuple[list[int], float, int]] = {}
    next_doc = 0

    def refill() -> None:
        nonlocal next_doc
        want = buffer - len(pending)
        texts, bits = [], []
        for i in range(next_doc, next_doc + want):
            text, b = generate(seed, i)
            texts.append(text)
            bits.append(b)
        for k, (ids, text, b) in enumerate(zip(tokenizer.encode_batch(texts), texts, bits)):
            d = next_doc + k
            tokens = [bos, *ids]
            if len(tokens) > cap:
                continue  # cannot be scored whole in one row (none of the generator's are this long)
            docs[d] = (tokens, b, len(text.encode("utf-8")))
            bisect.insort(pending, (len(tokens), d))
        next_doc += want

    for r in range(n_rows):
        pos = 0
        while True:
            if len(pending) < buffer // 2:
                refill()
            i = bisect.bisect_right(pending, (cap - pos, float("inf"))) - 1
            if i < 0:
                break  # nothing fits whole any more: the rest of the row stays BOS padding
            _, d = pending.pop(i)
            tokens, b, nbytes = docs.pop(d)
            rows[r, pos : pos + len(tokens)] = tokens
            pos += len(tokens)
            floor_bits[r] += b
            text_bytes += nbytes
    return EvalSet(rows, floor_bits, text_bytes, source)


def validation_rows(dataset, n_rows: int) -> EvalSet:
    n_rows = min(int(n_rows), dataset.max_val_rows)
    return EvalSet(dataset.val_rows(n_rows), None, 0, f"{dataset.name} validation prefix")


def perturbed_copies(rows: np.ndarray, rng: np.random.Generator, cuts: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, T) and cuts (n,): copy i is row i's input with positions cuts[i].. replaced by
    another row's tokens there (random tokens if there is only one row). Cuts are given (the
    evaluator draws one per forward pass: harness/score/passes.py score) or drawn uniform over
    1..T-1, from `rng`, which the evaluator seeds from the OS at evaluation time."""
    inputs = rows[:, :-1]
    n, T = inputs.shape
    cuts = rng.integers(1, T, size=n) if cuts is None else np.asarray(cuts)
    copies = inputs.copy()
    if n > 1:
        donors = (np.arange(n) + rng.integers(1, n, size=n)) % n  # never the row itself
        for i in range(n):
            copies[i, cuts[i]:] = inputs[donors[i], cuts[i]:]
    else:
        high = max(2, int(inputs.max()) + 1)
        copies[0, cuts[0]:] = rng.integers(0, high, size=T - cuts[0])
    # a donor that happens to agree right after the cut would hide a one-token peek there
    same = copies[np.arange(n), cuts] == inputs[np.arange(n), cuts]
    copies[np.arange(n)[same], cuts[same]] = (inputs[np.arange(n)[same], cuts[same]] + 1) % max(2, int(inputs.max()) + 1)
    return copies, cuts
