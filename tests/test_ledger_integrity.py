"""The ledger's guarantees without a training run: signed lines, forged or edited lines seen as
untrusted, a torn tail set aside instead of glued, a failed write rolled back, strict JSON."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from autoresearch_portable.errors import UserError
from autoresearch_portable.harness.records import ledger


def test_signed_lines_verify_and_forged_or_edited_ones_do_not(arp_cache_dir, tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger.append(path, dict(status="ok", metrics=dict(val_bpb=1.5)))
    with open(path, "a") as f:  # what a train.py could append
        f.write(json.dumps(dict(status="ok", metrics=dict(val_bpb=0.1), sig="00" * 32)) + "\n")
    edited = json.loads(path.read_text().splitlines()[0])
    edited["metrics"]["val_bpb"] = 0.2
    with open(path, "a") as f:
        f.write(json.dumps(edited) + "\n")
    recs = ledger.read(path)
    assert [bool(r.get(ledger.UNTRUSTED)) for r in recs] == [False, True, True]


def test_a_torn_tail_is_set_aside_not_glued(arp_cache_dir, tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger.append(path, dict(status="ok", n=1))
    with open(path, "ab") as f:
        f.write(b'{"status": "ok", "n": 2, "metr')  # a writer killed mid-line
    note = ledger.append(path, dict(status="ok", n=3))
    assert note and "torn" in note
    recs = ledger.read(path)
    assert [r["n"] for r in recs] == [1, 3] and not any(r.get(ledger.UNTRUSTED) for r in recs)
    assert b'"n": 2' in (tmp_path / "ledger.jsonl.torn").read_bytes()
    assert path.read_bytes().endswith(b"\n")


def test_a_failed_write_is_rolled_back_and_reported(arp_cache_dir, tmp_path, monkeypatch):
    path = tmp_path / "ledger.jsonl"
    ledger.append(path, dict(status="ok", n=1))
    size = path.stat().st_size
    real_write = os.write

    def disk_full(fd, data):
        real_write(fd, bytes(data)[:10])  # part of the line made it before the disk filled
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(UserError, match="No space left"):
        ledger.append(path, dict(status="ok", n=2))
    monkeypatch.setattr(os, "write", real_write)
    assert path.stat().st_size == size
    ledger.append(path, dict(status="ok", n=3))
    assert [r["n"] for r in ledger.read(path)] == [1, 3]


def test_non_finite_numbers_are_written_as_null(arp_cache_dir, tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger.append(path, dict(status="diverged", metrics=dict(val_bpb=float("nan"), x=[float("inf"), 1.0],
                                                             y=np.float64("nan").item())))
    line = path.read_text().splitlines()[0]
    rec = json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert rec["metrics"] == dict(val_bpb=None, x=[None, 1.0], y=None)
    assert not ledger.read(path)[0].get(ledger.UNTRUSTED)


def test_check_writable_refuses_a_path_it_cannot_create(tmp_path):
    (tmp_path / "results").write_text("not a folder")
    with pytest.raises(UserError, match="cannot write the ledger"):
        ledger.check_writable(tmp_path / "results" / "ledger.jsonl")
