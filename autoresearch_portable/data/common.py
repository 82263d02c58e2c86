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

# The bundled corpus (corpus.py): bump GENERATOR_VERSION on any change to its text (words.py,
# menus.py, story.py, grammar.py), which makes every prepared copy stale. Kept here, not beside the
# grammar, so checking a prepared dataset never loads the grammar. The seeds pick the two streams.
GENERATOR_VERSION = 1
# Bundled corpus v2 (corpus2.py, dataset "bundled-v2"): bump on any change to its text (grammar2.py,
# kb.py, and the v1 grammar it embeds).
GENERATOR_VERSION_V2 = 2
TRAIN_SEED = 0
VAL_SEED = 1
# The generated datasets (offline, exact entropy floor) and the corpus version each is made by
# (data/generated.py maps a version to its generator).
CORPUS_VERSIONS = {"bundled": 1, "bundled-v2": 2}
# what every command uses unless told otherwise: corpus v2, the one that keeps scaling past a
# laptop CPU and the one the bundled reference profiles are measured on (issue 12)
DEFAULT_DATASET = "bundled-v2"
GENERATED = tuple(CORPUS_VERSIONS)

LOCAL_SUFFIXES = (".txt", ".jsonl", ".parquet")


class DataError(UserError):
    """A data problem the user can fix (not prepared, offline, bad input file). One-line message."""


HF_ENDPOINT = "https://huggingface.co"

# Downloads are pinned to a hub commit, never to the moving `main` branch. The commit of each
# dataset belongs here as a 40-hex string. It must be read from the hub itself, from a machine
# that can reach it (this one could not, and a made-up hash would only break every download):
#   curl -sI https://huggingface.co/datasets/<hub_repo>/resolve/main/<any file> | grep -i x-repo-commit
# or  python -c "import huggingface_hub as h; print(h.HfApi().dataset_info('<hub_repo>').sha)"
# and, once pinned, check that `curl -sI .../resolve/<commit>/<file>` answers 302 and the files'
# sha256 match what an earlier download recorded (downloads/<dataset>/manifest.json).
# While a revision is None the first download learns the commit that `main` pointed to at that
# moment (the hub's X-Repo-Commit header), records it in the download manifest, and fetches every
# later file of the dataset from that same commit (data/download.py: fetch_all).
# KNOWN_SHA256: the sha256 of each file at the pinned commit, verified on download and on reuse.
# Empty until taken from the hub (its LFS pointers list them); never guessed.
KNOWN_SHA256: dict[str, dict[str, str]] = {"climbmix": {}, "tinystories": {}}

DATASETS: dict[str, dict] = {
    "bundled": {
        "description": "seeded synthetic English-like corpus shipped in the package (offline, known entropy floor)",
        "vocab_size": 4096,
        "seq_len": 1024,
        "train_bytes": 64_000_000,
        "val_bytes": 4_000_000,
        "tokenizer_train_bytes": 8_000_000,
    },
    # corpus v2 (corpus2.py): a large fixed knowledge base, long-range chronicles, v1 kinds inside;
    # the default (DEFAULT_DATASET).
    # Its training split is sized in tokens: `arp prepare` sizes it to the device (at least
    # train_tokens, about v1's 64 MB of text), in shards of shard_docs documents (data/resume.py).
    "bundled-v2": {
        "description": "bundled corpus v2: chronicles over a 1.15e9-bit knowledge base (offline, known entropy floor)",
        "vocab_size": 4096,
        "seq_len": 1024,
        "train_tokens": 1 << 24,
        "max_train_tokens": 1 << 32,
        "shard_docs": 1 << 15,
        "val_bytes": 4_000_000,
        "tokenizer_train_bytes": 8_000_000,
    },
    "climbmix": {
        "description": "ClimbMix 400B (shuffled), the original autoresearch's pretraining data; parquet shards",
        "vocab_size": 8192,
        "seq_len": 2048,
        "hub_repo": "karpathy/climbmix-400b-shuffle",
        "revision": None,  # see the comment above: fill in from the hub, never invent
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
        "hub_repo": "karpathy/tinystories-gpt4-clean",
        "revision": None,  # see the comment above: fill in from the hub, never invent
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
    """The dataset's download base URL, with `{revision}` standing for the hub commit (filled in
    by download.fetch_all). ARP_DATASET_BASE_URL replaces it whole (tests, plain mirrors: no
    revision); HF_ENDPOINT, as for huggingface_hub, swaps only the hub's address."""
    override = os.environ.get("ARP_DATASET_BASE_URL")
    if override:
        return override
    endpoint = (os.environ.get("HF_ENDPOINT") or HF_ENDPOINT).rstrip("/")
    return f"{endpoint}/datasets/{DATASETS[dataset]['hub_repo']}/resolve/{{revision}}"


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
    """(name, kind, source path) for a dataset argument. kind: bundled|bundled-v2|climbmix|tinystories|local."""
    if not isinstance(dataset, str) or not dataset:
        raise DataError("dataset must be a name (bundled, bundled-v2, climbmix, tinystories) or a path")
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
        f"unknown dataset '{dataset}': use bundled, bundled-v2, climbmix, tinystories, "
        "or a path to a .txt/.jsonl/.parquet file or folder"
    )


def prepare_hint(dataset: str) -> str:
    return f"`arp prepare --dataset {dataset}`"
