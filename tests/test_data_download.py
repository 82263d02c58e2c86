"""Downloads against a loopback HTTP server on 127.0.0.1 that the tests start: normal transfer,
resume after a dropped connection, 404, corrupted files, offline, and climbmix/tinystories
prepared end to end from parquet files the tests write."""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from autoresearch_portable import paths
from autoresearch_portable.data import DataError, corpus, load, prepare
from autoresearch_portable.data.download import download_file, fetch_all, parquet_check


def parquet_bytes(texts: list[str], row_group_size: int = 64) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"text": texts, "id": list(range(len(texts)))}), buf, row_group_size=row_group_size)
    return buf.getvalue()


class Server:
    """Serves `files` (path -> bytes). Per-path behaviours in `modes`:
    drop   - the first response announces the full length, sends half, and closes the socket;
    404    - not found; corrupt_once - garbage on the first request; corrupt - garbage always;
    etag   - sends the sha256 as ETag; bad_etag - sends a wrong sha256 as ETag.
    Range requests are honoured (206). `log` records (path, Range header)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, set[str]] = {}
        self.log: list[tuple[str, str | None]] = []
        self.served: dict[str, int] = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path
                rng = self.headers.get("Range")
                outer.log.append((path, rng))
                n = outer.served[path] = outer.served.get(path, 0) + 1
                modes = outer.modes.get(path, set())
                if path not in outer.files or "404" in modes:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = outer.files[path]
                if "corrupt" in modes or ("corrupt_once" in modes and n == 1):
                    body = bytes(b ^ 0x5A for b in body)
                start = 0
                if rng and "drop" not in modes or (rng and n > 1):
                    start = int(rng.split("=")[1].split("-")[0])
                part = body[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(part)))
                if "etag" in modes:
                    self.send_header("ETag", '"' + hashlib.sha256(outer.files[path]).hexdigest() + '"')
                if "bad_etag" in modes:
                    self.send_header("ETag", '"' + "0" * 64 + '"')
                self.end_headers()
                if "drop" in modes and n == 1:
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(part)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARP_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _docs(seed: int, start: int, n: int) -> list[str]:
    return [corpus.generate_document(seed, i)[0] for i in range(start, start + n)]


FAST = dict(backoff=0.0, timeout=5.0)


def test_normal_download(server, tmp_path):
    data = parquet_bytes(_docs(0, 0, 50))
    server.files["/a.parquet"] = data
    server.modes["/a.parquet"] = {"etag"}
    rec = download_file(server.url + "/a.parquet", tmp_path / "a.parquet", validate=parquet_check, **FAST)
    assert (tmp_path / "a.parquet").read_bytes() == data
    assert rec == {"url": server.url + "/a.parquet", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert not (tmp_path / "a.parquet.part").exists()
    assert server.log == [("/a.parquet", None)]


def test_resume_after_dropped_connection(server, tmp_path):
    data = parquet_bytes(_docs(0, 0, 200))
    server.files["/b.parquet"] = data
    server.modes["/b.parquet"] = {"drop"}
    logs: list[str] = []
    rec = download_file(server.url + "/b.parquet", tmp_path / "b.parquet", validate=parquet_check, log=logs.append, **FAST)
    assert (tmp_path / "b.parquet").read_bytes() == data
    assert rec["sha256"] == hashlib.sha256(data).hexdigest()
    # the second request asked only for the missing tail
    assert server.log[0] == ("/b.parquet", None)
    assert server.log[1] == ("/b.parquet", f"bytes={len(data) // 2}-")
    assert any("resuming" in line for line in logs)


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    """A leftover part file and a server that answers 200 to a Range request: the part is
    overwritten, not appended to."""
    data = parquet_bytes(_docs(0, 0, 40))
    server.files["/c.parquet"] = data
    dest = tmp_path / "c.parquet"
    (tmp_path / "c.parquet.part").write_bytes(b"stale junk from an older, different file")
    handler = server.httpd.RequestHandlerClass
    orig = handler.do_GET

    def ignore_range(self):
        del self.headers["Range"]
        orig(self)

    handler.do_GET = ignore_range
    download_file(server.url + "/c.parquet", dest, validate=parquet_check, **FAST)
    assert dest.read_bytes() == data
    assert len(server.log) == 1


def test_404_fails_at_once_with_one_line(server, tmp_path):
    with pytest.raises(DataError) as e:
        download_file(server.url + "/missing.parquet", tmp_path / "m.parquet", **FAST)
    msg = str(e.value)
    assert "404" in msg and "\n" not in msg
    assert len(server.log) == 1  # not retried
    assert not list(tmp_path.iterdir())


def test_corrupted_file_is_deleted_and_fetched_again(server, tmp_path):
    data = parquet_bytes(_docs(0, 0, 30))
    server.files["/d.parquet"] = data
    server.modes["/d.parquet"] = {"corrupt_once"}
    logs: list[str] = []
    download_file(server.url + "/d.parquet", tmp_path / "d.parquet", validate=parquet_check, log=logs.append, **FAST)
    assert (tmp_path / "d.parquet").read_bytes() == data
    assert len(server.log) == 2 and server.log[1][1] is None  # a fresh fetch, not a resume
    assert any("not a readable parquet file" in line for line in logs)


def test_always_corrupted_file_fails(server, tmp_path):
    server.files["/e.parquet"] = parquet_bytes(_docs(0, 0, 10))
    server.modes["/e.parquet"] = {"corrupt"}
    with pytest.raises(DataError, match="after 3 attempts"):
        download_file(server.url + "/e.parquet", tmp_path / "e.parquet", validate=parquet_check, retries=3, **FAST)
    assert not (tmp_path / "e.parquet").exists() and not (tmp_path / "e.parquet.part").exists()


def test_checksum_mismatch_is_caught(server, tmp_path):
    server.files["/f.parquet"] = parquet_bytes(_docs(0, 0, 10))
    server.modes["/f.parquet"] = {"bad_etag"}
    with pytest.raises(DataError, match="does not match"):
        download_file(server.url + "/f.parquet", tmp_path / "f.parquet", retries=2, **FAST)
    assert not (tmp_path / "f.parquet").exists()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_offline_is_one_clear_line(tmp_path):
    port = _closed_port()
    with pytest.raises(DataError) as e:
        download_file(f"http://127.0.0.1:{port}/x.parquet", tmp_path / "x.parquet", **FAST)
    msg = str(e.value)
    assert msg.startswith(f"could not reach 127.0.0.1:{port}: ")
    assert msg.endswith("; check your network or use the bundled corpus") and "\n" not in msg


def test_prepare_climbmix_offline(cache, monkeypatch):
    monkeypatch.setattr("autoresearch_portable.data.download.BACKOFF", 0.0)
    monkeypatch.setenv("ARP_DATASET_BASE_URL", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(DataError, match=r"^could not reach 127\.0\.0\.1:\d+: .*use the bundled corpus$"):
        prepare("climbmix", num_shards=1, log=lambda m: None)
    assert not (paths.data_dir("climbmix") / "meta.json").exists()


def test_fetch_all_reuses_verified_files_and_refetches_damaged(server, tmp_path):
    files = {f"/s{i}.parquet": parquet_bytes(_docs(0, 10 * i, 10)) for i in range(3)}
    server.files.update(files)
    names = [p[1:] for p in files]
    recs = fetch_all(tmp_path, server.url, names, log=lambda m: None, backoff=0.0)
    assert [recs[n]["sha256"] for n in names] == [hashlib.sha256(b).hexdigest() for b in files.values()]
    assert len(server.log) == 3
    fetch_all(tmp_path, server.url, names, log=lambda m: None, backoff=0.0)
    assert len(server.log) == 3  # all reused
    (tmp_path / names[1]).write_bytes(b"PAR1 damaged")
    fetch_all(tmp_path, server.url, names, log=lambda m: None, backoff=0.0)
    assert server.log[3:] == [("/s1.parquet", None)]
    assert (tmp_path / names[1]).read_bytes() == files["/s1.parquet"]


def test_prepare_climbmix_end_to_end(server, cache, monkeypatch):
    server.files["/shard_00000.parquet"] = parquet_bytes(_docs(0, 0, 300))
    server.files["/shard_00001.parquet"] = parquet_bytes(_docs(0, 300, 300))
    server.files["/shard_06542.parquet"] = parquet_bytes(_docs(1, 0, 80))
    monkeypatch.setenv("ARP_DATASET_BASE_URL", server.url)
    logs: list[str] = []
    info = prepare("climbmix", num_shards=2, log=logs.append)
    assert info["already_prepared"] is False
    assert sorted(p for p, _ in server.log) == ["/shard_00000.parquet", "/shard_00001.parquet", "/shard_06542.parquet"]
    assert info["seq_len"] == 2048 and info["requested_vocab_size"] == 8192
    assert info["config"]["num_shards"] == 2
    for name, rec in info["sources"].items():
        assert rec["sha256"] == hashlib.sha256(server.files["/" + name]).hexdigest()
    assert info["splits"]["train"]["n_docs"] == 600 and info["splits"]["val"]["n_docs"] == 80
    ds = load("climbmix")
    assert ds.val_rows(2).shape == (2, 2049)
    assert next(ds.train_batches(2)).shape == (2, 2049)
    # again: a no-op that downloads nothing
    n = len(server.log)
    assert prepare("climbmix", num_shards=2, log=logs.append)["already_prepared"] is True
    assert len(server.log) == n
    # more shards: rebuild, downloading only the new one
    server.files["/shard_00002.parquet"] = parquet_bytes(_docs(0, 600, 100))
    info = prepare("climbmix", num_shards=3, log=logs.append)
    assert [p for p, _ in server.log[n:]] == ["/shard_00002.parquet"]
    assert info["splits"]["train"]["n_docs"] == 700


def test_prepare_tinystories_end_to_end(server, cache, monkeypatch):
    server.files["/tinystories_gpt4_clean.parquet"] = parquet_bytes(_docs(0, 0, 400))
    monkeypatch.setenv("ARP_DATASET_BASE_URL", server.url)
    info = prepare("tinystories", log=lambda m: None)
    assert info["seq_len"] == 512 and info["requested_vocab_size"] == 4096
    assert info["row_split"] == {"test": [0, 20], "val": [20, 40], "train": [40, 400]}
    assert info["splits"]["val"]["n_docs"] == 20 and info["splits"]["train"]["n_docs"] == 360
    ds = load("tinystories")
    first_val = ds.tokenizer.decode(ds._split_arrays("val")[3][0][1 : int(ds._split_arrays("val")[0][0])])
    assert first_val == corpus.generate_document(0, 20)[0]


def test_missing_text_column(server, cache, monkeypatch):
    buf = io.BytesIO()
    pq.write_table(pa.table({"body": ["x"] * 50}), buf)
    server.files["/tinystories_gpt4_clean.parquet"] = buf.getvalue()
    monkeypatch.setenv("ARP_DATASET_BASE_URL", server.url)
    with pytest.raises(DataError, match="no 'text' column"):
        prepare("tinystories", log=lambda m: None)

