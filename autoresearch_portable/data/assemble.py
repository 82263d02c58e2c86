"""What every dataset's build shares: train a tokenizer, tokenize the splits into shards, write
the metadata. A dataset's builder (bundled.py, sources.py) supplies the text: a sample for the
tokenizer and, per split, batches of documents (or pre-tokenized batches)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

from autoresearch_portable.data.common import DATA_FORMAT, DataError
from autoresearch_portable.data.store import TOKENIZER_FILE, ShardWriter, file_record, refuse_unusable
from autoresearch_portable.data.tokenizer import TOKENIZER_FORMAT, save_tokenizer, train_tokenizer

SHARD_TOKENS = 1 << 26  # tokens per shard file (128 MiB of uint16)
BATCH_DOCS = 1024
DOC_CHAR_CAP = 10_000  # longest document slice fed to tokenizer training


@dataclass
class WrittenSplit:
    """A split whose shards its builder wrote itself (data/resume.py), taken as it is."""
    shards: list[dict]
    files: dict[str, dict]


def batches(docs: list[str], size: int = BATCH_DOCS) -> Iterator[list[str]]:
    for i in range(0, len(docs), size):
        yield docs[i : i + size]


def text_budget(docs: Iterable[str], budget: int) -> Iterator[str]:
    n = 0
    for d in docs:
        d = d[:DOC_CHAR_CAP]
        yield d
        n += len(d)
        if n >= budget:
            return


def assemble(
    ddir: Path,
    *,
    base: dict,
    vocab_size: int,
    seq_len: int,
    tok_texts: Iterator[str],
    tok_desc: str,
    splits: dict[str, Callable[[object], Iterator]],
    log,
    val_max_tokens: int | None = None,
    seq_len_fn: Callable[[dict], int] | None = None,
    tokenizer=None,
) -> dict:
    """`tokenizer`: one already trained on `tok_texts` and saved in ddir (a resumed build);
    a split's source returns batches of texts or pre-tokenized batches, or a WrittenSplit."""
    name = base["dataset"]
    t0 = time.perf_counter()
    tok = tokenizer
    if tok is None:
        log(f"{name}: training the tokenizer (byte-level BPE, vocab {vocab_size}) on {tok_desc}")
        tok = train_tokenizer(tok_texts, vocab_size, name=f"arp-{name}")
        save_tokenizer(tok, ddir / TOKENIZER_FILE)
    files = {TOKENIZER_FILE: file_record(ddir / TOKENIZER_FILE)}
    log(f"{name}: tokenizer ready, {tok.vocab_size} tokens ({time.perf_counter() - t0:.1f} s)")
    if tok.vocab_size < vocab_size:
        log(f"{name}: note: the text supports only {tok.vocab_size} tokens (asked for {vocab_size})")
    out_splits = {}
    for split, source in splits.items():
        t1 = time.perf_counter()
        batches = source(tok)
        limit = val_max_tokens if split == "val" else None
        shards = []
        w = ShardWriter(ddir, split, 0, tok, max_tokens=limit)
        if isinstance(batches, WrittenSplit):
            shards = list(batches.shards)
            files.update(batches.files)
            batches = ()
        for batch in batches:
            if isinstance(batch, tuple):  # pre-tokenized: (tokens, lens, text_bytes)
                w.add_tokens(*batch)
            else:
                w.add(batch)
            if limit is not None:
                if w.full:
                    break
            elif w.n_tokens >= SHARD_TOKENS:
                rec, frecs = w.close()
                shards.append(rec)
                files.update(frecs)
                log(f"{name}: wrote {split} shard {len(shards) - 1} ({rec['n_tokens'] / 1e6:.1f}M tokens)")
                w = ShardWriter(ddir, split, len(shards), tok)
        if w.n_docs or not shards:
            rec, frecs = w.close()
            shards.append(rec)
            files.update(frecs)
        n_docs = sum(s["n_docs"] for s in shards)
        n_tokens = sum(s["n_tokens"] for s in shards)
        text_bytes = sum(s["text_bytes"] for s in shards)
        if n_docs == 0:
            raise DataError(f"{name}: the {split} split holds no documents")
        out_splits[split] = {
            "shards": shards,
            "n_docs": n_docs,
            "n_tokens": n_tokens,
            "text_bytes": text_bytes,
            "bytes_per_token": text_bytes / max(1, n_tokens - n_docs),
        }
        log(
            f"{name}: tokenized {split}: {n_docs} docs, {n_tokens / 1e6:.2f}M tokens "
            f"({text_bytes / max(1, n_tokens - n_docs):.2f} bytes/token, {time.perf_counter() - t1:.1f} s)"
        )
    if seq_len_fn is not None:
        seq_len = seq_len_fn(out_splits)
    refuse_unusable(ddir, base, out_splits, seq_len, tok.vocab_size, log)
    meta = dict(base)
    meta.update(
        format=DATA_FORMAT,
        tokenizer_format=TOKENIZER_FORMAT,
        vocab_size=tok.vocab_size,
        requested_vocab_size=vocab_size,
        seq_len=seq_len,
        bos_id=tok.bos_id,
        tokenizer={"file": TOKENIZER_FILE, "pattern": tok.pattern, "trained_on": tok_desc},
        splits=out_splits,
        files=files,
        created_utc=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    meta.setdefault("floor_bpb", None)
    return meta
