"""Whether a prepared dataset is still what `prepare` would build now, in one place: used by
`prepare` (full checksums, before deciding to rebuild) and by `load` (quick checks, before a run).
Stale means: a version changed (data format, tokenizer, corpus generator), a file is missing or
damaged, or, for a local dataset, its source files changed since it was prepared."""

from __future__ import annotations

from pathlib import Path

from autoresearch_portable.data import common
from autoresearch_portable.data.common import DataError
from autoresearch_portable.data.local import fingerprint
from autoresearch_portable.data.store import check
from autoresearch_portable.data.tokenizer import TOKENIZER_FORMAT


def expected_versions(kind: str) -> dict:
    v = {"tokenizer_format": TOKENIZER_FORMAT}
    if kind == "bundled":
        v["generator_version"] = common.GENERATOR_VERSION
    elif kind == "bundled-v2":
        v["generator_version"] = common.GENERATOR_VERSION_V2
    return v


def source_changed(meta: dict) -> str | None:
    """For a local dataset: a reason if its source files changed since it was prepared."""
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


def stale_reason(ddir: Path, meta: dict | None, kind: str, full: bool = False) -> str | None:
    """Why the dataset in `ddir` (its metadata `meta`, None if unreadable) must be rebuilt, or
    None. full=True re-hashes every file, so a same-size corruption anywhere is found."""
    reason = check(ddir, meta, expected_versions(kind), full=full)
    if reason is None and kind == "local":
        reason = source_changed(meta)
    return reason
