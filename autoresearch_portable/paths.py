"""Where things live on disk. Everything user-level goes under one platformdirs cache folder,
which ARP_CACHE_DIR overrides (tests and CI point it at a temporary folder)."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "autoresearch-portable"


def cache_dir() -> Path:
    override = os.environ.get("ARP_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def data_dir(dataset: str) -> Path:
    """Prepared shards, tokenizer and metadata of one dataset."""
    return cache_dir() / "data" / dataset


def downloads_dir(dataset: str) -> Path:
    """Raw downloaded files (parquet shards) of one dataset, before tokenization."""
    return cache_dir() / "downloads" / dataset


def profiles_dir() -> Path:
    """Calibration profiles, one file per device + harness version + dataset."""
    return cache_dir() / "profiles"


def probes_dir() -> Path:
    """Cached throughput probes (matmul peak, autotuned batch sizes)."""
    return cache_dir() / "probes"


def keys_dir() -> Path:
    """The ledger's signing key: outside every workspace, and not in the cache (clearing the cache
    must not make old ledger lines unverifiable). With ARP_CACHE_DIR set (tests, CI), beside it."""
    override = os.environ.get("ARP_CACHE_DIR")
    if override:
        return Path(override).expanduser() / "keys"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "keys"
