"""bundled-v2's training split: sized in tokens, the same tokens at the same index for every
size and worker count, resumable after an interruption, and sized to the device by `arp prepare`."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from autoresearch_portable import paths
from autoresearch_portable.data import corpus2, load
from autoresearch_portable.data.build import at_least, prepare
from autoresearch_portable.data.store import PROGRESS
from autoresearch_portable.harness.baseline import sizing
from autoresearch_portable.harness.baseline.datasize import baseline_tokens, device_train_tokens

SMALL = dict(val_bytes=20_000, tokenizer_train_bytes=200_000, shard_docs=16)


class Interrupt(BaseException):
    """Stands for Ctrl-C (or a killed process) in the middle of a prepare."""


def _prep(cache: Path, monkeypatch, log=None, **kw) -> dict:
    monkeypatch.setenv("ARP_CACHE_DIR", str(cache))
    return prepare("bundled-v2", log=log or (lambda m: None), **{**SMALL, **kw})


def _train_tokens(ddir: Path, info: dict) -> np.ndarray:
    return np.concatenate([np.load(ddir / s["tokens"]) for s in info["splits"]["train"]["shards"]])


def _dir() -> Path:
    return paths.data_dir("bundled-v2")


def test_two_sizes_and_worker_counts_agree_on_their_common_prefix(tmp_path, monkeypatch):
    small = _prep(tmp_path / "a", monkeypatch, train_tokens=20_000)
    a, val_a, tok_a = _train_tokens(_dir(), small), np.load(_dir() / "val-00000.tokens.npy"), (_dir() / "tokenizer.json").read_bytes()
    monkeypatch.setattr(importlib.import_module("autoresearch_portable.data.chunks"), "CHUNK_DOCS", 5)
    monkeypatch.setattr(importlib.import_module("autoresearch_portable.data.bundled"), "PARALLEL_MIN_TOKENS", 0)
    monkeypatch.setenv("ARP_PREPARE_WORKERS", "2")
    logs: list[str] = []
    big = _prep(tmp_path / "b", monkeypatch, log=logs.append, train_tokens=50_000)
    assert any("in 2 processes" in m for m in logs)
    b = _train_tokens(_dir(), big)
    assert len(a) >= 20_000 and len(b) >= 50_000 and np.array_equal(a, b[: len(a)])
    assert np.array_equal(val_a, np.load(_dir() / "val-00000.tokens.npy"))
    assert tok_a == (_dir() / "tokenizer.json").read_bytes()
    # the split ends with the first document that reaches the target, not a token later
    last = np.load(_dir() / big["splits"]["train"]["shards"][-1]["docs"])
    assert len(b) - int(np.diff(last)[-1]) < 50_000
    # and its first document is document 0 of the training stream
    ds = load("bundled-v2")
    first = ds.tokenizer.encode(corpus2.generate_document(0, 0)[0])
    assert b[0] == ds.bos_id and list(b[1 : 1 + len(first)]) == first
    assert big["splits"]["train"]["n_docs"] > 3 * SMALL["shard_docs"]  # several shards, and a tail


def test_an_interrupted_prepare_continues_from_its_finished_shards(tmp_path, monkeypatch):
    def stop_after_two(msg: str) -> None:
        if "shard 1 done" in msg:
            raise Interrupt()

    with pytest.raises(Interrupt):
        _prep(tmp_path / "c", monkeypatch, log=stop_after_two, train_tokens=40_000)
    assert not (_dir() / "meta.json").exists()  # nothing trusts the folder
    assert [s["index"] for s in json.loads((_dir() / PROGRESS).read_text())["shards"]] == [0, 1]
    kept = (_dir() / "train-00000.tokens.npy").stat().st_ino
    logs: list[str] = []
    resumed = _prep(tmp_path / "c", monkeypatch, log=logs.append, train_tokens=40_000)
    assert any("reusing the tokenizer" in m for m in logs) and any("reusing 2 finished shard" in m for m in logs)
    assert not any("training the tokenizer" in m for m in logs)
    assert (_dir() / "train-00000.tokens.npy").stat().st_ino == kept  # not written again
    got = _train_tokens(_dir(), resumed)
    n_docs = load("bundled-v2").meta["splits"]["train"]["n_docs"]
    fresh = _prep(tmp_path / "d", monkeypatch, train_tokens=40_000)
    assert np.array_equal(got, _train_tokens(_dir(), fresh))
    assert resumed["splits"]["train"]["n_tokens"] == fresh["splits"]["train"]["n_tokens"]
    assert n_docs == fresh["splits"]["train"]["n_docs"]


def test_a_damaged_finished_shard_is_made_again(tmp_path, monkeypatch):
    first = _prep(tmp_path / "e", monkeypatch, train_tokens=30_000)
    reference = _train_tokens(_dir(), first)
    shard = _dir() / "train-00001.tokens.npy"
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF
    shard.write_bytes(bytes(data))
    (_dir() / "meta.json").unlink()  # as if interrupted after the damage
    logs: list[str] = []
    again = _prep(tmp_path / "e", monkeypatch, log=logs.append, train_tokens=30_000)
    assert any("reusing 1 finished shard" in m for m in logs)
    assert np.array_equal(_train_tokens(_dir(), again), reference)


def test_a_larger_split_grows_from_the_smaller_one_and_min_tokens_keeps_a_larger_one(tmp_path, monkeypatch):
    _prep(tmp_path / "f", monkeypatch, train_tokens=20_000)
    logs: list[str] = []
    grown = _prep(tmp_path / "f", monkeypatch, log=logs.append, train_tokens=30_000)
    assert any("rebuilding (settings changed)" in m for m in logs) and any("reusing" in m and "shard" in m for m in logs)
    assert grown["config"]["train_tokens"] == 30_000
    kept = prepare("bundled-v2", log=lambda m: None, min_train_tokens=25_000, **SMALL)
    assert kept["already_prepared"] and kept["config"]["train_tokens"] == 30_000


def test_at_least_keeps_a_larger_prepared_split_only_with_the_same_settings():
    cfg = dict(train_tokens=100, val_bytes=5, shard_docs=8)
    assert at_least(50, dict(cfg), cfg) == 100
    assert at_least(500, dict(cfg), cfg) == 500
    assert at_least(50, dict(cfg, val_bytes=6), cfg) == 50
    assert at_least(50, None, cfg) == 50


def test_bad_sizes_are_one_line_errors(tmp_path, monkeypatch):
    from autoresearch_portable.data import DataError

    with pytest.raises(DataError, match="between 10000"):
        _prep(tmp_path / "g", monkeypatch, train_tokens=10)
    with pytest.raises(TypeError):
        _prep(tmp_path / "g", monkeypatch, train_bytes=100_000)


# --- sizing the split to the device --------------------------------------------------------------

def test_train_tokens_needed_has_a_margin_a_floor_a_cap_and_powers_of_two():
    assert sizing.train_tokens_needed(1e6, 1 << 24) == 1 << 24  # a CPU: the default
    assert sizing.train_tokens_needed(100e6, 1 << 24) == 1 << 28  # 150M -> 2^28
    assert sizing.train_tokens_needed(90e6, 1 << 24) == sizing.train_tokens_needed(100e6, 1 << 24)
    assert sizing.train_tokens_needed(1e12, 1 << 24) == sizing.MAX_SIZED_TRAIN_TOKENS


def test_an_h100_gets_at_least_600m_tokens_and_the_ci_cpu_the_default():
    from test_sizing import probe_and_plan

    probe, plan = probe_and_plan("h100_sxm")
    n, why = device_train_tokens(probe, plan, 300, log=lambda m: None)  # datasheet peak: nothing measured
    assert n >= 600_000_000
    assert "datasheet" in why and f"{n / 1e6:.0f}M training tokens" in why
    # the CI box's measured fp32 matmul peak (~90 GFLOP/s): its baseline trains on a few M tokens
    assert baseline_tokens(90e9, 300, 1024, 4096, 8e9) < 1 << 24
    assert sizing.train_tokens_needed(baseline_tokens(90e9, 300, 1024, 4096, 8e9), 1 << 24) == 1 << 24
