import json
import multiprocessing as mp

from autoresearch_portable.harness.records import ledger


def _writer(path, worker, n):
    for i in range(n):
        ledger.append(path, {"worker": worker, "i": i, "pad": "x" * 5000})


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / "results" / "ledger.jsonl"
    procs = [mp.get_context("spawn").Process(target=_writer, args=(str(path), w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    lines = path.read_text().splitlines()
    assert len(lines) == 160
    recs = [json.loads(l) for l in lines]  # every line is a whole record
    assert sorted((r["worker"], r["i"]) for r in recs) == [(w, i) for w in range(4) for i in range(40)]


def test_reader_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger.append(path, {"a": 1})
    with open(path, "a") as f:
        f.write('{"b": ')  # a writer killed mid-line (not possible through append, but be safe)
    assert [{k: v for k, v in r.items() if k != "sig"} for r in ledger.read(path)] == [{"a": 1}]
    assert ledger.read(tmp_path / "missing.jsonl") == []
