"""Local text as a dataset: .txt / .jsonl / .parquet files and folders."""

from __future__ import annotations

import json
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from autoresearch_portable import paths
from autoresearch_portable.data import DataError, corpus, load, prepare
from autoresearch_portable.data.common import local_name
from autoresearch_portable.data.local import is_val_file, read_docs

QUIET = dict(log=lambda m: None)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARP_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _docs(n: int, start: int = 0) -> list[str]:
    return [corpus.generate_document(0, i)[0].replace("\n\n", "\n") for i in range(start, start + n)]


def test_txt_file_blank_line_separated(cache, tmp_path):
    docs = _docs(120)
    f = tmp_path / "My Notes.txt"
    f.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    logs: list[str] = []
    info = prepare(str(f), log=logs.append)
    name = info["dataset"]
    assert re.fullmatch(r"local-My-Notes-[0-9a-f]{8}", name) and name == local_name(f)
    assert paths.data_dir(name).is_dir()
    assert info["splits"]["train"]["n_docs"] == 114 and info["splits"]["val"]["n_docs"] == 6  # last 5%
    assert info["split"]["validation"] == "last 6 of 120 documents"
    # ~110 KB of text: a smaller vocabulary and sequence length, recorded
    assert info["requested_vocab_size"] == 512 and info["vocab_size"] <= 512
    assert info["seq_len"] < 1024
    for key in (str(f), name):
        ds = load(key)
        assert ds.name == name and ds.seq_len == info["seq_len"] and ds.vocab_size == info["vocab_size"]
    val = ds._split_arrays("val")
    first = ds.tokenizer.decode(val[3][0][1 : int(val[0][0])])
    assert first == docs[114]
    assert ds.val_rows(ds.max_val_rows).shape[0] >= 4
    # second run: nothing to do; by name too
    assert prepare(str(f), **QUIET)["already_prepared"] is True
    assert prepare(name, **QUIET)["already_prepared"] is True
    # the file changes: stale, then rebuilt
    f.write_text("\n\n".join(docs[:100]) + "\n", encoding="utf-8")
    os.utime(f, ns=(1, 1))
    with pytest.raises(DataError, match="stale cache: source files changed"):
        load(str(f))
    info = prepare(str(f), log=logs.append)
    assert info["already_prepared"] is False and info["splits"]["val"]["n_docs"] == 5
    assert any("rebuilding (source files changed)" in line for line in logs)


def test_txt_one_document_per_line(tmp_path):
    f = tmp_path / "lines.txt"
    f.write_text("first doc\nsecond doc\r\n\n \n\nthird\n", encoding="utf-8")
    assert read_docs(f) == ["first doc\nsecond doc", "third"]  # blank lines separate documents
    g = tmp_path / "flat.txt"
    g.write_text("a b c\nd e f\ng h\n", encoding="utf-8")
    assert read_docs(g) == ["a b c", "d e f", "g h"]


def test_jsonl_and_errors(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"text": "héllo"}) + "\n\n" + json.dumps({"text": "world", "id": 2}) + "\n")
    assert read_docs(f) == ["héllo", "world"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{not json}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl line 2: not valid JSON"):
        read_docs(bad)
    nofield = tmp_path / "nofield.jsonl"
    nofield.write_text('{"body": "x"}\n')
    with pytest.raises(DataError, match="no string field 'text'"):
        read_docs(nofield)


def test_parquet_and_errors(tmp_path):
    f = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a", None, "", "b"], "n": [1, 2, 3, 4]}), f)
    assert read_docs(f) == ["a", "b"]
    g = tmp_path / "g.parquet"
    pq.write_table(pa.table({"body": ["a"]}), g)
    with pytest.raises(DataError, match="no 'text' column"):
        read_docs(g)
    h = tmp_path / "h.parquet"
    h.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable parquet file"):
        read_docs(h)


def test_folder_with_validation_file(cache, tmp_path):
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    docs = _docs(90)
    (folder / "a.txt").write_text("\n\n".join(docs[:40]), encoding="utf-8")
    with open(folder / "sub" / "b.jsonl", "w", encoding="utf-8") as fh:
        for d in docs[40:80]:
            fh.write(json.dumps({"text": d}) + "\n")
    pq.write_table(pa.table({"text": docs[80:]}), folder / "validation.parquet")
    info = prepare(str(folder), **QUIET)
    assert info["dataset"].startswith("local-corpus-")
    assert info["split"] == {"validation": "files", "val_files": ["validation.parquet"]}
    assert info["splits"]["train"]["n_docs"] == 80 and info["splits"]["val"]["n_docs"] == 10
    ds = load(str(folder))
    assert next(ds.train_batches(2)).shape == (2, ds.seq_len + 1)


def test_val_file_names():
    from pathlib import Path

    for n in ("val.txt", "valid.jsonl", "val-00.parquet", "val_1.txt", "my_validation.txt", "VALIDATION.txt"):
        assert is_val_file(Path(n)), n
    for n in ("valley.txt", "train.txt", "interval.txt", "data.jsonl"):
        assert not is_val_file(Path(n)), n


def test_bad_inputs(cache, tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        prepare(str(tmp_path / "nope.txt"), **QUIET)
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported file type"):
        prepare(str(tmp_path / "x.csv"), **QUIET)
    (tmp_path / "one.txt").write_text("just one document")
    with pytest.raises(DataError, match="at least 2 documents"):
        prepare(str(tmp_path / "one.txt"), **QUIET)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no .txt, .jsonl or .parquet files"):
        prepare(str(empty), **QUIET)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n\nbar".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        prepare(str(tmp_path / "latin1.txt"), **QUIET)
    with pytest.raises(DataError, match="not prepared"):
        load(str(tmp_path / "one.txt"))
