"""The bundled datasets' builder ("bundled": corpus.py, "bundled-v2": corpus2.py): the validation
split and its entropy floor, a tokenizer sample (a prefix of the training split), and the training
split generated and tokenized in chunks, in parallel processes when it is large (the chunks are the
same either way, so the shards are too)."""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np

from autoresearch_portable.data import common, corpus, corpus2, kb
from autoresearch_portable.data.assemble import assemble, batches
from autoresearch_portable.data.common import DATASETS
from autoresearch_portable.data.store import with_bos
from autoresearch_portable.data.tokenizer import Tokenizer


# corpus version -> its document generator (by number, so a worker process is told it by pickle)
GENERATORS = {1: corpus.generate_document, 2: corpus2.generate_document}


def _generate(seed: int, target_bytes: int, version: int = 1) -> tuple[list[str], float, int]:
    """Documents 0, 1, ... of a stream until they hold at least target_bytes of UTF-8 text."""
    generate = GENERATORS[version]
    docs: list[str] = []
    bits = 0.0
    n = 0
    i = 0
    while n < target_bytes:
        text, b = generate(seed, i)
        docs.append(text)
        bits += b
        n += len(text.encode("utf-8"))
        i += 1
    return docs, bits, n


CHUNK_DOCS = 2048
PARALLEL_MIN_BYTES = 16_000_000
_WORKER_TOK: dict = {}


def _bundled_chunk(seed: int, start: int, stop: int, ranks: list[bytes], pattern: str, version: int = 1):
    """Generate and tokenize documents [start, stop) of a stream (runs in a worker process).
    Returns (tokens with BOS, lengths incl. BOS, UTF-8 bytes per document)."""
    key = (len(ranks), pattern, hash(tuple(ranks)))
    tok = _WORKER_TOK.get(key)
    if tok is None:
        _WORKER_TOK.clear()
        tok = _WORKER_TOK[key] = Tokenizer(ranks, pattern)
    generate = GENERATORS[version]
    texts = [generate(seed, i)[0] for i in range(start, stop)]
    ids = tok.encode_batch(texts, num_threads=1)
    lens = np.fromiter((len(x) + 1 for x in ids), dtype=np.int64, count=len(ids))
    nbytes = np.fromiter((len(t.encode("utf-8")) for t in texts), dtype=np.int64, count=len(texts))
    return with_bos(ids, lens, tok.bos_id), lens, nbytes


def _workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def _bundled_train(seed: int, target_bytes: int, tok, log, version: int = 1) -> Iterator[tuple]:
    """Pre-tokenized batches (tokens, lens, text_bytes) of documents 0..N-1 of the stream, N the
    first count whose text reaches target_bytes; generated in parallel processes when large."""
    workers = _workers() if target_bytes >= PARALLEL_MIN_BYTES else 1
    args = (tok.ranks, tok.pattern, version)
    done = 0

    def take(res) -> tuple | None:
        nonlocal done
        tokens, lens, nbytes = res
        cum = np.cumsum(nbytes)
        if done + int(cum[-1]) < target_bytes:
            done += int(cum[-1])
            return (tokens, lens, int(cum[-1]))
        k = int(np.searchsorted(cum, target_bytes - done, side="left")) + 1
        done += int(cum[k - 1])
        return (tokens[: int(lens[:k].sum())], lens[:k], int(cum[k - 1]))

    if workers == 1:
        start = 0
        while done < target_bytes:
            # documents average ~900 bytes: ask for about what is still missing
            n = max(32, min(CHUNK_DOCS, (target_bytes - done) // 600 + 16))
            yield take(_bundled_chunk(seed, start, start + n, *args))
            start += n
        return
    log(f"bundled: generating and tokenizing the training split in {workers} processes")
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
        pending: deque = deque()
        nxt = 0
        try:
            while True:
                while len(pending) < 2 * workers:
                    pending.append(ex.submit(_bundled_chunk, seed, nxt, nxt + CHUNK_DOCS, *args))
                    nxt += CHUNK_DOCS
                yield take(pending.popleft().result())
                if done >= target_bytes:
                    break
        finally:
            for f in pending:
                f.cancel()


def build_bundled(ddir: Path, cfg: dict, log) -> dict:
    return _build(ddir, cfg, log, "bundled", 1, common.GENERATOR_VERSION, {})


def build_bundled_v2(ddir: Path, cfg: dict, log) -> dict:
    """Corpus v2: its floor is conditional on the knowledge base (corpus2.py), whose size is noted."""
    return _build(ddir, cfg, log, "bundled-v2", 2, common.GENERATOR_VERSION_V2,
                  {"kb_info_bits": kb.info_bits(), "floor_given": "the knowledge base (kb.py)"})


def _build(ddir: Path, cfg: dict, log, name: str, version: int, gen_version: int, extra: dict) -> dict:
    spec = DATASETS[name]
    log(
        f"{name}: {cfg['train_bytes'] / 1e6:.1f} MB of training text and "
        f"{cfg['val_bytes'] / 1e6:.1f} MB of validation text (corpus v{version}, generator version {gen_version})"
    )
    val, val_bits, val_bytes = _generate(cfg["val_seed"], cfg["val_bytes"], version)
    floor = val_bits / val_bytes
    log(f"{name}: validation split: {len(val)} documents, entropy floor {floor:.4f} bits per byte")
    tok_bytes = min(cfg["tokenizer_train_bytes"], cfg["train_bytes"])
    sample, _, _ = _generate(cfg["train_seed"], tok_bytes, version)  # a prefix of the training split
    base = {
        "dataset": name,
        "kind": name,
        "config": cfg,
        "generator_version": gen_version,
        "floor_bpb": floor,
        "floor": {"val_bits": val_bits, "val_text_bytes": val_bytes, "val_docs": len(val), **extra},
    }
    return assemble(
        ddir,
        base=base,
        vocab_size=spec["vocab_size"],
        seq_len=spec["seq_len"],
        tok_texts=iter(sample),
        tok_desc=f"the first {len(sample)} training documents ({sum(len(d.encode()) for d in sample) / 1e6:.1f} MB)",
        splits={
            "train": lambda tok: _bundled_train(cfg["train_seed"], cfg["train_bytes"], tok, log, version),
            "val": lambda tok: batches(val),
        },
        log=log,
    )
