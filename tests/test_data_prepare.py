"""prepare(): what it writes, the no-op second run, and rebuilding stale or damaged caches."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from autoresearch_portable import paths
from autoresearch_portable.data import DATASETS, DataError, corpus, load, prepare
from autoresearch_portable.data import common, store
from autoresearch_portable.data.store import sha256_file
from autoresearch_portable.errors import UserError

TINY = dict(train_bytes=100_000, val_bytes=20_000)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache, so these tests never disturb the session's small_bundled dataset."""
    monkeypatch.setenv("ARP_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def logs():
    lines: list[str] = []
    return lines


def _prep(logs, **kw):
    return prepare("bundled", log=logs.append, **{**TINY, **kw})


def test_prepare_writes_dataset_and_metadata(cache, logs):
    info = _prep(logs)
    assert info["already_prepared"] is False
    ddir = paths.data_dir("bundled")
    assert info["dir"] == str(ddir) and ddir.is_relative_to(cache)
    meta = json.loads((ddir / "meta.json").read_text())
    assert meta["dataset"] == "bundled"
    # this tiny corpus supports fewer than 4096 tokens; the full-size one gets exactly 4096
    assert meta["requested_vocab_size"] == DATASETS["bundled"]["vocab_size"] == 4096
    assert 3000 < meta["vocab_size"] <= 4096
    assert meta["seq_len"] == DATASETS["bundled"]["seq_len"] == 1024
    assert meta["bos_id"] == meta["vocab_size"] - 1
    assert meta["generator_version"] == corpus.GENERATOR_VERSION
    assert meta["config"]["train_bytes"] == TINY["train_bytes"]
    # every listed file exists with the recorded size and sha256
    for name, rec in meta["files"].items():
        assert os.path.getsize(ddir / name) == rec["size"]
        assert sha256_file(ddir / name) == rec["sha256"]
    # shards: uint16 tokens with BOS before every document, offsets into them
    sh = meta["splits"]["train"]["shards"][0]
    tokens = np.load(ddir / sh["tokens"])
    offsets = np.load(ddir / sh["docs"])
    assert tokens.dtype == np.uint16 and offsets.dtype == np.int64
    assert offsets[0] == 0 and offsets[-1] == len(tokens) == sh["n_tokens"]
    bos = meta["bos_id"]
    assert (tokens[offsets[:-1]] == bos).all()
    assert (tokens == bos).sum() == sh["n_docs"]
    assert meta["splits"]["train"]["text_bytes"] >= TINY["train_bytes"]
    # the floor is the validation documents' total information over their bytes
    docs = []
    n = 0
    while n < TINY["val_bytes"]:
        docs.append(corpus.generate_document(corpus.VAL_SEED, len(docs)))
        n += len(docs[-1][0].encode())
    floor = sum(b for _, b in docs) / n
    assert meta["floor_bpb"] == pytest.approx(floor, rel=1e-12)
    assert meta["splits"]["val"]["n_docs"] == len(docs)
    assert any("floor" in line for line in logs)
    assert not [p for p in ddir.iterdir() if p.name.endswith(".tmp")]


def test_second_call_is_a_noop(cache, logs):
    _prep(logs)
    ddir = paths.data_dir("bundled")
    mtimes = {p.name: p.stat().st_mtime_ns for p in ddir.iterdir()}
    logs.clear()
    info = _prep(logs)
    assert info["already_prepared"] is True
    assert any("already prepared" in line for line in logs)
    assert {p.name: p.stat().st_mtime_ns for p in ddir.iterdir()} == mtimes
    assert load("bundled").meta["files"] == info["files"]


def test_changed_settings_rebuild(cache, logs):
    _prep(logs)
    logs.clear()
    info = _prep(logs, train_bytes=200_000)
    assert info["already_prepared"] is False
    assert any("rebuilding (settings changed)" in line for line in logs)
    assert load("bundled").meta["config"]["train_bytes"] == 200_000


def test_force_rebuilds(cache, logs):
    _prep(logs)
    logs.clear()
    assert _prep(logs, force=True)["already_prepared"] is False
    assert any("rebuilding (forced)" in line for line in logs)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_damaged_cache_is_detected_and_rebuilt(cache, logs, damage):
    _prep(logs)
    ddir = paths.data_dir("bundled")
    victim = ddir / "train-00000.tokens.npy"
    if damage == "flip":
        data = bytearray(victim.read_bytes())
        data[200] ^= 0xFF
        victim.write_bytes(bytes(data))
    elif damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:-10])
    else:
        victim.unlink()
    with pytest.raises(DataError, match=r"dataset 'bundled' is not prepared \(stale cache: .*tokens\.npy"):
        load("bundled")
    logs.clear()
    assert _prep(logs)["already_prepared"] is False
    assert any("rebuilding" in line and "tokens.npy" in line for line in logs)
    load("bundled")


def test_generator_version_change_makes_cache_stale(cache, logs, monkeypatch):
    _prep(logs)
    monkeypatch.setattr(common, "GENERATOR_VERSION", common.GENERATOR_VERSION + 1)
    with pytest.raises(DataError, match="generator version changed"):
        load("bundled")
    logs.clear()
    assert _prep(logs)["generator_version"] == common.GENERATOR_VERSION
    assert any("generator version changed" in line for line in logs)


def test_interrupted_prepare_leaves_nothing_trusted(cache, logs, monkeypatch):
    _prep(logs)
    real_close = store.ShardWriter.close

    def close(self):
        if self.stem.startswith("val"):
            raise KeyboardInterrupt
        return real_close(self)

    monkeypatch.setattr(store.ShardWriter, "close", close)
    with pytest.raises(KeyboardInterrupt):
        _prep(logs, force=True)
    ddir = paths.data_dir("bundled")
    assert not (ddir / "meta.json").exists()
    with pytest.raises(DataError, match=r"^dataset 'bundled' is not prepared; run `arp prepare --dataset bundled`$"):
        load("bundled")
    monkeypatch.setattr(store.ShardWriter, "close", real_close)
    assert _prep(logs)["already_prepared"] is False
    load("bundled")


def test_not_prepared_and_unknown_datasets(cache):
    with pytest.raises(DataError) as e:
        load("bundled")
    assert str(e.value) == "dataset 'bundled' is not prepared; run `arp prepare --dataset bundled`"
    assert isinstance(e.value, UserError) and "\n" not in str(e.value)
    with pytest.raises(DataError, match="not prepared"):
        load("climbmix")
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        load("nope")
    with pytest.raises(DataError, match="no such file"):
        prepare("/definitely/not/here.txt")
    with pytest.raises(DataError, match="num-shards"):
        prepare("bundled", num_shards=3)
    with pytest.raises(TypeError):
        prepare("bundled", bogus=1)


def test_default_size_is_large():
    spec = DATASETS["bundled"]
    assert spec["train_bytes"] >= 20_000_000 and 1_000_000 <= spec["val_bytes"] <= 8_000_000
    assert DATASETS["climbmix"]["vocab_size"] == 8192 and DATASETS["climbmix"]["seq_len"] == 2048
    assert DATASETS["tinystories"]["vocab_size"] == 4096 and DATASETS["tinystories"]["seq_len"] == 512


def test_parallel_generation_matches_serial(cache, logs, monkeypatch):
    """Training text made in worker processes is the same as made in-process."""
    import importlib

    P = importlib.import_module("autoresearch_portable.data.bundled")
    chunks = importlib.import_module("autoresearch_portable.data.chunks")

    monkeypatch.setattr(P, "PARALLEL_MIN_BYTES", 10**12)
    serial = _prep(logs, train_bytes=120_000)
    assert not any("processes" in line for line in logs)
    a = np.load(paths.data_dir("bundled") / "train-00000.tokens.npy")
    monkeypatch.setattr(P, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(chunks, "CHUNK_DOCS", 37)
    monkeypatch.setenv("ARP_PREPARE_WORKERS", "2")
    par = _prep(logs, train_bytes=120_000, force=True)
    b = np.load(paths.data_dir("bundled") / "train-00000.tokens.npy")
    assert np.array_equal(a, b)
    assert serial["splits"]["train"]["text_bytes"] == par["splits"]["train"]["text_bytes"]
    assert any("processes" in line for line in logs)


def test_concurrent_prepares_build_once(cache):
    """Two processes preparing the same dataset: one builds, the other waits and finds it done."""
    import subprocess
    import sys

    code = (
        "from autoresearch_portable.data import prepare; "
        "print(prepare('bundled', train_bytes=100_000, val_bytes=20_000, log=lambda m: None)['already_prepared'])"
    )
    env = {**os.environ, "ARP_CACHE_DIR": str(cache)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert outs == ["False", "True"]
    load("bundled")
