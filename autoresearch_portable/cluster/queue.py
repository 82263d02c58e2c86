"""The workspace's queue of experiments: results/queue.json, one entry per submitted run.

The file is rewritten atomically under a lock (results/cluster/queue.lock), so `arp submit`, `arp
wait` and the driver never lose each other's changes and a reader never sees half a file. The
transitions are pure functions on plain dataclasses; only `locked` and `load` touch the disk.

States: queued (waiting for a slot), running (a worker reported its start: node, slot, device),
done (its ledger line is written), lost (the worker or its node died twice, or the worker itself
failed: recorded in the ledger too). Nothing leaves the queue without one of the last two."""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from autoresearch_portable.errors import UserError
from autoresearch_portable.fsutil import atomic_write_json

try:
    import fcntl
except ImportError:  # Windows: no lock (the driver is still the one ledger writer)
    fcntl = None

STATES = ("queued", "running", "done", "lost")
PENDING = ("queued", "running")


@dataclass
class Entry:
    id: str                           # q0001, q0002, ... in submission order
    commit: str                       # the full hash that runs
    options: dict                     # budget, budget_mode, seed, timeout, backend, dataset
    submitted: float
    state: str = "queued"
    attempts: int = 0                 # workers that started it (a retry after a dead worker adds one)
    node: str | None = None
    slot: str | None = None           # "gpu 3" or "2 cpu", on `node`
    device: str | None = None         # the device key (harness/run/peak.py) of the slot that ran it
    worker_pid: int | None = None
    started: float | None = None
    finished: float | None = None
    status: str | None = None         # the ledger status (ok, noisy, crash, ..., lost)
    val_bpb: float | None = None
    reason: str | None = None
    verdict: str | None = None        # the verdict's lines (keep, discard, repeat N) when it landed
    notes: list = field(default_factory=list)
    reported: bool = False            # shown by `arp wait`

    @property
    def short(self) -> str:
        return self.commit[:7]

    @property
    def ref(self) -> str:
        """A git ref that keeps the commit alive after a `git reset --hard` of the branch."""
        return f"refs/arp/queue/{self.id}"

    @property
    def key(self) -> str:
        """Unique across queues of the workspace (a queue started afresh reuses ids): the ledger
        line of a run names it."""
        return f"{self.id}@{self.submitted!r}"

    @classmethod
    def from_dict(cls, d: dict) -> "Entry":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# --- pure transitions ----------------------------------------------------------------------------

def add(entries: list[Entry], commits: list[str], options: list[dict], now: float) -> list[Entry]:
    """New entries for `commits` (each with its options), numbered after the existing ones."""
    last = max((int(e.id[1:]) for e in entries if e.id[1:].isdigit()), default=0)
    return [Entry(id=f"q{last + i + 1:04d}", commit=c, options=dict(o), submitted=now)
            for i, (c, o) in enumerate(zip(commits, options))]


def resume(entries: list[Entry], landed: dict[str, dict]) -> list[str]:
    """A driver starting up: entries whose ledger line exists (`landed`: Entry.key -> ledger
    record) are done, whatever the queue said (the old driver died between the two writes); the
    ones still running belonged to Ray tasks of the old driver, which died with it, so they are
    queued again. Returns the ids queued again."""
    again = []
    for e in entries:
        if e.state not in PENDING:
            continue
        if e.key in landed:
            rec = landed[e.key]
            finish(e, rec.get("status"), (rec.get("metrics") or {}).get("val_bpb"), rec.get("reason"), None, time.time())
        elif e.state == "running":
            e.state = "queued"
            e.notes.append(f"queued again: the driver restarted while it ran on {e.node} ({e.slot})")
            again.append(e.id)
    return again


def start(e: Entry, msg: dict) -> None:
    """A worker began the entry (a later message after a dead worker is its retry)."""
    e.attempts += 1
    if e.state == "running":  # started again while running: Ray retried it after its worker died
        e.notes.append(f"attempt {e.attempts}: the worker on {e.node} ({e.slot}) died; retried on {msg.get('node')}")
    e.state = "running"
    e.node, e.slot, e.device = msg.get("node"), msg.get("slot"), None  # the device follows once probed
    e.worker_pid, e.started = msg.get("pid"), msg.get("time")


def finish(e: Entry, status, val_bpb, reason, verdict, now: float) -> None:
    e.state = "lost" if status == "lost" else "done"
    e.status, e.val_bpb, e.reason, e.verdict, e.finished = status, val_bpb, reason, verdict, now


def pending(entries: list[Entry]) -> list[Entry]:
    return [e for e in entries if e.state in PENDING]


# --- the file --------------------------------------------------------------------------------

def queue_path(workspace: Path) -> Path:
    return Path(workspace) / "results" / "queue.json"


def cluster_dir(workspace: Path) -> Path:
    """The driver's lock, log and settings, and each experiment's output."""
    return Path(workspace) / "results" / "cluster"


def load(workspace: Path) -> list[Entry]:
    path = queue_path(workspace)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the queue {path}: {e}") from None
    return [Entry.from_dict(d) for d in raw.get("entries", []) if isinstance(d, dict)]


def save(workspace: Path, entries: list[Entry]) -> None:
    atomic_write_json(queue_path(workspace), dict(version=1, entries=[asdict(e) for e in entries]))


@contextlib.contextmanager
def locked(workspace: Path):
    """Read, change and write the queue as one step: yields the entries; saved on a clean exit."""
    folder = cluster_dir(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "queue.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl:
            fcntl.flock(fd, fcntl.LOCK_EX)
        entries = load(workspace)
        yield entries
        save(workspace, entries)
    finally:
        os.close(fd)  # closing releases the lock


# --- views ----------------------------------------------------------------------------------

def _clock(t: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if t else "-"


def _took(e: Entry) -> str:
    if e.started and e.finished:
        return f"{e.finished - e.started:.0f}s"
    if e.started and e.state == "running":
        return f"{time.time() - e.started:.0f}s so far"
    return "-"


def format_queue(entries: list[Entry]) -> str:
    if not entries:
        return "the queue is empty (arp submit [COMMIT...] adds experiments)"
    header = ["id", "commit", "state", "status", "val_bpb", "node", "slot", "device", "started", "took", "tries"]
    body = [[e.id, e.short, e.state, e.status or "-", f"{e.val_bpb:.6f}" if isinstance(e.val_bpb, (int, float)) else "-",
             e.node or "-", e.slot or "-", e.device or "-", _clock(e.started), _took(e), str(e.attempts)]
            for e in entries]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    counts = {s: sum(e.state == s for e in entries) for s in STATES}
    lines.append("")
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return "\n".join(lines)


def result_line(e: Entry) -> str:
    """One finished experiment, as `arp wait` prints it."""
    bpb = f"val_bpb {e.val_bpb:.6f}" if isinstance(e.val_bpb, (int, float)) else "no val_bpb"
    where = f"on {e.node} ({e.slot}, {e.device})" if e.node else "never started"
    text = f"{e.id} {e.short}: {e.status} {bpb} {where}"
    if e.reason and e.status != "ok":
        text += f" [{e.reason}]"
    if e.verdict:
        text += f"\n  {e.verdict}"
    return text
