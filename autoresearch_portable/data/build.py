"""`prepare()`: build a dataset (text -> tokenizer -> token shards -> metadata) in the user cache.

Datasets: "bundled" (generated here, offline), "climbmix" and "tinystories" (downloaded parquet),
or a path to local text (see local.py). A second call with the same arguments finds the metadata,
checks it (versions, settings, file sizes and full checksums) and does nothing; anything stale or
damaged is rebuilt, with a log line saying why.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

from autoresearch_portable import paths
from autoresearch_portable.data import corpus
from autoresearch_portable.data.common import (
    DATA_FORMAT,
    DATASETS,
    KNOWN_SHA256,
    LOCAL_SEQ_LEN,
    DataError,
    base_url,
    resolve,
    stderr_log,
)
from autoresearch_portable.data.store import (
    TOKENIZER_FILE,
    ShardWriter,
    check,
    doc_lengths,
    file_record,
    invalidate,
    read_meta,
    refuse_unusable,
    write_meta,
)
from autoresearch_portable.data.tokenizer import TOKENIZER_FORMAT, save_tokenizer, train_tokenizer

SHARD_TOKENS = 1 << 26  # tokens per shard file (128 MiB of uint16)
BATCH_DOCS = 1024
DOC_CHAR_CAP = 10_000  # longest document slice fed to tokenizer training


def expected_versions(kind: str) -> dict:
    v = {"tokenizer_format": TOKENIZER_FORMAT}
    if kind == "bundled":
        v["generator_version"] = corpus.GENERATOR_VERSION
    return v


def source_changed(meta: dict) -> str | None:
    """For a local dataset: a reason if its source files changed since it was prepared."""
    from autoresearch_portable.data.local import fingerprint

    src = meta.get("config", {}).get("source")
    if not src:
        return "no recorded source"
    try:
        now = fingerprint(Path(src))
    except DataError:
        return "source files are gone"
    if now != meta["config"].get("files"):
        return "source files changed"
    return None


# ---------------------------------------------------------------------------------------------


def prepare(
    dataset: str = "bundled",
    *,
    num_shards: int | None = None,
    force: bool = False,
    log: Callable[[str], None] = stderr_log,
    **size_overrides,
) -> dict:
    """Prepare a dataset; returns its metadata plus "already_prepared" (bool) and "dir"/"path"
    (the dataset folder, str)."""
    name, kind, source = resolve(dataset)
    ddir = paths.data_dir(name)
    old = read_meta(ddir)
    if kind == "local" and source is None:  # a prepared local dataset named by its name
        src = (old or {}).get("config", {}).get("source")
        if not src:
            raise DataError(f"unknown local dataset '{dataset}': prepare it from its path")
        source = Path(src)
        if not source.exists():
            raise DataError(f"the source of '{dataset}' is gone: {src}")
    if num_shards is not None and kind != "climbmix":
        raise DataError("--num-shards applies to climbmix only")

    config, builder = _plan(name, kind, source, num_shards, size_overrides)
    with _lock(ddir, log):
        return _prepare_locked(name, kind, ddir, config, builder, force, log)


@contextmanager
def _lock(ddir: Path, log):
    """An exclusive lock on the dataset folder (POSIX), so two processes never build it at once;
    the second one waits, then finds the dataset prepared."""
    ddir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    with open(ddir / ".lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"{ddir.name}: another process is preparing this dataset; waiting for it")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _prepare_locked(name, kind, ddir: Path, config: dict, builder, force: bool, log) -> dict:
    old = read_meta(ddir)
    # full=True: every file is re-hashed, so a same-size corruption anywhere in a shard is found
    # here and rebuilt, never hidden behind "already prepared" (loading checks only the ends).
    reason = "forced" if force else check(ddir, old, expected_versions(kind), full=True)
    if reason is None and kind == "local":
        reason = source_changed(old)
    if reason is None and old.get("config") != config:
        reason = "settings changed"
    if reason is None:
        log(f"{name}: already prepared in {ddir}; nothing to do")
        return _result(old, ddir, True)
    if old is not None or (ddir / "meta.json").exists():
        log(f"{name}: rebuilding ({reason})")
    invalidate(ddir)
    ddir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        meta = builder(ddir, config, log)
    except DataError:
        invalidate(ddir)  # a refused dataset leaves no half-built files behind
        raise
    meta["prepare_seconds"] = round(time.perf_counter() - t0, 2)
    write_meta(ddir, meta)
    _summary(meta, ddir, log)
    return _result(meta, ddir, False)


def _result(meta: dict, ddir: Path, already: bool) -> dict:
    out = dict(meta)
    out["already_prepared"] = already
    out["dir"] = out["path"] = str(ddir)
    return out


def _summary(meta: dict, ddir: Path, log) -> None:
    s = meta["splits"]
    size = sum(r["size"] for r in meta["files"].values())
    msg = (
        f"{meta['dataset']}: ready in {ddir} ({size / 1e6:.1f} MB): "
        f"train {s['train']['n_docs']} docs / {s['train']['n_tokens'] / 1e6:.2f}M tokens "
        f"({s['train']['text_bytes'] / 1e6:.1f} MB text), "
        f"val {s['val']['n_docs']} docs / {s['val']['n_tokens'] / 1e6:.2f}M tokens / {s['val'].get('rows', '?')} rows; "
        f"vocab {meta['vocab_size']}, seq_len {meta['seq_len']}"
    )
    if meta.get("floor_bpb") is not None:
        msg += f"; entropy floor {meta['floor_bpb']:.4f} bpb"
    log(msg + f"; took {meta['prepare_seconds']:.1f} s")


def _plan(name: str, kind: str, source: Path | None, num_shards, overrides: dict):
    spec = DATASETS.get(kind, {})
    if kind == "bundled":
        allowed = ("train_bytes", "val_bytes", "tokenizer_train_bytes")
        _check_overrides(overrides, allowed)
        cfg = {k: int(overrides.get(k, spec[k])) for k in allowed}
        if cfg["train_bytes"] < 10_000 or cfg["val_bytes"] < 1_000:
            raise DataError("bundled corpus needs train_bytes >= 10000 and val_bytes >= 1000")
        cfg.update(train_seed=corpus.TRAIN_SEED, val_seed=corpus.VAL_SEED)
        return cfg, _build_bundled
    if kind == "climbmix":
        _check_overrides(overrides, ("tokenizer_train_chars", "val_max_tokens"))
        n = spec["default_shards"] if num_shards is None else int(num_shards)
        if not 1 <= n <= spec["max_shard"]:
            raise DataError(f"--num-shards must be between 1 and {spec['max_shard']}")
        cfg = {"num_shards": n, **{k: int(overrides.get(k, spec[k])) for k in ("tokenizer_train_chars", "val_max_tokens")}}
        return cfg, _build_climbmix
    if kind == "tinystories":
        _check_overrides(overrides, ("tokenizer_train_chars", "val_max_tokens"))
        cfg = {k: int(overrides.get(k, spec[k])) for k in ("tokenizer_train_chars", "val_max_tokens")}
        return cfg, _build_tinystories
    from autoresearch_portable.data.local import fingerprint

    _check_overrides(overrides, ())
    return {"source": str(source), "files": fingerprint(source)}, _build_local


def _check_overrides(overrides: dict, allowed: tuple) -> None:
    bad = sorted(set(overrides) - set(allowed))
    if bad:
        raise TypeError(f"unexpected settings {bad}; allowed: {list(allowed)}")


# ---------------------------------------------------------------------------------------------
# The common build: tokenizer, shards, metadata.
# ---------------------------------------------------------------------------------------------


def _batches(docs: list[str], size: int = BATCH_DOCS) -> Iterator[list[str]]:
    for i in range(0, len(docs), size):
        yield docs[i : i + size]


def _text_budget(docs: Iterable[str], budget: int) -> Iterator[str]:
    n = 0
    for d in docs:
        d = d[:DOC_CHAR_CAP]
        yield d
        n += len(d)
        if n >= budget:
            return


def _build(
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
) -> dict:
    name = base["dataset"]
    t0 = time.perf_counter()
    log(f"{name}: training the tokenizer (byte-level BPE, vocab {vocab_size}) on {tok_desc}")
    tok = train_tokenizer(tok_texts, vocab_size, name=f"arp-{name}")
    save_tokenizer(tok, ddir / TOKENIZER_FILE)
    files = {TOKENIZER_FILE: file_record(ddir / TOKENIZER_FILE)}
    log(f"{name}: tokenizer ready, {tok.vocab_size} tokens ({time.perf_counter() - t0:.1f} s)")
    if tok.vocab_size < vocab_size:
        log(f"{name}: note: the text supports only {tok.vocab_size} tokens (asked for {vocab_size})")
    out_splits = {}
    for split, source in splits.items():
        batches = source(tok)
        t1 = time.perf_counter()
        limit = val_max_tokens if split == "val" else None
        shards = []
        w = ShardWriter(ddir, split, 0, tok, max_tokens=limit)
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


# ---------------------------------------------------------------------------------------------
# Bundled
# ---------------------------------------------------------------------------------------------


def _generate(seed: int, target_bytes: int) -> tuple[list[str], float, int]:
    """Documents 0, 1, ... of a stream until they hold at least target_bytes of UTF-8 text."""
    docs: list[str] = []
    bits = 0.0
    n = 0
    i = 0
    while n < target_bytes:
        text, b = corpus.generate_document(seed, i)
        docs.append(text)
        bits += b
        n += len(text.encode("utf-8"))
        i += 1
    return docs, bits, n


CHUNK_DOCS = 2048
PARALLEL_MIN_BYTES = 16_000_000
_WORKER_TOK: dict = {}


def _bundled_chunk(seed: int, start: int, stop: int, ranks: list[bytes], pattern: str):
    """Generate and tokenize documents [start, stop) of a stream (runs in a worker process).
    Returns (tokens with BOS, lengths incl. BOS, UTF-8 bytes per document)."""
    import numpy as np

    from autoresearch_portable.data.store import with_bos
    from autoresearch_portable.data.tokenizer import Tokenizer

    key = (len(ranks), pattern, hash(tuple(ranks)))
    tok = _WORKER_TOK.get(key)
    if tok is None:
        _WORKER_TOK.clear()
        tok = _WORKER_TOK[key] = Tokenizer(ranks, pattern)
    texts = [corpus.generate_document(seed, i)[0] for i in range(start, stop)]
    ids = tok.encode_batch(texts, num_threads=1)
    lens = np.fromiter((len(x) + 1 for x in ids), dtype=np.int64, count=len(ids))
    nbytes = np.fromiter((len(t.encode("utf-8")) for t in texts), dtype=np.int64, count=len(texts))
    return with_bos(ids, lens, tok.bos_id), lens, nbytes


def _workers() -> int:
    import os

    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def _bundled_train(seed: int, target_bytes: int, tok, log) -> Iterator[tuple]:
    """Pre-tokenized batches (tokens, lens, text_bytes) of documents 0..N-1 of the stream, N the
    first count whose text reaches target_bytes; generated in parallel processes when large."""
    import numpy as np

    workers = _workers() if target_bytes >= PARALLEL_MIN_BYTES else 1
    args = (tok.ranks, tok.pattern)
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
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

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


def _build_bundled(ddir: Path, cfg: dict, log) -> dict:
    spec = DATASETS["bundled"]
    log(
        f"bundled: {cfg['train_bytes'] / 1e6:.1f} MB of training text and "
        f"{cfg['val_bytes'] / 1e6:.1f} MB of validation text (generator v{corpus.GENERATOR_VERSION})"
    )
    val, val_bits, val_bytes = _generate(cfg["val_seed"], cfg["val_bytes"])
    floor = val_bits / val_bytes
    log(f"bundled: validation split: {len(val)} documents, entropy floor {floor:.4f} bits per byte")
    tok_bytes = min(cfg["tokenizer_train_bytes"], cfg["train_bytes"])
    sample, _, _ = _generate(cfg["train_seed"], tok_bytes)  # a prefix of the training split
    base = {
        "dataset": "bundled",
        "kind": "bundled",
        "config": cfg,
        "generator_version": corpus.GENERATOR_VERSION,
        "floor_bpb": floor,
        "floor": {"val_bits": val_bits, "val_text_bytes": val_bytes, "val_docs": len(val)},
    }
    return _build(
        ddir,
        base=base,
        vocab_size=spec["vocab_size"],
        seq_len=spec["seq_len"],
        tok_texts=iter(sample),
        tok_desc=f"the first {len(sample)} training documents ({sum(len(d.encode()) for d in sample) / 1e6:.1f} MB)",
        splits={
            "train": lambda tok: _bundled_train(cfg["train_seed"], cfg["train_bytes"], tok, log),
            "val": lambda tok: _batches(val),
        },
        log=log,
    )


# ---------------------------------------------------------------------------------------------
# Downloaded parquet datasets
# ---------------------------------------------------------------------------------------------


def _parquet_batches(files: list[Path], log=None, row_range: tuple[int, int | None] | None = None):
    """Batches of `text` values from parquet files, optionally only rows [lo, hi) of the whole."""
    import pyarrow.parquet as pq

    row = 0
    lo, hi = row_range if row_range else (0, None)
    for p in files:
        pf = pq.ParquetFile(p)
        if "text" not in pf.schema_arrow.names:
            raise DataError(f"{p.name}: no 'text' column")
        if log:
            log(f"  reading {p.name} ({pf.metadata.num_rows} rows)")
        for rg in range(pf.num_row_groups):
            n = pf.metadata.row_group(rg).num_rows
            if hi is not None and row >= hi:
                return
            if row + n <= lo:
                row += n
                continue
            col = pf.read_row_group(rg, columns=["text"]).column("text").to_pylist()
            a = max(0, lo - row)
            b = n if hi is None else min(n, hi - row)
            texts = [t for t in col[a:b] if isinstance(t, str) and t]
            row += n
            for i in range(0, len(texts), BATCH_DOCS):
                yield texts[i : i + BATCH_DOCS]


def _flatten(batches: Iterable[list[str]]) -> Iterator[str]:
    for b in batches:
        yield from b


def _build_climbmix(ddir: Path, cfg: dict, log) -> dict:
    from autoresearch_portable.data.download import fetch_all

    spec = DATASETS["climbmix"]
    n = cfg["num_shards"]
    ids = [i for i in range(n) if i != spec["val_shard"]]
    names = [spec["shard_pattern"].format(index=i) for i in ids]
    val_name = spec["shard_pattern"].format(index=spec["val_shard"])
    log(f"climbmix: {len(names)} training shard(s) + pinned validation shard {val_name}")
    folder = paths.downloads_dir("climbmix")
    recs = fetch_all(folder, base_url("climbmix"), names + [val_name], log=log,
                     revision=spec["revision"], known=KNOWN_SHA256["climbmix"])
    train_files = [folder / nm for nm in names]
    base = {"dataset": "climbmix", "kind": "climbmix", "config": cfg, "sources": recs}
    return _build(
        ddir,
        base=base,
        vocab_size=spec["vocab_size"],
        seq_len=spec["seq_len"],
        tok_texts=_text_budget(_flatten(_parquet_batches(train_files)), cfg["tokenizer_train_chars"]),
        tok_desc=f"up to {cfg['tokenizer_train_chars'] / 1e6:.0f}M characters of the training shards",
        splits={
            "train": lambda tok: _parquet_batches(train_files, log),
            "val": lambda tok: _parquet_batches([folder / val_name], log),
        },
        log=log,
        val_max_tokens=cfg["val_max_tokens"],
    )


def _build_tinystories(ddir: Path, cfg: dict, log) -> dict:
    import pyarrow.parquet as pq

    from autoresearch_portable.data.download import fetch_all

    spec = DATASETS["tinystories"]
    folder = paths.downloads_dir("tinystories")
    recs = fetch_all(folder, base_url("tinystories"), [spec["file"]], log=log,
                     revision=spec["revision"], known=KNOWN_SHA256["tinystories"])
    path = folder / spec["file"]
    rows = pq.ParquetFile(path).metadata.num_rows
    h = min(spec["holdout_rows"], rows // 20)
    if h < 1:
        raise DataError(f"{spec['file']} has too few rows ({rows})")
    log(f"tinystories: {rows} rows: [0, {h}) test (unused), [{h}, {2 * h}) validation, the rest training")
    base = {
        "dataset": "tinystories",
        "kind": "tinystories",
        "config": cfg,
        "sources": recs,
        "row_split": {"test": [0, h], "val": [h, 2 * h], "train": [2 * h, rows]},
    }
    return _build(
        ddir,
        base=base,
        vocab_size=spec["vocab_size"],
        seq_len=spec["seq_len"],
        tok_texts=_text_budget(_flatten(_parquet_batches([path], row_range=(2 * h, None))), cfg["tokenizer_train_chars"]),
        tok_desc=f"up to {cfg['tokenizer_train_chars'] / 1e6:.0f}M characters of the training rows",
        splits={
            "train": lambda tok: _parquet_batches([path], log, row_range=(2 * h, None)),
            "val": lambda tok: _parquet_batches([path], row_range=(h, 2 * h)),
        },
        log=log,
        val_max_tokens=cfg["val_max_tokens"],
    )


# ---------------------------------------------------------------------------------------------
# Local files
# ---------------------------------------------------------------------------------------------


def _build_local(ddir: Path, cfg: dict, log) -> dict:
    from autoresearch_portable.data.local import local_seq_len, local_vocab_size, split_docs

    source = Path(cfg["source"])
    name = ddir.name
    log(f"{name}: reading {source}")
    train, val, how = split_docs(source)
    train_bytes = sum(len(d.encode("utf-8")) for d in train)
    vocab = local_vocab_size(train_bytes)
    log(f"{name}: {len(train)} train / {len(val)} val documents ({how['validation']}); {train_bytes / 1e6:.2f} MB of training text")
    base = {"dataset": name, "kind": "local", "config": cfg, "split": how}
    return _build(
        ddir,
        base=base,
        vocab_size=vocab,
        seq_len=LOCAL_SEQ_LEN,
        tok_texts=_text_budget(train, 200_000_000),
        tok_desc=f"the training split ({train_bytes / 1e6:.2f} MB)",
        splits={"train": lambda tok: _batches(train), "val": lambda tok: _batches(val)},
        log=log,
        seq_len_fn=lambda s: local_seq_len(doc_lengths(ddir, s["val"]), LOCAL_SEQ_LEN),
    )
