"""Downloading dataset files over HTTP(S) with the standard library.

One file at a time (`download_file`): the body streams into `<name>.part` beside the target; a
later attempt resumes the part with a `Range` request (or starts over when the server ignores it
or the part is no longer consistent); the part is checked (size against Content-Length, sha256
against the server's checksum when it sends one, e.g. the Hugging Face hub's `X-Linked-Etag`,
and an optional content check such as "the parquet footer reads") and only then renamed onto the
target. Connection errors, timeouts, dropped connections and 5xx/429 answers are retried with
exponential backoff; 4xx answers are not. A corrupted file is deleted and fetched again. When the
host cannot be reached at all the error is one line: "could not reach HOST: REASON; check your
network or use the bundled corpus".

`fetch_all` downloads several files in parallel into `paths.downloads_dir(dataset)` and keeps a
manifest (size, sha256, url) of what it downloaded, so a later run trusts a file only if it
still matches.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from autoresearch_portable import __version__ as _pkg_version
from autoresearch_portable.data.common import DataError
from autoresearch_portable.data.store import sha256_file
from autoresearch_portable.fsutil import atomic_write_json

CHUNK = 1 << 20
RETRIES = 5
CONNECT_RETRIES = 3  # attempts when the host cannot be reached at all (offline)
TIMEOUT = 30.0
BACKOFF = 1.0
_SHA256 = re.compile(r'^(?:W/)?"?([0-9a-fA-F]{64})"?$')


class CorruptFile(Exception):
    """The downloaded bytes are wrong (checksum, size or content check); fetch them again."""


class _Retry(Exception):
    """A transient failure; the part file is kept for a resume."""


class _Unreachable(Exception):
    """No connection to the host could be made."""


class _RedirectLog(urllib.request.HTTPRedirectHandler):
    def __init__(self):
        super().__init__()
        self.headers: list = []

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.headers.append(headers)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _user_agent() -> str:
    return f"autoresearch-portable/{_pkg_version} (python-urllib)"


def _expected_sha(headers_list) -> str | None:
    for h in headers_list:
        for key in ("X-Linked-Etag", "ETag"):
            v = h.get(key)
            if v:
                m = _SHA256.match(v.strip())
                if m:
                    return m.group(1).lower()
    return None


def _is_unreachable(err: BaseException) -> bool:
    reason = getattr(err, "reason", err)
    return isinstance(reason, (socket.gaierror, ConnectionRefusedError)) or (
        isinstance(reason, OSError) and getattr(reason, "errno", None) in (101, 113, 65, 51)
    )


PROGRESS_SECONDS = 15.0


def _fetch(url: str, part: Path, timeout: float, log: Callable[[str], None] = lambda m: None) -> str | None:
    """One HTTP request appending to (or restarting) `part`. Returns the server's sha256 if any.
    Raises urllib errors, _Retry (incomplete body) or CorruptFile."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _user_agent()}
    if have:
        headers["Range"] = f"bytes={have}-"
    redirects = _RedirectLog()
    opener = urllib.request.build_opener(redirects)
    req = urllib.request.Request(url, headers=headers)
    with opener.open(req, timeout=timeout) as resp:
        total: int | None = None
        if have and resp.status == 206:
            m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                part.unlink(missing_ok=True)
                raise _Retry("server resumed at the wrong offset; starting over")
            mode = "ab"
            total = int(m.group(3)) if m.group(3) != "*" else None
        else:
            mode, have = "wb", 0
            cl = resp.headers.get("Content-Length")
            total = int(cl) if cl and cl.isdigit() else None
        for h in redirects.headers:
            ls = h.get("X-Linked-Size")
            if total is None and ls and ls.isdigit():
                total = int(ls)
        expected = _expected_sha(redirects.headers + [resp.headers])
        with open(part, mode) as f:
            last = time.monotonic()
            try:
                while True:
                    buf = resp.read(CHUNK)
                    if not buf:
                        break
                    f.write(buf)
                    if time.monotonic() - last >= PROGRESS_SECONDS:
                        last = time.monotonic()
                        of = f" of {total / 1e6:.1f}" if total else ""
                        log(f"  {part.name[:-5]}: {f.tell() / 1e6:.1f}{of} MB")
            except (http.client.IncompleteRead, ConnectionError, socket.timeout, TimeoutError) as e:
                f.flush()
                raise _Retry(f"connection dropped after {f.tell()} bytes ({type(e).__name__})") from e
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Retry(f"connection dropped after {size} of {total} bytes")
    if total is not None and size > total:
        raise CorruptFile(f"got {size} bytes, expected {total}")
    return expected


def download_file(
    url: str,
    dest: Path,
    *,
    log: Callable[[str], None] = lambda m: None,
    retries: int = RETRIES,
    timeout: float = TIMEOUT,
    backoff: float | None = None,
    validate: Callable[[Path], None] | None = None,
) -> dict:
    """Download url to dest (atomically); returns {"url", "size", "sha256"}. `validate(path)`
    raises CorruptFile if the content is unusable."""
    backoff = BACKOFF if backoff is None else backoff
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    host = urllib.parse.urlsplit(url).netloc or url
    last: BaseException | None = None
    unreachable = 0
    attempt = 0
    while attempt < retries:
        attempt += 1
        try:
            expected = _fetch(url, part, timeout, log)
            sha = sha256_file(part)
            if expected and sha != expected:
                raise CorruptFile(f"sha256 {sha[:12]}... does not match the server's {expected[:12]}...")
            if validate is not None:
                validate(part)
            size = part.stat().st_size
            with open(part, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(part, dest)
            return {"url": url, "size": size, "sha256": sha}
        except CorruptFile as e:
            part.unlink(missing_ok=True)
            last = e
            log(f"  {dest.name}: {e}; fetching it again")
        except urllib.error.HTTPError as e:
            if e.code == 416:  # our part is longer than the file: start over
                part.unlink(missing_ok=True)
                last = e
            elif e.code in (408, 425, 429) or e.code >= 500:
                last = e
                log(f"  {dest.name}: HTTP {e.code} {e.reason}; retrying")
            else:
                raise DataError(f"download failed: {url} answered HTTP {e.code} {e.reason}") from None
        except _Retry as e:
            last = e
            log(f"  {dest.name}: {e}; resuming")
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            last = e
            if _is_unreachable(e):
                unreachable += 1
                if unreachable >= CONNECT_RETRIES:
                    break
            else:
                log(f"  {dest.name}: {getattr(e, 'reason', e)}; retrying")
        if attempt < retries:
            time.sleep(backoff * 2 ** (attempt - 1))
    if last is not None and _is_unreachable(last):
        reason = getattr(last, "reason", last)
        raise DataError(f"could not reach {host}: {reason}; check your network or use the bundled corpus")
    raise DataError(f"could not download {url} after {attempt} attempts: {last}")


def parquet_check(path: Path) -> None:
    """CorruptFile unless the parquet footer (schema, row groups) reads."""
    import pyarrow.parquet as pq

    try:
        pq.ParquetFile(path).metadata
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ...
        raise CorruptFile(f"not a readable parquet file ({type(e).__name__})") from None


class Manifest:
    """downloads/<dataset>/manifest.json: filename -> {url, size, sha256}."""

    def __init__(self, folder: Path):
        self.path = folder / "manifest.json"
        self._lock = threading.Lock()
        try:
            with open(self.path, "r", encoding="utf-8") as f:
                self.files = json.load(f).get("files", {})
        except (OSError, ValueError, AttributeError):
            self.files = {}

    def get(self, name: str) -> dict | None:
        with self._lock:
            return self.files.get(name)

    def put(self, name: str, rec: dict | None) -> None:
        with self._lock:
            if rec is None:
                self.files.pop(name, None)
            else:
                self.files[name] = rec
            atomic_write_json(self.path, {"files": self.files})


def fetch_all(
    folder: Path,
    base_url: str,
    names: list[str],
    *,
    log: Callable[[str], None],
    validate: Callable[[Path], None] | None = parquet_check,
    workers: int = 4,
    **kw,
) -> dict[str, dict]:
    """Make sure every file in `names` is in `folder`, downloading what is missing or damaged.
    Returns name -> {url, size, sha256}."""
    folder.mkdir(parents=True, exist_ok=True)
    man = Manifest(folder)
    out: dict[str, dict] = {}
    todo: list[str] = []
    for name in names:
        p = folder / name
        rec = man.get(name)
        if p.exists() and rec and p.stat().st_size == rec.get("size"):
            try:
                if validate is not None:
                    validate(p)
                if sha256_file(p) == rec.get("sha256"):
                    out[name] = rec
                    continue
            except CorruptFile:
                pass
            log(f"  {name}: damaged on disk; fetching it again")
        if p.exists():
            p.unlink()
        man.put(name, None)
        todo.append(name)
    if out:
        log(f"  {len(out)} file(s) already downloaded and verified in {folder}")
    if not todo:
        return out
    log(f"  downloading {len(todo)} file(s) from {base_url} into {folder}")
    base = base_url.rstrip("/")

    def one(name: str) -> tuple[str, dict]:
        t0 = time.perf_counter()
        rec = download_file(f"{base}/{name}", folder / name, log=log, validate=validate, **kw)
        man.put(name, rec)
        dt = time.perf_counter() - t0
        log(f"  {name}: {rec['size'] / 1e6:.1f} MB in {dt:.1f} s, sha256 {rec['sha256'][:16]}...")
        return name, rec

    # The first file alone: an offline machine or a bad URL fails once, with one message.
    name0, rec0 = one(todo[0])
    out[name0] = rec0
    if len(todo) > 1:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo) - 1))) as ex:
            for name, rec in ex.map(one, todo[1:]):
                out[name] = rec
    return {n: out[n] for n in names}
