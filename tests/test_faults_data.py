"""Faults in the data layer (issue 16): a same-size corruption inside a cached shard, the cache
deleted mid-run, and local datasets too small or too oddly shaped to run on."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from autoresearch_portable import paths
from autoresearch_portable.data import DataError, check_usable, corpus, load, prepare
from autoresearch_portable.data.common import local_name

QUIET = dict(log=lambda m: None)
# shards larger than the 2 x 64 KiB that the quick checksum reads, so a flip in the middle is
# invisible to it
MID = dict(train_bytes=400_000, val_bytes=400_000)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARP_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _poke_token(path, value: int = 0xFFFF) -> None:
    """Overwrite one uint16 token in the middle of a .npy shard, keeping the size."""
    arr = np.load(path, mmap_mode="r+")
    assert arr.nbytes > 3 * (1 << 16), "the shard must be larger than the quick checksum's reach"
    arr[len(arr) // 2] = value
    arr.flush()
    del arr


def test_same_size_corruption_in_a_validation_shard(cache):
    prepare("bundled", **MID, **QUIET)
    ddir = paths.data_dir("bundled")
    _poke_token(ddir / "val-00000.tokens.npy")
    # loading checks only the ends of each file; the validation shards are range-checked on use
    ds = load("bundled")
    with pytest.raises(DataError, match=r"^dataset 'bundled' is damaged \(val-00000\.tokens\.npy holds token 65535 >= vocab size \d+\); run `arp prepare --dataset bundled`$"):
        ds.val_rows(4)
    with pytest.raises(DataError, match="holds token 65535"):
        check_usable("bundled")
    # prepare re-hashes every file: it rebuilds instead of saying "already prepared"
    logs: list[str] = []
    info = prepare("bundled", **MID, log=logs.append)
    assert info["already_prepared"] is False
    assert any("rebuilding (val-00000.tokens.npy fails its checksum)" in line for line in logs)
    assert check_usable("bundled").val_rows(4).max() < info["vocab_size"]


def test_same_size_corruption_in_a_training_shard(cache):
    prepare("bundled", **MID, **QUIET)
    _poke_token(paths.data_dir("bundled") / "train-00000.tokens.npy")
    batches = load("bundled").train_batches(8, seed=0)
    with pytest.raises(DataError, match=r"is damaged \(a training row holds token 65535 >= vocab size"):
        for _ in range(200):  # well over one epoch of this small split
            next(batches)


def test_cache_deleted_mid_run(cache):
    prepare("bundled", train_bytes=100_000, val_bytes=20_000, **QUIET)
    check_usable("bundled")
    ds = load("bundled")  # as in a training process: the validation split is opened at evaluation
    batches = ds.train_batches(2)
    next(batches)
    ddir = paths.data_dir("bundled")
    for p in ddir.glob("val-*"):
        p.unlink()
    # the evaluation path: one clear DataError, never a FileNotFoundError
    with pytest.raises(DataError, match=r"^dataset 'bundled' is damaged \(a shard file is missing: val-00000\.tokens\.npy\); run `arp prepare --dataset bundled`$"):
        ds.val_rows(2)
    with pytest.raises(DataError, match=r"not prepared \(stale cache: val-00000\.\w+\.npy is missing\)"):
        check_usable("bundled")
    shutil.rmtree(ddir)
    with pytest.raises(DataError, match=r"^dataset 'bundled' is not prepared; run `arp prepare --dataset bundled`$"):
        check_usable("bundled")
    # a dataset opened before the deletion fails the same way when it opens the training split
    ds._arrays.clear()
    with pytest.raises(DataError, match="a shard file is missing: train-00000"):
        ds.train_batches(2)


def test_check_usable_wants_enough_validation_rows(cache):
    prepare("bundled", train_bytes=100_000, val_bytes=20_000, **QUIET)
    n = load("bundled").max_val_rows
    assert check_usable("bundled", min_val_rows=n).max_val_rows == n
    with pytest.raises(DataError, match=rf"has {n} validation rows of 1025 tokens \(at least {n + 1} needed\)"):
        check_usable("bundled", min_val_rows=n + 1)


def test_two_tiny_documents_are_refused(cache, tmp_path):
    f = tmp_path / "tiny.txt"
    f.write_text("The cat sat on the mat.\n\nThe dog sat on the log.\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        prepare(str(f), **QUIET)
    msg = str(e.value)
    assert "\n" not in msg
    assert "the validation split fills 0 rows of 33 tokens, at least 4 are needed" in msg
    assert "add documents (or a val.txt file" in msg
    # nothing half-built is left for anything to trust
    with pytest.raises(DataError, match="not prepared"):
        load(str(f))
    assert not list(paths.data_dir(local_name(f)).glob("*.npy"))


def test_two_huge_single_line_documents_are_refused(cache, tmp_path):
    """Two documents of one line each, far longer than a row: almost every token would be
    cropped away (the issue's case was 2 x 21 MB; 2 x 300 kB shows the same)."""
    line = " ".join(corpus.generate_document(0, i)[0].replace("\n", " ") for i in range(400))
    f = tmp_path / "huge.txt"
    f.write_text(line[:300_000] + "\n" + line[300_000:600_000] + "\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        prepare(str(f), **QUIET)
    msg = str(e.value)
    assert "\n" not in msg
    assert "% of the train tokens" in msg and "would be dropped; split the text into shorter documents" in msg


def test_cropping_is_reported_and_recorded(cache, tmp_path):
    docs = [corpus.generate_document(0, i)[0].replace("\n\n", "\n") for i in range(120)]
    docs[3] = " ".join(docs[3:8]).replace("\n", " ")  # one long document among many normal ones
    f = tmp_path / "mixed.txt"
    f.write_text("\n\n".join(docs), encoding="utf-8")
    logs: list[str] = []
    info = prepare(str(f), log=logs.append)
    cropped = info["splits"]["train"]["cropped_tokens"]
    assert cropped > 0
    assert any("are in document tails beyond" in line and f"({cropped:,})" in line for line in logs)
    assert info["splits"]["val"]["rows"] == load(str(f)).max_val_rows >= 4
