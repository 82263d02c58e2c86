"""Downloads that never finish, never end, or come from a moving branch (issue 16), against a
loopback HTTP server: an overall deadline per file, a size cap, a pinned hub revision and
known checksums."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
import time

import pytest

from autoresearch_portable.data import DATASETS, DataError
from autoresearch_portable.data.common import KNOWN_SHA256, base_url
from autoresearch_portable.data.download import Manifest, download_file, fetch_all

FAST = dict(backoff=0.0, timeout=5.0)
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Hub:
    """A loopback server. `files`: path -> bytes. `drip`: paths sent one byte per `drip_seconds`
    (announcing their full length); `endless`: paths streamed without a length, forever (until
    the client hangs up); `commit`: sent as X-Repo-Commit on every answer when set."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drip: set[str] = set()
        self.endless: set[str] = set()
        self.drip_seconds = 1.5
        self.commit: str | None = None
        self.log: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.log.append(self.path)
                if self.path in outer.endless:
                    self.send_response(200)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    try:
                        while True:
                            self.wfile.write(b"x" * 65536)
                    except OSError:
                        return
                body = outer.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                if outer.commit:
                    self.send_header("X-Repo-Commit", outer.commit)
                self.end_headers()
                if self.path in outer.drip:
                    try:
                        for b in body:
                            self.wfile.write(bytes([b]))
                            self.wfile.flush()
                            time.sleep(outer.drip_seconds)
                    except OSError:
                        pass
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hub():
    h = Hub()
    yield h
    h.close()


def test_a_dripping_server_fails_at_the_deadline(hub, tmp_path):
    # 1 byte per 1.5 s never trips the 5 s per-read timeout; only the overall deadline ends it
    hub.files["/slow.bin"] = b"y" * 100
    hub.drip.add("/slow.bin")
    t0 = time.monotonic()
    with pytest.raises(DataError) as e:
        download_file(hub.url + "/slow.bin", tmp_path / "slow.bin", deadline=3.0, **FAST)
    took = time.monotonic() - t0
    msg = str(e.value)
    assert "\n" not in msg and re.search(r"did not finish within 3 s \(\d+ bytes received\)", msg)
    assert took < 3.0 + 5.0  # the deadline, plus at most one read's timeout
    assert (tmp_path / "slow.bin.part").exists() and not (tmp_path / "slow.bin").exists()  # kept to resume


def test_an_announced_file_over_the_cap_is_refused_at_once(hub, tmp_path):
    hub.files["/big.bin"] = b"z" * 5000
    with pytest.raises(DataError, match=r"is larger than the .* limit for one file \(5000 bytes\)"):
        download_file(hub.url + "/big.bin", tmp_path / "big.bin", max_bytes=4096, **FAST)
    assert hub.log == ["/big.bin"]  # not retried
    assert not list(tmp_path.iterdir())


def test_an_endless_stream_is_cut_at_the_cap(hub, tmp_path):
    hub.endless.add("/forever.bin")
    with pytest.raises(DataError, match="limit for one file"):
        download_file(hub.url + "/forever.bin", tmp_path / "forever.bin", max_bytes=1 << 20, **FAST)
    assert not list(tmp_path.iterdir())  # nothing left filling the disk


def test_named_datasets_pin_a_revision_not_main(monkeypatch):
    monkeypatch.delenv("ARP_DATASET_BASE_URL", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    for name in ("climbmix", "tinystories"):
        url = base_url(name)
        assert url == f"https://huggingface.co/datasets/{DATASETS[name]['hub_repo']}/resolve/{{revision}}"
        rev = DATASETS[name]["revision"]
        assert rev is None or re.fullmatch(r"[0-9a-f]{40}", rev)
        assert isinstance(KNOWN_SHA256[name], dict)


def _hub_files(hub, revs: list[str], names: list[str]) -> dict[str, bytes]:
    data = {n: hashlib.sha256(n.encode()).digest() * 10 for n in names}
    for rev in revs:
        for n, b in data.items():
            hub.files[f"/datasets/u/d/resolve/{rev}/{n}"] = b
    return data


def test_the_first_download_pins_the_commit_for_every_later_file(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    base = f"{hub.url}/datasets/u/d/resolve/{{revision}}"
    _hub_files(hub, ["main", COMMIT], ["a.bin", "b.bin", "c.bin"])
    hub.commit = COMMIT
    recs = fetch_all(tmp_path, base, ["a.bin", "b.bin"], log=lambda m: None, validate=None, backoff=0.0)
    assert hub.log[0] == "/datasets/u/d/resolve/main/a.bin"  # learns what main is ...
    assert hub.log[1:] == [f"/datasets/u/d/resolve/{COMMIT}/b.bin"]  # ... and stays there
    assert recs["a.bin"]["url"].endswith(f"/resolve/{COMMIT}/a.bin") and recs["a.bin"]["commit"] == COMMIT
    assert Manifest(tmp_path).revision == COMMIT
    # later, with main moved on: new files still come from the recorded commit; old ones are reused
    hub.commit, n = "f" * 40, len(hub.log)
    fetch_all(tmp_path, base, ["a.bin", "b.bin", "c.bin"], log=lambda m: None, validate=None, backoff=0.0)
    assert hub.log[n:] == [f"/datasets/u/d/resolve/{COMMIT}/c.bin"]


def test_a_pinned_revision_is_used_from_the_first_file(hub, tmp_path):
    base = f"{hub.url}/datasets/u/d/resolve/{{revision}}"
    _hub_files(hub, [COMMIT], ["a.bin"])
    fetch_all(tmp_path, base, ["a.bin"], log=lambda m: None, validate=None, backoff=0.0, revision=COMMIT)
    assert hub.log == [f"/datasets/u/d/resolve/{COMMIT}/a.bin"]
    # a different pinned revision: the file from the old one is not trusted
    other = "e" * 40
    _hub_files(hub, [other], ["a.bin"])
    logs: list[str] = []
    fetch_all(tmp_path, base, ["a.bin"], log=logs.append, validate=None, backoff=0.0, revision=other)
    assert hub.log[-1] == f"/datasets/u/d/resolve/{other}/a.bin"
    assert any("pinned revision changed" in line for line in logs)


def test_known_checksums_are_verified_on_download_and_reuse(hub, tmp_path):
    base = f"{hub.url}/datasets/u/d/resolve/{{revision}}"
    data = _hub_files(hub, [COMMIT], ["a.bin"])
    good = {"a.bin": hashlib.sha256(data["a.bin"]).hexdigest()}
    fetch_all(tmp_path, base, ["a.bin"], log=lambda m: None, validate=None, backoff=0.0, revision=COMMIT, known=good)
    n = len(hub.log)
    fetch_all(tmp_path, base, ["a.bin"], log=lambda m: None, validate=None, backoff=0.0, revision=COMMIT, known=good)
    assert len(hub.log) == n  # reused: it matches
    # a server handing out something else (the fake file) is refused after the retries
    with pytest.raises(DataError, match="does not match the known checksum"):
        fetch_all(tmp_path, base, ["a.bin"], log=lambda m: None, validate=None, backoff=0.0, retries=2,
                  revision=COMMIT, known={"a.bin": "0" * 64})
    assert not (tmp_path / "a.bin").exists()
