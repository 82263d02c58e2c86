"""Builders of the datasets whose text comes from files: climbmix and tinystories (downloaded
parquet, download.py fetches them) and local text (local.py reads it). Each hands
assemble.assemble its tokenizer sample and its splits."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import pyarrow.parquet as pq

from autoresearch_portable import paths
from autoresearch_portable.data.assemble import BATCH_DOCS, assemble, batches, text_budget
from autoresearch_portable.data.common import DATASETS, KNOWN_SHA256, LOCAL_SEQ_LEN, DataError, base_url
from autoresearch_portable.data.download import fetch_all
from autoresearch_portable.data.local import local_seq_len, local_vocab_size, split_docs
from autoresearch_portable.data.store import doc_lengths


def _parquet_batches(files: list[Path], log=None, row_range: tuple[int, int | None] | None = None):
    """Batches of `text` values from parquet files, optionally only rows [lo, hi) of the whole."""
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


def build_climbmix(ddir: Path, cfg: dict, log) -> dict:
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
    return assemble(
        ddir,
        base=base,
        vocab_size=spec["vocab_size"],
        seq_len=spec["seq_len"],
        tok_texts=text_budget(_flatten(_parquet_batches(train_files)), cfg["tokenizer_train_chars"]),
        tok_desc=f"up to {cfg['tokenizer_train_chars'] / 1e6:.0f}M characters of the training shards",
        splits={
            "train": lambda tok: _parquet_batches(train_files, log),
            "val": lambda tok: _parquet_batches([folder / val_name], log),
        },
        log=log,
        val_max_tokens=cfg["val_max_tokens"],
    )


def build_tinystories(ddir: Path, cfg: dict, log) -> dict:
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
    return assemble(
        ddir,
        base=base,
        vocab_size=spec["vocab_size"],
        seq_len=spec["seq_len"],
        tok_texts=text_budget(_flatten(_parquet_batches([path], row_range=(2 * h, None))), cfg["tokenizer_train_chars"]),
        tok_desc=f"up to {cfg['tokenizer_train_chars'] / 1e6:.0f}M characters of the training rows",
        splits={
            "train": lambda tok: _parquet_batches([path], log, row_range=(2 * h, None)),
            "val": lambda tok: _parquet_batches([path], row_range=(h, 2 * h)),
        },
        log=log,
        val_max_tokens=cfg["val_max_tokens"],
    )


def build_local(ddir: Path, cfg: dict, log) -> dict:
    source = Path(cfg["source"])
    name = ddir.name
    log(f"{name}: reading {source}")
    train, val, how = split_docs(source)
    train_bytes = sum(len(d.encode("utf-8")) for d in train)
    vocab = local_vocab_size(train_bytes)
    log(f"{name}: {len(train)} train / {len(val)} val documents ({how['validation']}); {train_bytes / 1e6:.2f} MB of training text")
    base = {"dataset": name, "kind": "local", "config": cfg, "split": how}
    return assemble(
        ddir,
        base=base,
        vocab_size=vocab,
        seq_len=LOCAL_SEQ_LEN,
        tok_texts=text_budget(train, 200_000_000),
        tok_desc=f"the training split ({train_bytes / 1e6:.2f} MB)",
        splits={"train": lambda tok: batches(train), "val": lambda tok: batches(val)},
        log=log,
        seq_len_fn=lambda s: local_seq_len(doc_lengths(ddir, s["val"]), LOCAL_SEQ_LEN),
    )
