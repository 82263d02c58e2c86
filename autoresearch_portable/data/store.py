"""On-disk layout of a prepared dataset, and the checks that decide whether to trust it.

    <cache>/data/<name>/
        tokenizer.json              the BPE tokenizer (see tokenizer.py)
        train-00000.tokens.npy      uint16 token ids; every document is stored as [BOS, tokens...]
        train-00000.docs.npy        int64 offsets of the documents in the token file (n_docs + 1)
        val-00000.tokens.npy, val-00000.docs.npy
        train-progress.json         bundled-v2 only: the training shards finished so far, so an
                                    interrupted prepare continues from them (resume.py)
        meta.json                   written last: what was built, from what, sizes and checksums

Every file is written atomically (temporary file + rename). A rebuild deletes meta.json first, so
an interrupted prepare leaves a folder without metadata, which nothing trusts. `check()` compares
the metadata with the code's versions and with the files (size + a quick checksum of each file's
ends; `full=True` re-hashes everything, as prepare does before it says "already prepared").
`refuse_unusable()` is the build's last check: a dataset no run could use is never written.
"""

from __future__ import annotations

import hashlib
import os
from itertools import chain
from pathlib import Path

import numpy as np

from autoresearch_portable.data.common import DATA_FORMAT, LOCAL_SEQ_LEN, MIN_VAL_ROWS, MIN_VOCAB, DataError
from autoresearch_portable.data.packing import count_rows
from autoresearch_portable.fsutil import atomic_open, atomic_write_json, read_json

META = "meta.json"
TOKENIZER_FILE = "tokenizer.json"
PROGRESS = "train-progress.json"
_QUICK = 1 << 16


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def quick_hash(path: Path) -> str:
    """sha256 of the size and the first and last 64 KiB: cheap enough to run on every load."""
    size = os.path.getsize(path)
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(_QUICK))
        if size > _QUICK:
            f.seek(max(_QUICK, size - _QUICK))
            h.update(f.read(_QUICK))
    return h.hexdigest()


def file_record(path: Path) -> dict:
    return {"size": os.path.getsize(path), "sha256": sha256_file(path), "quick": quick_hash(path)}


def read_meta(ddir: Path) -> dict | None:
    return read_json(ddir / META)


def write_meta(ddir: Path, meta: dict) -> None:
    atomic_write_json(ddir / META, meta)


def invalidate(ddir: Path, keep_resumable: bool = False) -> None:
    """Forget a prepared dataset: metadata first (so nothing trusts the folder), then its files.
    keep_resumable: where a resumable build left its progress, keep the files it lists (its
    builder checks them before it reuses any)."""
    (ddir / META).unlink(missing_ok=True)
    keep = keep_resumable and (ddir / PROGRESS).is_file()
    if ddir.is_dir():
        for p in ddir.iterdir():
            if p.is_file() and (p.name.endswith(".tmp") or (not keep and (
                    p.name.endswith(".npy") or p.name in (TOKENIZER_FILE, PROGRESS)))):
                p.unlink(missing_ok=True)


def check(ddir: Path, meta: dict | None, versions: dict, full: bool = False) -> str | None:
    """None if the prepared dataset in ddir can be trusted, else the reason it cannot."""
    if meta is None:
        return "no metadata" if not (ddir / META).exists() else "unreadable metadata"
    if meta.get("format") != DATA_FORMAT:
        return "data format changed"
    for key, want in versions.items():
        if meta.get(key) != want:
            return f"{key.replace('_', ' ')} changed ({meta.get(key)} -> {want})"
    files = meta.get("files")
    if not isinstance(files, dict) or not files:
        return "metadata lists no files"
    for name, rec in files.items():
        p = ddir / name
        try:
            size = os.path.getsize(p)
        except OSError:
            return f"{name} is missing"
        if size != rec.get("size"):
            return f"{name} has the wrong size"
        if (sha256_file(p) if full else quick_hash(p)) != (rec.get("sha256") if full else rec.get("quick")):
            return f"{name} fails its checksum"
    return None


def doc_lengths(ddir: Path, split: dict) -> np.ndarray:
    """Token counts (BOS included) of every document of a split, from its offset files."""
    return np.concatenate([np.diff(np.load(ddir / sh["docs"])) for sh in split["shards"]])


MAX_CROPPED_FRACTION = 0.5
_MORE_TEXT = {
    "local": "add documents (or a val.txt file beside the training files)",
    "bundled": "use a larger val_bytes",
    "bundled-v2": "use a larger val_bytes",
}


def _row_note(base: dict, seq_len: int) -> str:
    if base.get("kind") == "local" and seq_len < LOCAL_SEQ_LEN:
        return f" (rows are {seq_len + 1} tokens: the length was cut from {LOCAL_SEQ_LEN + 1} to fit a small validation split)"
    return ""


def refuse_unusable(ddir: Path, base: dict, splits: dict, seq_len: int, vocab_size: int, log) -> None:
    """Refuse (DataError, one line) a dataset a run could not use, before anything trusts it:
    most of a split cropped away (documents far longer than a row), fewer than MIN_VAL_ROWS
    validation rows, or a tokenizer that learned almost nothing. Cropping below the limit is
    reported, with how much, and recorded in the metadata (`cropped_tokens`)."""
    name, cap = base["dataset"], seq_len + 1
    for split, rec in splits.items():
        lengths = doc_lengths(ddir, rec)
        # a document longer than a row is cropped to one row and its tail never used
        cropped = int(np.maximum(lengths - cap, 0).sum())
        rec["cropped_tokens"] = cropped
        frac = cropped / max(1, rec["n_tokens"])
        if frac > MAX_CROPPED_FRACTION:
            raise DataError(
                f"{name}: {frac:.0%} of the {split} tokens ({cropped:,} of {rec['n_tokens']:,}) lie beyond the first "
                f"{cap} tokens of their document and would be dropped; split the text into shorter documents "
                "(blank lines between them in a .txt file)" + _row_note(base, seq_len)
            )
        if frac >= 0.01:
            log(f"{name}: note: {frac:.1%} of the {split} tokens ({cropped:,}) are in document tails beyond "
                f"{cap} tokens and are never used")
        if split == "val":
            rec["rows"] = rows = count_rows(lengths, seq_len)
            if rows < MIN_VAL_ROWS:
                more = _MORE_TEXT.get(base.get("kind"), "raise val_max_tokens")
                raise DataError(
                    f"{name}: the validation split fills {rows} rows of {cap} tokens, at least {MIN_VAL_ROWS} are needed "
                    f"(about {MIN_VAL_ROWS * cap:,} tokens, it has {rec['n_tokens']:,}); {more}" + _row_note(base, seq_len)
                )
    if vocab_size < MIN_VOCAB:
        raise DataError(
            f"{name}: the tokenizer learned only {vocab_size} tokens (at least {MIN_VOCAB} needed): the training text "
            "is too short or too repetitive; add more (and more varied) text"
        )


def with_bos(ids: list[list[int]], lens: np.ndarray, bos_id: int) -> np.ndarray:
    """Concatenate token lists into one uint16 array with BOS before each; lens = len + 1."""
    total = int(lens.sum())
    flat = np.fromiter(chain.from_iterable(ids), dtype=np.uint16, count=total - len(ids))
    starts = np.zeros(len(ids), dtype=np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    out = np.empty(total, dtype=np.uint16)
    mask = np.ones(total, dtype=bool)
    mask[starts] = False
    out[starts] = bos_id
    out[mask] = flat
    return out


class ShardWriter:
    """Tokenizes batches of documents into one shard: uint16 tokens with a BOS before each
    document, and int64 document offsets."""

    def __init__(self, ddir: Path, split: str, index: int, tokenizer, max_tokens: int | None = None):
        if tokenizer.vocab_size > 65536:
            raise ValueError("uint16 shards need vocab_size <= 65536")
        self.ddir = ddir
        self.stem = f"{split}-{index:05d}"
        self.tok = tokenizer
        self.max_tokens = max_tokens
        self.parts: list[np.ndarray] = []
        self.lens: list[np.ndarray] = []
        self.n_tokens = 0
        self.n_docs = 0
        self.text_bytes = 0

    @property
    def full(self) -> bool:
        return self.max_tokens is not None and self.n_tokens >= self.max_tokens

    def add(self, texts: list[str]) -> None:
        texts = [t for t in texts if t]
        if not texts or self.full:
            return
        ids = self.tok.encode_batch(texts)
        lens = np.fromiter((len(x) + 1 for x in ids), dtype=np.int64, count=len(ids))
        if self.max_tokens is not None:
            keep = int(np.searchsorted(np.cumsum(lens), self.max_tokens - self.n_tokens, side="left")) + 1
            if keep < len(ids):
                ids, lens, texts = ids[:keep], lens[:keep], texts[:keep]
        tokens = with_bos(ids, lens, self.tok.bos_id)
        self.add_tokens(tokens, lens, sum(len(t.encode("utf-8")) for t in texts))

    def add_tokens(self, tokens: np.ndarray, lens: np.ndarray, text_bytes: int) -> None:
        """Add documents tokenized elsewhere: `tokens` as written by `with_bos`, `lens` their
        lengths (BOS included)."""
        self.parts.append(np.asarray(tokens, dtype=np.uint16))
        self.lens.append(np.asarray(lens, dtype=np.int64))
        self.n_tokens += int(len(tokens))
        self.n_docs += int(len(lens))
        self.text_bytes += int(text_bytes)

    def close(self) -> tuple[dict, dict[str, dict]]:
        """Write the shard; returns its record and the file records to list in the metadata."""
        tokens = np.concatenate(self.parts) if self.parts else np.zeros(0, dtype=np.uint16)
        lens = np.concatenate(self.lens) if self.lens else np.zeros(0, dtype=np.int64)
        offsets = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        files = {}
        for suffix, arr in (("tokens", tokens), ("docs", offsets)):
            name = f"{self.stem}.{suffix}.npy"
            with atomic_open(self.ddir / name, "wb") as f:
                np.save(f, arr, allow_pickle=False)
            files[name] = file_record(self.ddir / name)
        self.parts, self.lens = [], []
        shard = {
            "tokens": f"{self.stem}.tokens.npy",
            "docs": f"{self.stem}.docs.npy",
            "n_tokens": int(len(tokens)),
            "n_docs": int(len(lens)),
            "text_bytes": int(self.text_bytes),
        }
        return shard, files
