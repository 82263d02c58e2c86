"""On-disk layout of a prepared dataset, and the checks that decide whether to trust it.

    <cache>/data/<name>/
        tokenizer.json              the BPE tokenizer (see tokenizer.py)
        train-00000.tokens.npy      uint16 token ids; every document is stored as [BOS, tokens...]
        train-00000.docs.npy        int64 offsets of the documents in the token file (n_docs + 1)
        val-00000.tokens.npy, val-00000.docs.npy
        meta.json                   written last: what was built, from what, sizes and checksums

Every file is written atomically (temporary file + rename). A rebuild deletes meta.json first, so
an interrupted prepare leaves a folder without metadata, which nothing trusts. `check()` compares
the metadata with the code's versions and with the files (size + a quick checksum of each file's
ends; `full=True` re-hashes everything).
"""

from __future__ import annotations

import hashlib
import json
import os
from itertools import chain
from pathlib import Path

import numpy as np

from autoresearch_portable.data.common import DATA_FORMAT
from autoresearch_portable.fsutil import atomic_open, atomic_write_json

META = "meta.json"
TOKENIZER_FILE = "tokenizer.json"
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
    try:
        with open(ddir / META, "r", encoding="utf-8") as f:
            meta = json.load(f)
        return meta if isinstance(meta, dict) else None
    except (OSError, ValueError):
        return None


def write_meta(ddir: Path, meta: dict) -> None:
    atomic_write_json(ddir / META, meta)


def invalidate(ddir: Path) -> None:
    """Forget a prepared dataset: metadata first (so nothing trusts the folder), then its files."""
    (ddir / META).unlink(missing_ok=True)
    if ddir.is_dir():
        for p in ddir.iterdir():
            if p.is_file() and (p.name.endswith((".npy", ".tmp")) or p.name == TOKENIZER_FILE):
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
