"""The run ledger: one JSON object per line, appended atomically, each line signed.

Each record is serialised first (strict JSON: NaN and Inf become null) and written with a single
write() on a file opened O_APPEND, under an exclusive lock where the OS has one (fcntl), so two
runs finishing at once never interleave. A line left half-written by a killed writer is moved to
`<ledger>.torn` before the next append, never glued to it; a write that fails (disk full) is
rolled back to the last complete line and reported.

Only the harness writes the ledger, and it signs every line with an HMAC whose key lives outside
the workspace (the user's data folder). `read` marks a line it cannot verify (appended or edited
by anyone else, train.py included) as untrusted, and `arp results` shows it so."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import time
from pathlib import Path
from typing import Any

from autoresearch_portable import HARNESS_VERSION, __version__, paths
from autoresearch_portable.errors import UserError
from autoresearch_portable.harness.run.outcome import Code

try:
    import fcntl
except ImportError:  # Windows: O_APPEND single writes only
    fcntl = None

SIG = "sig"
UNTRUSTED = "untrusted"  # set by read() on records whose signature does not verify


def strict(obj: Any) -> Any:
    """The record with NaN/Inf floats as None, so every line is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    return obj


def _key() -> bytes:
    """The signing key, made on first use. It appears atomically (written to a temporary file,
    then hard-linked into place), so a concurrent first writer never reads half of it."""
    path = paths.keys_dir() / "ledger.key"
    try:
        return bytes.fromhex(path.read_text().strip()) or _no_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".ledger.key.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_hex(32).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process got there first: theirs is the key
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return bytes.fromhex(path.read_text().strip()) or _no_key(path)


def _no_key(path: Path) -> bytes:
    raise UserError(f"the ledger's signing key {path} is empty; remove it to make a new one "
                    f"(lines signed with the old key will then show as untrusted)")


def _canonical(record: dict) -> bytes:
    body = {k: v for k, v in record.items() if k not in (SIG, UNTRUSTED)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str).encode("utf-8")


def sign(record: dict) -> dict:
    record = strict(record)
    record[SIG] = hmac.new(_key(), _canonical(record), hashlib.sha256).hexdigest()
    return record


def verify(record: dict) -> bool:
    sig = record.get(SIG)
    if not isinstance(sig, str):
        return False
    try:
        key = bytes.fromhex((paths.keys_dir() / "ledger.key").read_text().strip())
        expected = hmac.new(key, _canonical(record), hashlib.sha256).hexdigest()
    except (OSError, ValueError, TypeError):
        return False
    return hmac.compare_digest(sig, expected)


def line(result: dict, train_py: Path, probe: dict, plan: dict) -> dict:
    """One run's ledger line: when, what code (a Code, hashed before launch: its fields sit at the
    top level, the agent's memory), which device, how it ended, the verdict and the log's tail;
    every other figure of the result under `metrics`."""
    code = Code.from_json(result).to_dict()
    told = dict(status=result.get("status"), reason=result.get("reason"), verdict=result.get("verdict"),
                log_tail=result.get("log_tail"))
    return dict(time=time.strftime("%Y-%m-%dT%H:%M:%S%z"), arp_version=__version__, harness_version=HARNESS_VERSION,
                train_py=str(Path(train_py).resolve()), **code, device=probe, plan=plan, **told,
                metrics={k: v for k, v in result.items() if k not in code and k not in told})


def append(path: str | os.PathLike, record: dict[str, Any]) -> str | None:
    """Append one signed record. Returns a note for the user when a torn line was set aside."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(sign(dict(record)), sort_keys=True, allow_nan=False, default=str) + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    note = None
    try:
        if fcntl:
            fcntl.flock(fd, fcntl.LOCK_EX)
        note = _set_aside_torn_tail(fd, path)
        size = os.fstat(fd).st_size
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as e:
            os.ftruncate(fd, size)  # never leave half a line behind
            raise UserError(f"could not append to the ledger {path}: {e.strerror or e}; the run's record is "
                            f"printed above, nothing else was changed") from None
    finally:
        if fcntl:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    return note


def _set_aside_torn_tail(fd: int, path: Path) -> str | None:
    """If the file does not end with a newline, its last line is torn: move it to <path>.torn."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return None
    start = size
    while start > 0:
        chunk = os.pread(fd, min(65536, start), max(0, start - 65536))
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            start = start - len(chunk) + cut + 1
            break
        start -= len(chunk)
    torn = os.pread(fd, size - start, start)
    with open(f"{path}.torn", "ab") as f:
        f.write(torn + b"\n")
    os.ftruncate(fd, start)
    return f"note: the ledger's last line was incomplete ({len(torn)} bytes); moved it to {path.name}.torn"


def check_writable(path: str | os.PathLike) -> None:
    """Fail before a run if its record could not be written (read-only workspace, no space)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.close(fd)
        st = os.statvfs(path.parent) if hasattr(os, "statvfs") else None
    except OSError as e:
        raise UserError(f"cannot write the ledger {path}: {e.strerror or e} (is the workspace writable?)") from None
    if st is not None and st.f_bavail * st.f_frsize < 1 << 20:
        raise UserError(f"less than 1 MB free where the ledger {path} lives; free some space first")


def read(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All complete records (JSON objects); ones whose signature does not verify carry
    `untrusted: True`. Lines that are not JSON objects are skipped (`arp results` counts them)."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for raw in path.read_bytes().splitlines():
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if not isinstance(rec, dict):
            continue
        if not verify(rec):
            rec[UNTRUSTED] = True
        records.append(rec)
    return records


# --- reading a ledger's bytes for the views (arp results, show, the duplicate check) ------------

class LedgerRecords(list):
    """A ledger's usable records, with `skipped`: how many lines were not (see `usable`)."""

    skipped = 0


_TEXT_FIELDS = ("time", "git_commit", "status", "reason")
_METRIC_NUMBERS = ("val_bpb", "val_bpb_stderr", "compute_multiplier", "doublings", "doublings_band", "bpb_band",
                   "excess_ratio", "excess_ratio_band", "delta_bpb", "delta_bpb_band",
                   "normalized_bpb", "normalized_bpb_band", "num_steps", "budget_seconds")
_METRIC_TEXT = ("budget_mode", "backend", "device", "dataset", "normalized_reference", "metric")


def usable(rec) -> bool:
    """Whether a parsed ledger line can be shown: a JSON object with a text status, whose fields
    that the views read have their types (absent or null is fine). A hand-edited, foreign or
    damaged line is not, and is skipped and counted rather than crashing a view."""
    if not isinstance(rec, dict) or not isinstance(rec.get("status"), str):
        return False
    if any(rec.get(k) is not None and not isinstance(rec[k], str) for k in _TEXT_FIELDS):
        return False
    if rec.get("plan") is not None and not isinstance(rec["plan"], dict):
        return False
    m = rec.get("metrics")
    if m is None:
        return True
    if not isinstance(m, dict):
        return False
    numbers_ok = all(m.get(k) is None or (isinstance(m[k], (int, float)) and not isinstance(m[k], bool))
                     for k in _METRIC_NUMBERS)
    text_ok = all(m.get(k) is None or isinstance(m[k], str) for k in _METRIC_TEXT)
    return numbers_ok and text_ok and (m.get("significant") is None or isinstance(m["significant"], bool))


def parse_ledger(data: bytes) -> LedgerRecords:
    """The usable records of a ledger's bytes; every other non-blank line (not UTF-8, not JSON,
    not an object, wrong field types) is counted in `skipped`."""
    out = LedgerRecords()
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            rec = None
        if usable(rec):
            if not verify(rec):
                rec[UNTRUSTED] = True  # shown as untrusted, never counted (as ledger.read does)
            out.append(rec)
        else:
            out.skipped += 1
    return out
