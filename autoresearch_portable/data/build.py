"""`prepare()`: build a dataset (text -> tokenizer -> token shards -> metadata) in the user cache.

Datasets: "bundled" and "bundled-v2" (generated here, offline: bundled.py), "climbmix" and "tinystories"
(downloaded parquet) or a path to local text (sources.py). This file decides what to build (the
dataset's settings) and holds the folder's lock. A second call with the same arguments finds the
metadata, checks it (staleness.py: versions, file sizes and full checksums; and the settings) and
does nothing; anything stale or damaged is rebuilt, with a log line saying why.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from autoresearch_portable import paths
from autoresearch_portable.data.bundled import build_bundled, build_bundled_v2
from autoresearch_portable.data.common import DATASETS, DEFAULT_DATASET, TRAIN_SEED, VAL_SEED, DataError, resolve, stderr_log
from autoresearch_portable.data.local import fingerprint
from autoresearch_portable.data.sources import build_climbmix, build_local, build_tinystories
from autoresearch_portable.data.staleness import stale_reason
from autoresearch_portable.data.store import invalidate, read_meta, write_meta

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


def prepare(
    dataset: str = DEFAULT_DATASET,
    *,
    num_shards: int | None = None,
    force: bool = False,
    log: Callable[[str], None] = stderr_log,
    min_train_tokens: int | None = None,
    **size_overrides,
) -> dict:
    """Prepare a dataset; returns its metadata plus "already_prepared" (bool) and "dir"/"path"
    (the dataset folder, str). min_train_tokens (bundled-v2, instead of train_tokens): a training
    split of at least this many tokens; a prepared one that is larger is kept as it is."""
    name, kind, source = resolve(dataset)
    ddir = paths.data_dir(name)
    old = read_meta(ddir)
    if min_train_tokens is not None:
        if kind != "bundled-v2" or "train_tokens" in size_overrides:
            raise TypeError("min_train_tokens applies to bundled-v2, without train_tokens")
        others, _ = _plan(name, kind, source, num_shards, size_overrides)
        size_overrides["train_tokens"] = at_least(int(min_train_tokens), (old or {}).get("config"), others)
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
    if fcntl is None:  # Windows: no lock
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
    reason = "forced" if force else stale_reason(ddir, old, kind, full=True)
    if reason is None and old.get("config") != config:
        reason = "settings changed"
    if reason is None:
        log(f"{name}: already prepared in {ddir}; nothing to do")
        return _result(old, ddir, True)
    if old is not None or (ddir / "meta.json").exists():
        log(f"{name}: rebuilding ({reason})")
    invalidate(ddir, keep_resumable=not force)
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
        cfg.update(train_seed=TRAIN_SEED, val_seed=VAL_SEED)
        return cfg, build_bundled
    if kind == "bundled-v2":
        allowed = ("train_tokens", "val_bytes", "tokenizer_train_bytes", "shard_docs")
        _check_overrides(overrides, allowed)
        cfg = {k: int(overrides.get(k, spec[k])) for k in allowed}
        if not 10_000 <= cfg["train_tokens"] <= spec["max_train_tokens"]:
            raise DataError(f"bundled-v2 needs between 10000 and {spec['max_train_tokens']} training tokens")
        if cfg["val_bytes"] < 1_000 or cfg["shard_docs"] < 1:
            raise DataError("bundled-v2 needs val_bytes >= 1000 and shard_docs >= 1")
        cfg.update(train_seed=TRAIN_SEED, val_seed=VAL_SEED)
        return cfg, build_bundled_v2
    if kind == "climbmix":
        _check_overrides(overrides, ("tokenizer_train_chars", "val_max_tokens"))
        n = spec["default_shards"] if num_shards is None else int(num_shards)
        if not 1 <= n <= spec["max_shard"]:
            raise DataError(f"--num-shards must be between 1 and {spec['max_shard']}")
        cfg = {"num_shards": n, **{k: int(overrides.get(k, spec[k])) for k in ("tokenizer_train_chars", "val_max_tokens")}}
        return cfg, build_climbmix
    if kind == "tinystories":
        _check_overrides(overrides, ("tokenizer_train_chars", "val_max_tokens"))
        cfg = {k: int(overrides.get(k, spec[k])) for k in ("tokenizer_train_chars", "val_max_tokens")}
        return cfg, build_tinystories
    _check_overrides(overrides, ())
    return {"source": str(source), "files": fingerprint(source)}, build_local


def at_least(need: int, old_config: dict | None, config: dict) -> int:
    """The training tokens to prepare when at least `need` are wanted: more if a dataset prepared
    with otherwise the same settings (`config`, whatever its train_tokens) already holds more."""
    if not old_config or "train_tokens" not in old_config:
        return need
    same = {k: v for k, v in old_config.items() if k != "train_tokens"} == {k: v for k, v in config.items() if k != "train_tokens"}
    return max(need, int(old_config["train_tokens"])) if same else need


def _check_overrides(overrides: dict, allowed: tuple) -> None:
    bad = sorted(set(overrides) - set(allowed))
    if bad:
        raise TypeError(f"unexpected settings {bad}; allowed: {list(allowed)}")
