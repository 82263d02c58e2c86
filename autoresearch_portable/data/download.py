"""Downloading dataset files over HTTP(S) with the standard library.

One file at a time (`download_file`): the body streams into `<name>.part` beside the target; a
later attempt resumes the part with a `Range` request (or starts over when the server ignores it
or the part is no longer consistent); the part is checked (size against Content-Length, sha256
against the server's checksum when it sends one, e.g. the Hugging Face hub's `X-Linked-Etag`,
and an optional content check such as "the parquet footer reads") and only then renamed onto the
target. Connection errors, timeouts, dropped connections and 5xx/429 answers are retried with
exponential backoff; 4xx answers are not. A corrupted file is deleted and fetched again. When the
host cannot be reached at all the error is one line: "could not reach HOST: REASON; check your
network or use the bundled corpus". Two limits end a download that would never finish: an
overall deadline per file (all attempts together; a server that drips a byte now and then never
trips the per-read timeout) and a size cap (a file larger than any dataset file, announced or
streamed, is refused and deleted).

`fetch_all` downloads several files in parallel into `paths.downloads_dir(dataset)` and keeps a
manifest (size, sha256, url, and the hub commit they came from) of what it downloaded, so a later
run trusts a file only if it still matches: same size and sha256, same URL (so the same pinned
commit), and the known checksum where one is listed (common.KNOWN_SHA256).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
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
from autoresearch_portable.fsutil import atomic_write_json, read_json

CHUNK = 1 << 20
RETRIES = 5
CONNECT_RETRIES = 3  # attempts when the host cannot be reached at all (offline)
TIMEOUT = 30.0
BACKOFF = 1.0
# Overall time for one file, every attempt included: 2 hours fetch the largest file the named
# datasets use (TinyStories' single parquet, ~0.7 GB per its dataset card) at ~100 kB/s.
DEADLINE = 2 * 3600.0
# No file of the named datasets comes near this; it stops a wrong URL or a misbehaving server
# from filling the disk.
MAX_FILE_BYTES = 4 << 30
_SHA256 = re.compile(r'^(?:W/)?"?([0-9a-fA-F]{64})"?$')
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class CorruptFile(Exception):
    """The downloaded bytes are wrong (checksum, size or content check); fetch them again."""


class _Retry(Exception):
    """A transient failure; the part file is kept for a resume."""


class _Deadline(Exception):
    """The file's overall deadline passed; the part file is kept for a later resume."""


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


def _repo_commit(headers_list) -> str | None:
    """The hub commit a `resolve/<ref>` URL was served from (X-Repo-Commit), if the server says."""
    for h in headers_list:
        v = (h.get("X-Repo-Commit") or "").strip().lower()
        if _COMMIT.match(v):
            return v
    return None


def _too_big(url: str, size: int, max_bytes: int) -> DataError:
    return DataError(f"{url} is larger than the {max_bytes / 2**30:.1f} GiB limit for one file ({size} bytes); "
                     "this is not a file of the dataset (check the URL or mirror)")


def _fetch(url: str, part: Path, timeout: float, log: Callable[[str], None] = lambda m: None, *,
           deadline_at: float = float("inf"), max_bytes: int = MAX_FILE_BYTES) -> tuple[str | None, str | None]:
    """One HTTP request appending to (or restarting) `part`. Returns (the server's sha256, the hub
    commit) where the server sends them. Raises urllib errors, _Retry (incomplete body),
    _Deadline, CorruptFile, or DataError (over the size cap, out of disk space)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _user_agent()}
    if have:
        headers["Range"] = f"bytes={have}-"
    redirects = _RedirectLog()
    opener = urllib.request.build_opener(redirects)
    req = urllib.request.Request(url, headers=headers)
    # the socket timeout also bounds each read, so no read outlives the deadline by much
    left = deadline_at - time.monotonic()
    with opener.open(req, timeout=max(0.5, min(timeout, left))) as resp:
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
        if total is not None and total > max_bytes:
            part.unlink(missing_ok=True)
            raise _too_big(url, total, max_bytes)
        if total is not None and total - have > shutil.disk_usage(part.parent).free:
            raise DataError(f"not enough disk space in {part.parent} for {part.name[:-5]}: "
                            f"{(total - have) / 1e6:.0f} MB needed, {shutil.disk_usage(part.parent).free / 1e6:.0f} MB free")
        expected = _expected_sha(redirects.headers + [resp.headers])
        commit = _repo_commit(redirects.headers + [resp.headers])
        with open(part, mode) as f:
            last = time.monotonic()
            try:
                while True:
                    if time.monotonic() > deadline_at:
                        raise _Deadline(f.tell())
                    buf = resp.read1(CHUNK)  # returns what arrived; read() would wait for a full chunk
                    if not buf:
                        break
                    f.write(buf)
                    if f.tell() > max_bytes:
                        got = f.tell()
                        f.close()
                        part.unlink(missing_ok=True)
                        raise _too_big(url, got, max_bytes)
                    if time.monotonic() - last >= PROGRESS_SECONDS:
                        last = time.monotonic()
                        of = f" of {total / 1e6:.1f}" if total else ""
                        log(f"  {part.name[:-5]}: {f.tell() / 1e6:.1f}{of} MB")
            except (http.client.IncompleteRead, ConnectionError, socket.timeout, TimeoutError) as e:
                f.flush()
                if time.monotonic() > deadline_at:
                    raise _Deadline(f.tell()) from e
                raise _Retry(f"connection dropped after {f.tell()} bytes ({type(e).__name__})") from e
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Retry(f"connection dropped after {size} of {total} bytes")
    if total is not None and size > total:
        raise CorruptFile(f"got {size} bytes, expected {total}")
    return expected, commit


def download_file(
    url: str,
    dest: Path,
    *,
    log: Callable[[str], None] = lambda m: None,
    retries: int = RETRIES,
    timeout: float = TIMEOUT,
    backoff: float | None = None,
    validate: Callable[[Path], None] | None = None,
    sha256: str | None = None,
    deadline: float = DEADLINE,
    max_bytes: int = MAX_FILE_BYTES,
) -> dict:
    """Download url to dest (atomically); returns {"url", "size", "sha256"}, plus "commit" when
    the server names the hub commit it served. `validate(path)` raises CorruptFile if the content
    is unusable; `sha256`, when known, must match. The whole download, retries included, must
    finish within `deadline` seconds and `max_bytes` bytes."""
    backoff = BACKOFF if backoff is None else backoff
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    host = urllib.parse.urlsplit(url).netloc or url
    deadline_at = time.monotonic() + deadline
    last: BaseException | None = None
    unreachable = 0
    attempt = 0
    while attempt < retries:
        attempt += 1
        try:
            expected, commit = _fetch(url, part, timeout, log, deadline_at=deadline_at, max_bytes=max_bytes)
            sha = sha256_file(part)
            if expected and sha != expected:
                raise CorruptFile(f"sha256 {sha[:12]}... does not match the server's {expected[:12]}...")
            if sha256 and sha != sha256.lower():
                raise CorruptFile(f"sha256 {sha[:12]}... does not match the known checksum {sha256[:12]}...")
            if validate is not None:
                validate(part)
            size = part.stat().st_size
            with open(part, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(part, dest)
            rec = {"url": url, "size": size, "sha256": sha}
            if commit:
                rec["commit"] = commit
            return rec
        except _Deadline as e:
            raise DataError(
                f"downloading {url} did not finish within {deadline:g} s ({e.args[0]} bytes received); "
                "check your network and run the command again (the partial file is kept and resumed)"
            ) from None
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
            pause = backoff * 2 ** (attempt - 1)
            if time.monotonic() + pause > deadline_at:
                raise DataError(f"downloading {url} did not finish within {deadline:g} s (last error: {last}); "
                                "check your network and run the command again")
            time.sleep(pause)
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
    """downloads/<dataset>/manifest.json: {"files": filename -> {url, size, sha256[, commit]},
    "revision": the hub commit the files were pinned to (None before the first download)}."""

    def __init__(self, folder: Path):
        self.path = folder / "manifest.json"
        self._lock = threading.Lock()
        raw = read_json(self.path) or {}
        files = raw.get("files")
        self.files = dict(files) if isinstance(files, dict) else {}
        self.revision = raw.get("revision") if _COMMIT.match(str(raw.get("revision"))) else None

    def get(self, name: str) -> dict | None:
        with self._lock:
            rec = self.files.get(name)
            return rec if isinstance(rec, dict) else None

    def put(self, name: str, rec: dict | None, revision: str | None = None) -> None:
        with self._lock:
            if rec is None:
                self.files.pop(name, None)
            else:
                self.files[name] = rec
            self.revision = revision or self.revision
            atomic_write_json(self.path, {"files": self.files, "revision": self.revision})


def fetch_all(
    folder: Path,
    base_url: str,
    names: list[str],
    *,
    log: Callable[[str], None],
    validate: Callable[[Path], None] | None = parquet_check,
    workers: int = 4,
    revision: str | None = None,
    known: dict[str, str] | None = None,
    **kw,
) -> dict[str, dict]:
    """Make sure every file in `names` is in `folder`, downloading what is missing or damaged.
    Returns name -> {url, size, sha256[, commit]}.

    `{revision}` in base_url is the hub commit: `revision` when pinned (common.DATASETS), else the
    one this folder's manifest recorded, else learned from the first file downloaded (the hub's
    X-Repo-Commit for `main`) and kept from then on, so one dataset never mixes commits. `known`:
    filename -> sha256 that a file must match (common.KNOWN_SHA256)."""
    folder.mkdir(parents=True, exist_ok=True)
    man = Manifest(folder)
    known = known or {}
    pinned = "{revision}" in base_url
    rev = (revision or man.revision) if pinned else None
    if pinned and revision and man.revision and man.revision != revision:
        log(f"  the pinned revision changed ({man.revision[:12]} -> {revision[:12]}): files from the old one are fetched again")

    def url_for(name: str) -> str:
        return base_url.replace("{revision}", rev or "main").rstrip("/") + "/" + name

    out: dict[str, dict] = {}
    todo: list[str] = []
    for name in names:
        p = folder / name
        rec = man.get(name)
        if p.exists() and rec and p.stat().st_size == rec.get("size") and rec.get("url") == url_for(name) \
                and known.get(name, rec.get("sha256")) == rec.get("sha256"):
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
    log(f"  downloading {len(todo)} file(s) from {base_url.replace('{revision}', rev or 'main')} into {folder}")

    def one(name: str) -> tuple[str, dict]:
        nonlocal rev
        t0 = time.perf_counter()
        rec = download_file(url_for(name), folder / name, log=log, validate=validate, sha256=known.get(name), **kw)
        if pinned and rev is None and rec.get("commit"):
            rev = rec["commit"]  # what `main` was: every later file comes from this commit
            rec["url"] = url_for(name)
            log(f"  pinned {name} and every later file of this dataset to hub commit {rev}")
        man.put(name, rec, revision=rev)
        dt = time.perf_counter() - t0
        log(f"  {name}: {rec['size'] / 1e6:.1f} MB in {dt:.1f} s, sha256 {rec['sha256'][:16]}...")
        return name, rec

    # The first file alone: an offline machine or a bad URL fails once, with one message, and
    # an unpinned dataset learns its commit before the others start.
    name0, rec0 = one(todo[0])
    out[name0] = rec0
    if len(todo) > 1:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo) - 1))) as ex:
            for name, rec in ex.map(one, todo[1:]):
                out[name] = rec
    return {n: out[n] for n in names}
