"""A generated corpus's training documents, generated and tokenized in chunks of consecutive
document indices: in worker processes when there is much to make, in order, and the same tokens
whatever the number of processes or the chunk sizes (every document comes from its own seed)."""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterator

import numpy as np

from autoresearch_portable.data.generated import GENERATORS
from autoresearch_portable.data.store import with_bos
from autoresearch_portable.data.tokenizer import Tokenizer

CHUNK_DOCS = 2048  # documents per chunk a worker process makes (v2: ~1M tokens, ~1 s of one core)
MAX_WORKERS = 64
_WORKER_TOK: dict = {}


def tokenized_chunk(seed: int, start: int, stop: int, ranks: list[bytes], pattern: str, version: int = 1):
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


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_count(requested: int | None = None) -> int:
    """Processes to generate with: ARP_PREPARE_WORKERS, else the cores this process may use."""
    env = os.environ.get("ARP_PREPARE_WORKERS", "").strip()
    n = requested or (int(env) if env.isdigit() and int(env) > 0 else available_cores())
    return max(1, min(MAX_WORKERS, n))


def docs_to_reach(counts: np.ndarray, need: int) -> int | None:
    """How many of the leading documents with these counts (tokens or bytes) it takes to reach
    `need` (at least one when need <= 0), or None when all of them fall short."""
    cum = np.cumsum(counts)
    if len(cum) == 0 or int(cum[-1]) < need:
        return None
    return int(np.searchsorted(cum, need, side="left")) + 1 if need > 0 else 1


def ordered_chunks(seed: int, first_doc: int, chunk_end: Callable[[int, int], int | None], tok, version: int,
                   workers: int) -> Iterator[tuple]:
    """(start, stop, tokens, lens, nbytes) of consecutive chunks of documents from `first_doc` on,
    in order. `chunk_end(start, ahead)` is the stop of the chunk that starts at `start`, where
    `ahead` documents are already being made and not yet taken; None: none more for now (only
    asked while ahead > 0). Endless: the caller stops iterating. With workers > 1, up to
    2 x workers chunks are made ahead."""
    args = (tok.ranks, tok.pattern, version)
    if workers <= 1:
        start = first_doc
        while True:
            stop = chunk_end(start, 0)
            yield (start, stop, *tokenized_chunk(seed, start, stop, *args))
            start = stop
    ex = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    pending: deque = deque()
    nxt = taken = first_doc
    try:
        while True:
            while len(pending) < 2 * workers:
                stop = chunk_end(nxt, nxt - taken)
                if stop is None and pending:
                    break
                stop = stop if stop is not None else chunk_end(nxt, 0)
                pending.append((nxt, stop, ex.submit(tokenized_chunk, seed, nxt, stop, *args)))
                nxt = stop
            start, stop, fut = pending.popleft()
            taken = stop
            yield (start, stop, *fut.result())
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def chunk_sizer(missing: Callable[[], float], per_doc: Callable[[], float], workers: int,
                limit: Callable[[int], int] | None = None) -> Callable[[int, int], int | None]:
    """A chunk_end for ordered_chunks that makes about what is still missing: chunks of up to
    CHUNK_DOCS documents, smaller near the end so that the workers finish together, and none
    more while those being made should cover the rest. `missing()`: tokens (or bytes) still
    needed; `per_doc()`: the average per document so far; `limit(start)`: a stop a chunk must not
    pass (a shard's end)."""
    def chunk_end(start: int, ahead: int) -> int | None:
        docs = missing() / max(1.0, per_doc()) - ahead
        if ahead and docs <= 0:
            return None
        size = int(min(CHUNK_DOCS, max(16, docs / workers + 16)))
        return min(limit(start), start + size) if limit else start + size
    return chunk_end
