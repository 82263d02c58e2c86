"""Packing documents into rows (train and validation alike).

Every row holds `seq_len + 1` tokens and starts with a document's BOS. A buffer of documents is
kept; the rest of a row is filled with the largest buffered document that still fits whole, and
when none fits, the shortest buffered document is cropped to fill the row exactly (its tail is
dropped). No padding, every token is real. The buffer is refilled from a document order the
caller gives (loader.py: a fresh permutation per epoch for training, the stored order for
validation).

Per document the packer does a bisect in a sorted list and one numpy slice copy; there is no
per-token Python work.
"""

from __future__ import annotations

import bisect

import numpy as np

BUFFER_DOCS = 1000
_SHIFT = 32
_SEQ_MASK = (1 << _SHIFT) - 1


class Packer:
    """Best-fit packer over a document source. `docs` yields document ids; the length and token
    slice of each come from the dataset arrays. `fill(row)` fills one row in place (row=None:
    lengths only) and returns False if the source ran dry before the row was complete."""

    __slots__ = ("_next_doc", "_len", "_start", "_shard", "_tokens", "_keys", "_ids", "_seq", "cap")

    def __init__(self, next_doc, lengths, starts, shard_of, token_arrays, cap: int, buffer: int):
        self._next_doc = next_doc
        self._len = lengths
        self._start = starts
        self._shard = shard_of
        self._tokens = token_arrays
        self.cap = cap
        self._keys: list[int] = []  # sorted: (length << 32) | seq
        self._ids: dict[int, int] = {}  # seq -> doc id
        self._seq = 0
        for _ in range(buffer):
            if not self._push():
                break

    def _push(self) -> bool:
        d = self._next_doc()
        if d is None:
            return False
        s = self._seq = (self._seq + 1) & _SEQ_MASK
        bisect.insort(self._keys, (int(self._len[d]) << _SHIFT) | s)
        self._ids[s] = d
        return True

    def fill(self, row: np.ndarray | None) -> bool:
        keys, cap = self._keys, self.cap
        pos = 0
        while pos < cap:
            if not keys:
                return False
            remaining = cap - pos
            i = bisect.bisect_right(keys, (remaining << _SHIFT) | _SEQ_MASK) - 1
            if i < 0:
                i = 0  # nothing fits whole: crop the shortest
            key = keys.pop(i)
            d = self._ids.pop(key & _SEQ_MASK)
            n = min(key >> _SHIFT, remaining)
            if row is not None:
                st = int(self._start[d])
                row[pos : pos + n] = self._tokens[self._shard[d]][st : st + n]
            pos += n
            self._push()
        return True


def count_rows(lengths: np.ndarray, seq_len: int, buffer: int = BUFFER_DOCS) -> int:
    """How many full rows the validation packing makes from documents of these lengths."""
    it = iter(range(len(lengths)))
    p = Packer(lambda: next(it, None), lengths, None, None, None, seq_len + 1, buffer)
    n = 0
    while p.fill(None):
        n += 1
    return n
