"""What every part of the data layer shares: the error type, the named datasets, name resolution."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

from autoresearch_portable.errors import UserError

# Bump when the on-disk layout of a prepared dataset changes (forces a rebuild everywhere).
DATA_FORMAT = 1

LOCAL_SUFFIXES = (".txt", ".jsonl", ".parquet")


class DataError(UserError):
    """A data problem the user can fix (not prepared, offline, bad input file). One-line message."""


CLIMBMIX_BASE_URL = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main"
TINYSTORIES_BASE_URL = "https://huggingface.co/datasets/karpathy/tinystories-gpt4-clean/resolve/main"

DATASETS: dict[str, dict] = {
    "bundled": {
        "description": "seeded synthetic English-like corpus shipped in the package (offline, known entropy floor)",
        "vocab_size": 4096,
        "seq_len": 1024,
        "train_bytes": 64_000_000,
        "val_bytes": 4_000_000,
        "tokenizer_train_bytes": 8_000_000,
    },
    "climbmix": {
        "description": "ClimbMix 400B (shuffled), the original autoresearch's pretraining data; parquet shards",
        "vocab_size": 8192,
        "seq_len": 2048,
        "base_url": CLIMBMIX_BASE_URL,
        "shard_pattern": "shard_{index:05d}.parquet",
        "max_shard": 6542,
        "val_shard": 6542,  # the last shard is the pinned validation shard
        "default_shards": 10,
        "tokenizer_train_chars": 200_000_000,
        "val_max_tokens": 25_000_000,
    },
    "tinystories": {
        "description": "TinyStories (GPT-4, cleaned), one parquet file; the original's small-device advice",
        "vocab_size": 4096,
        "seq_len": 512,
        "base_url": TINYSTORIES_BASE_URL,
        "file": "tinystories_gpt4_clean.parquet",
        "holdout_rows": 10_000,  # rows [0, h) are a test split (unused), [h, 2h) validation
        "tokenizer_train_chars": 100_000_000,
        "val_max_tokens": 25_000_000,
    },
}

LOCAL_VOCAB_SIZE = 4096
LOCAL_SEQ_LEN = 1024

# A prepared dataset must fill at least this many validation rows: the fewest the eval sizing
# ever scores (harness.budget.eval_rows), so no run spends its budget and then cannot be scored.
MIN_VAL_ROWS = 4
# Fewer tokens than this means byte-level BPE learned under 256 merges: the training text is
# too short or too repetitive to train a tokenizer (512 is also the smallest vocabulary that the
# local sizing asks for).
MIN_VOCAB = 512


def base_url(dataset: str) -> str:
    """The dataset's download base URL; ARP_DATASET_BASE_URL overrides it (tests, mirrors)."""
    return os.environ.get("ARP_DATASET_BASE_URL") or DATASETS[dataset]["base_url"]


def stderr_log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def local_name(path: Path) -> str:
    path = path.expanduser().resolve()
    stem = path.stem if path.is_file() else path.name
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:40] or "data"
    digest = hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:8]
    return f"local-{stem}-{digest}"


def looks_like_path(dataset: str) -> bool:
    return (
        os.sep in dataset
        or (os.altsep is not None and os.altsep in dataset)
        or dataset.startswith(".")
        or dataset.startswith("~")
        or dataset.lower().endswith(LOCAL_SUFFIXES)
        or Path(dataset).expanduser().exists()
    )


def resolve(dataset: str) -> tuple[str, str, Path | None]:
    """(name, kind, source path) for a dataset argument. kind: bundled|climbmix|tinystories|local."""
    if not isinstance(dataset, str) or not dataset:
        raise DataError("dataset must be a name (bundled, climbmix, tinystories) or a path")
    if dataset in DATASETS:
        return dataset, dataset, None
    if dataset.startswith("local-") and not Path(dataset).exists():
        return dataset, "local", None
    if looks_like_path(dataset):
        p = Path(dataset).expanduser()
        if not p.exists():
            raise DataError(f"no such file or folder: {dataset}")
        return local_name(p), "local", p.resolve()
    raise DataError(
        f"unknown dataset '{dataset}': use bundled, climbmix, tinystories, "
        "or a path to a .txt/.jsonl/.parquet file or folder"
    )


def prepare_hint(dataset: str) -> str:
    return f"`arp prepare --dataset {dataset}`"
