"""The bundled datasets' builders ("bundled": corpus.py, "bundled-v2": corpus2.py): the validation
split and its entropy floor, a tokenizer sample (a prefix of the training split), and the training
split generated and tokenized in chunks (chunks.py), in parallel processes when it is large (the
chunks are the same either way, so the shards are too). v1's training split is sized in bytes of
text; v2's in tokens, resumable and position-stable (resume.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from autoresearch_portable.data import chunks, common, kb, resume
from autoresearch_portable.data.assemble import assemble, batches
from autoresearch_portable.data.common import DATA_FORMAT, DATASETS
from autoresearch_portable.data.generated import generate_docs
from autoresearch_portable.data.tokenizer import TOKENIZER_FORMAT

PARALLEL_MIN_BYTES = 16_000_000  # v1: less text than this is made in-process
PARALLEL_MIN_TOKENS = 4_000_000  # v2: fewer new tokens than this are made in-process


def _bundled_train(seed: int, target_bytes: int, tok, log, version: int = 1) -> Iterator[tuple]:
    """Pre-tokenized batches (tokens, lens, text_bytes) of documents 0..N-1 of the stream, N the
    first count whose text reaches target_bytes; generated in parallel processes when large."""
    workers = chunks.worker_count() if target_bytes >= PARALLEL_MIN_BYTES else 1
    done = 0
    made = [0, 0]  # documents and bytes generated so far
    chunk_end = chunks.chunk_sizer(lambda: target_bytes - done, lambda: made[1] / made[0] if made[0] else 900.0, workers)

    if workers > 1:
        log(f"bundled: generating and tokenizing the training split in {workers} processes")
    for _, _, tokens, lens, nbytes in chunks.ordered_chunks(seed, 0, chunk_end, tok, version, workers):
        made[0] += len(nbytes)
        made[1] += int(nbytes.sum())
        k = chunks.docs_to_reach(nbytes, target_bytes - done)
        if k is None:
            done += int(nbytes.sum())
            yield (tokens, lens, int(nbytes.sum()))
            continue
        done += int(nbytes[:k].sum())
        yield (tokens[: int(lens[:k].sum())], lens[:k], int(nbytes[:k].sum()))
        return


def build_bundled(ddir: Path, cfg: dict, log) -> dict:
    tok_bytes = min(cfg["tokenizer_train_bytes"], cfg["train_bytes"])
    return _build(ddir, cfg, log, "bundled", 1, common.GENERATOR_VERSION, {}, tok_bytes, None,
                  lambda tok: _bundled_train(cfg["train_seed"], cfg["train_bytes"], tok, log, 1))


def v2_resume_key(cfg: dict) -> dict:
    """What v2's training shards and tokenizer depend on (resume.py keeps them while it holds)."""
    return {
        "format": DATA_FORMAT, "tokenizer_format": TOKENIZER_FORMAT, "generator_version": common.GENERATOR_VERSION_V2,
        "corpus_version": 2, "train_seed": cfg["train_seed"], "shard_docs": cfg["shard_docs"],
        "tokenizer_train_bytes": cfg["tokenizer_train_bytes"], "vocab_size": DATASETS["bundled-v2"]["vocab_size"],
    }


def build_bundled_v2(ddir: Path, cfg: dict, log) -> dict:
    """Corpus v2: its floor is conditional on the knowledge base (corpus2.py), whose size is noted.
    The training split is made by resume.train_split: a prepare continues where one stopped."""
    key = v2_resume_key(cfg)
    tok = resume.reusable_tokenizer(ddir, key)
    if tok is not None:
        log("bundled-v2: reusing the tokenizer of an earlier prepare with these settings")
    missing = cfg["train_tokens"] - min(cfg["train_tokens"], _finished_tokens(ddir))
    workers = chunks.worker_count() if missing >= PARALLEL_MIN_TOKENS else 1

    def train(t):
        return resume.train_split(ddir, t, key, cfg["train_seed"], 2, cfg["train_tokens"], cfg["shard_docs"], workers, log)

    extra = {"kb_info_bits": kb.info_bits(), "floor_given": "the knowledge base (kb.py)"}
    return _build(ddir, cfg, log, "bundled-v2", 2, common.GENERATOR_VERSION_V2, extra, cfg["tokenizer_train_bytes"],
                  tok, train)


def _finished_tokens(ddir: Path) -> int:
    """Tokens in the shards an earlier prepare listed (a guess for the worker count only)."""
    p = resume.read_progress(ddir) or {"shards": []}
    return sum(int(s.get("n_tokens", 0)) for s in p["shards"] if isinstance(s, dict))


def _build(ddir: Path, cfg: dict, log, name: str, version: int, gen_version: int, extra: dict, tok_bytes: int,
           tok, train) -> dict:
    spec = DATASETS[name]
    size = (f"{cfg['train_bytes'] / 1e6:.1f} MB of training text" if "train_bytes" in cfg
            else f"{cfg['train_tokens'] / 1e6:.1f}M training tokens")
    log(f"{name}: {size} and {cfg['val_bytes'] / 1e6:.1f} MB of validation text "
        f"(corpus v{version}, generator version {gen_version})")
    val, val_bits, val_bytes = generate_docs(cfg["val_seed"], cfg["val_bytes"], version)
    floor = val_bits / val_bytes
    log(f"{name}: validation split: {len(val)} documents, entropy floor {floor:.4f} bits per byte")
    sample, _, sample_bytes = generate_docs(cfg["train_seed"], tok_bytes, version)  # a prefix of the training split
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
        tok_desc=f"the first {len(sample)} training documents ({sample_bytes / 1e6:.1f} MB)",
        tokenizer=tok,
        splits={"train": train, "val": lambda t: batches(val)},
        log=log,
    )
