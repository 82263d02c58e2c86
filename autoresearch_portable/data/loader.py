"""A prepared dataset and its two streams of packed rows (packing.py packs them).

The training stream draws documents in a permutation of (seed, epoch), a fresh one each epoch;
the validation stream takes them in the stored order, so the validation rows are one fixed
sequence and any prefix of it is stable (`val_rows(k) == val_rows(n)[:k]`).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np

from autoresearch_portable import paths
from autoresearch_portable.data.common import DEFAULT_DATASET, MIN_VAL_ROWS, DataError, prepare_hint, resolve
from autoresearch_portable.data.packing import BUFFER_DOCS, Packer, count_rows
from autoresearch_portable.data.staleness import stale_reason
from autoresearch_portable.data.store import META, TOKENIZER_FILE, read_meta
from autoresearch_portable.data.tokenizer import Tokenizer

class TrainBatches(Iterator[np.ndarray]):
    """Infinite iterator of int32 arrays (batch_size, seq_len + 1). `epoch` counts completed
    passes over the training documents (0 during the first pass); `tokens_served` counts the
    tokens in the rows yielded so far."""

    def __init__(self, ds: "Dataset", batch_size: int, seed: int = 0, buffer: int = BUFFER_DOCS):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.epoch = 0
        self.tokens_served = 0
        lengths, starts, shard_of, arrays = ds._split_arrays("train")
        self._n_docs = len(lengths)
        if self._n_docs == 0:
            raise DataError(f"dataset '{ds.name}' has no training documents")
        self._order = self._permutation(0)
        self._k = 0
        self._cap = ds.seq_len + 1
        self._ds = ds
        self._packer = Packer(self._next_doc, lengths, starts, shard_of, arrays, self._cap, buffer)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self._n_docs)

    def _next_doc(self) -> int:
        if self._k >= self._n_docs:
            self.epoch += 1
            self._order = self._permutation(self.epoch)
            self._k = 0
        d = int(self._order[self._k])
        self._k += 1
        return d

    def __iter__(self) -> "TrainBatches":
        return self

    def __next__(self) -> np.ndarray:
        out = np.empty((self.batch_size, self._cap), dtype=np.int32)
        for r in range(self.batch_size):
            self._packer.fill(out[r])
        if out.size and int(out.max()) >= self._ds.vocab_size:  # a flipped bit in a shard, caught per batch
            raise self._ds._damaged(f"a training row holds token {int(out.max())} >= vocab size {self._ds.vocab_size}")
        self.tokens_served += out.size
        return out


class Dataset:
    """A prepared dataset. Use `load(name)`."""

    def __init__(self, name: str, ddir: Path, meta: dict):
        self.name = name
        self.dir = ddir
        self.meta = meta
        self.seq_len = int(meta["seq_len"])
        self.vocab_size = int(meta["vocab_size"])
        self.bos_id = int(meta["bos_id"])
        self.floor_bpb = meta.get("floor_bpb")
        self.val_bytes_per_token = float(meta["splits"]["val"]["bytes_per_token"])
        self._arrays: dict[str, tuple] = {}
        self._val_rows: np.ndarray | None = None
        self._val_packer: Packer | None = None

    def __repr__(self) -> str:
        s = self.meta["splits"]
        return (
            f"Dataset({self.name!r}, vocab_size={self.vocab_size}, seq_len={self.seq_len}, "
            f"train_tokens={s['train']['n_tokens']}, val_tokens={s['val']['n_tokens']})"
        )

    @cached_property
    def tokenizer(self):
        return Tokenizer.load(self.dir / TOKENIZER_FILE, name=f"arp-{self.name}")

    @cached_property
    def token_bytes(self) -> np.ndarray:
        tb = self.tokenizer.token_bytes()
        if len(tb) != self.vocab_size:
            raise DataError(f"dataset '{self.name}' tokenizer does not match its metadata; rerun prepare")
        return tb

    def _split_arrays(self, split: str):
        if split not in self._arrays:
            lengths, starts, shard_of, arrays = [], [], [], []
            for i, sh in enumerate(self.meta["splits"][split]["shards"]):
                tokens, off = self._load_shard(sh, full=split == "val")
                arrays.append(tokens)
                lengths.append(np.diff(off))
                starts.append(off[:-1])
                shard_of.append(np.full(len(off) - 1, i, dtype=np.int32))
            cat = lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dtype=dt)  # noqa: E731
            self._arrays[split] = (
                cat(lengths, np.int64), cat(starts, np.int64), cat(shard_of, np.int32), arrays,
            )
        return self._arrays[split]

    def _damaged(self, what: str) -> DataError:
        return DataError(f"dataset '{self.name}' is damaged ({what}); run {prepare_hint(self.name)}")

    def _load_shard(self, sh: dict, full: bool) -> tuple[np.ndarray, np.ndarray]:
        """One shard's tokens (memory-mapped) and document offsets, checked for what a bit flip
        or a truncated file would break: the offsets must be a valid partition of the tokens,
        every document must start with BOS and (full=True: a pass over the tokens, done for the
        small validation split) every token must be below the vocabulary size. Training rows are
        range-checked as they are served instead (TrainBatches), so loading never reads whole
        training shards."""
        try:
            tokens = np.load(self.dir / sh["tokens"], mmap_mode="r", allow_pickle=False)
            off = np.load(self.dir / sh["docs"], allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            what = "a shard file is missing" if isinstance(e, FileNotFoundError) else f"unreadable shard ({type(e).__name__})"
            raise self._damaged(f"{what}: {sh['tokens']}") from None
        if tokens.dtype != np.uint16 or tokens.ndim != 1 or off.dtype != np.int64 or off.ndim != 1 or len(off) < 1:
            raise self._damaged(f"{sh['tokens']} has the wrong layout")
        if off[0] != 0 or off[-1] != len(tokens) or (len(off) > 1 and np.diff(off).min() < 1):
            raise self._damaged(f"{sh['docs']} does not match {sh['tokens']}")
        if len(off) > 1 and full and not (tokens[off[:-1]] == self.bos_id).all():
            raise self._damaged(f"{sh['tokens']}: a document does not start with BOS")
        if full and len(tokens) and int(tokens.max()) >= self.vocab_size:
            raise self._damaged(f"{sh['tokens']} holds token {int(tokens.max())} >= vocab size {self.vocab_size}")
        return tokens, off

    def train_batches(self, batch_size: int, seed: int = 0) -> TrainBatches:
        return TrainBatches(self, batch_size, seed)

    # -- validation ------------------------------------------------------------------------
    def _new_val_packer(self) -> Packer:
        lengths, starts, shard_of, arrays = self._split_arrays("val")
        it = iter(range(len(lengths)))
        return Packer(lambda: next(it, None), lengths, starts, shard_of, arrays, self.seq_len + 1, BUFFER_DOCS)

    @cached_property
    def max_val_rows(self) -> int:
        return count_rows(self._split_arrays("val")[0], self.seq_len)

    def val_rows(self, n_rows: int) -> np.ndarray:
        """The first n_rows rows (int32, (n_rows, seq_len + 1)) of the fixed validation stream."""
        n_rows = int(n_rows)
        if n_rows < 0:
            raise ValueError("n_rows must be >= 0")
        if n_rows > self.max_val_rows:
            raise DataError(
                f"dataset '{self.name}' has {self.max_val_rows} validation rows of {self.seq_len + 1} "
                f"tokens; {n_rows} were asked for"
            )
        have = 0 if self._val_rows is None else len(self._val_rows)
        if n_rows > have:
            if self._val_packer is None:
                self._val_packer = self._new_val_packer()
            want = min(self.max_val_rows, max(n_rows, 2 * have))
            more = np.empty((want - have, self.seq_len + 1), dtype=np.int32)
            for r in range(len(more)):
                self._val_packer.fill(more[r])
            self._val_rows = more if self._val_rows is None else np.concatenate([self._val_rows, more])
        return self._val_rows[:n_rows].copy()


def load(dataset: str = DEFAULT_DATASET) -> Dataset:
    """Open a prepared dataset (a name, or the path a local dataset was prepared from)."""
    name, kind, source = resolve(dataset)
    ddir = paths.data_dir(name)
    meta = read_meta(ddir)
    hint = prepare_hint(dataset)
    if meta is None:
        if (ddir / META).exists():
            raise DataError(f"dataset '{dataset}' is not prepared (unreadable metadata); run {hint}")
        raise DataError(f"dataset '{dataset}' is not prepared; run {hint}")
    reason = stale_reason(ddir, meta, kind)
    if reason:
        raise DataError(f"dataset '{dataset}' is not prepared (stale cache: {reason}); run {hint}")
    return Dataset(name, ddir, meta)


def check_usable(dataset: str = DEFAULT_DATASET, min_val_rows: int = MIN_VAL_ROWS) -> Dataset:
    """The dataset as a run needs it, checked cheaply (well under a second): prepared and intact
    (metadata, file sizes and quick checksums; for a local dataset, its source unchanged), its
    validation shards readable and in range, and at least `min_val_rows` validation rows. Raises
    DataError (one line, saying what to run) otherwise. The harness calls it before training and
    again right before evaluation, so a cache deleted or damaged mid-run fails with that line
    instead of a traceback after the budget was spent."""
    ds = load(dataset)
    n = ds.max_val_rows  # reads and range-checks the validation shards
    if n < min_val_rows:
        raise DataError(
            f"dataset '{dataset}' has {n} validation rows of {ds.seq_len + 1} tokens (at least {min_val_rows} "
            f"needed); add validation text and run {prepare_hint(dataset)}"
        )
    return ds
