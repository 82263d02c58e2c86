"""The ledger as the agent's memory: what each run tried and what came of it.

Recorded with every run (by the parent, before launch, from git): the parent commit, the commit
message (the hypothesis), a short summary of the diff of train.py against its parent and the diff
itself, and a normalized hash of train.py (comments and layout ignored) beside the exact one, so
the same code run again is recognised (`duplicates`, for `arp train`'s duplicate check).

`arp init` workspaces also get `results.tsv`, rewritten (atomically) after every run in the
original autoresearch's format, `commit val_bpb memory_gb status description`, so tools written
for the original keep working: status `keep` (an ok run whose commit is still in the branch's
history: the agent kept it), `discard` (a scored run that was not kept), `crash` (no score:
crash, oom, diverged, invalid, timeout, interrupted, abandoned; val_bpb 0.000000 as in the
original), the description the commit message's first line (and the harness's status where it
is not ok)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from autoresearch_portable.fsutil import atomic_write_text
from autoresearch_portable.harness.records import ledger
from autoresearch_portable.harness.run.provenance import git_output, normalized_sha256

TSV_HEADER = "commit\tval_bpb\tmemory_gb\tstatus\tdescription"
# outcomes that say something about the code; noisy, interrupted and timeout say more about the
# machine or the user, so running the same code again after them is not a duplicate
CONCLUSIVE = ("ok", "abandoned", "crash", "oom", "diverged", "invalid", "unverified", "over_budget")
NO_SCORE = ("crash", "oom", "diverged", "invalid", "timeout", "interrupted", "abandoned", "untrusted")


# --- the duplicate check --------------------------------------------------------------------

def _settings(m: dict) -> tuple:
    b = m.get("budget_seconds")
    return (m.get("dataset"), float(b) if isinstance(b, (int, float)) else None, m.get("budget_mode"), m.get("backend"))


def duplicates(records: list[dict], sha: str | None, norm_sha: str | None, settings: dict) -> list[tuple[int, dict]]:
    """(run number, record) of earlier trusted runs of the same code (exact or normalized hash)
    under the same settings (dataset, budget, mode, backend) whose outcome says something about
    the code. Run numbers count from 1 over `records`, as `arp results` shows them."""
    want = _settings(settings)
    found = []
    for i, rec in enumerate(records, 1):
        if rec.get(ledger.UNTRUSTED) or rec.get("status") not in CONCLUSIVE:
            continue
        same = (sha and rec.get("train_py_sha256") == sha) or (norm_sha and rec.get("train_py_norm_sha256") == norm_sha)
        if same and _settings(rec.get("metrics") or {}) == want:
            found.append((i, rec))
    return found


def check_duplicate(ledger_path: Path, data: bytes, settings: dict, *, again: bool, log) -> None:
    """Before training: if this code (train.py's bytes) already ran under these settings, log the
    earlier results and, unless `again` (--again, or --repeat N: a deliberate re-measurement), stop
    with one line."""
    from autoresearch_portable.errors import UserError

    path = Path(ledger_path)
    records = ledger.parse_ledger(path.read_bytes()) if path.exists() else []
    earlier = duplicates(records, hashlib.sha256(data).hexdigest(), normalized_sha256(data.decode("utf-8", "replace")),
                         settings)
    for number, rec in earlier[-3:]:
        log("already ran: " + run_line(number, rec))
    if earlier and not again:
        raise UserError(f"this train.py already ran {len(earlier)} time(s) with these settings (run {earlier[-1][0]}, "
                        f"above); change it, or pass --again to run it once more")


def run_line(number: int, rec: dict) -> str:
    """One line about a run: number, commit, status, val_bpb, the hypothesis."""
    m = rec.get("metrics") or {}
    bpb = m.get("val_bpb")
    score = f"val_bpb {bpb:.6f}" if isinstance(bpb, (int, float)) and math.isfinite(bpb) else "no score"
    status = "untrusted" if rec.get(ledger.UNTRUSTED) else rec.get("status")
    why = f" ({rec.get('reason')})" if status != "ok" and rec.get("reason") else ""
    return (f"run {number} (commit {rec.get('git_commit') or '-'}, {str(rec.get('time') or '?')[:16]}): {status}, "
            f"{score}{why} - {subject(rec) or '(no message)'}")


def subject(rec: dict) -> str:
    msg = rec.get("commit_message") or ""
    return " ".join(msg.splitlines()[0].split()) if msg.strip() else ""


# --- keep / discard, results.tsv ---------------------------------------------------------------

def branch_commits(folder: Path) -> set[str] | None:
    """The full hashes of the commits on the workspace's branch (HEAD's history); None outside git."""
    history = git_output(Path(folder), "rev-list", "HEAD")
    return None if history is None else set(history.split())


def kept_runs(folder: Path, records: list[dict]) -> set[int]:
    """Run numbers (from 1) the agent kept: ok runs of committed code whose commit is still in
    the branch's history. Outside git: ok runs that set a new best val_bpb."""
    commits = branch_commits(folder)
    kept = set()
    if commits is not None:
        for i, rec in enumerate(records, 1):
            c = rec.get("git_commit")
            if (_ok(rec) and c and not rec.get("git_dirty") and len(c) >= 4
                    and any(full.startswith(c) for full in commits)):
                kept.add(i)
        return kept
    best = math.inf
    for i, rec in enumerate(records, 1):
        if _ok(rec) and rec["metrics"]["val_bpb"] < best:
            best = rec["metrics"]["val_bpb"]
            kept.add(i)
    return kept


def _ok(rec: dict) -> bool:
    v = (rec.get("metrics") or {}).get("val_bpb")
    return (rec.get("status") == "ok" and not rec.get(ledger.UNTRUSTED) and isinstance(v, (int, float))
            and not isinstance(v, bool) and math.isfinite(v))


def tsv_rows(records: list[dict], kept: set[int]) -> list[str]:
    rows = [TSV_HEADER]
    for i, rec in enumerate(records, 1):
        m = rec.get("metrics") or {}
        status = "untrusted" if rec.get(ledger.UNTRUSTED) else str(rec.get("status"))
        bpb = m.get("val_bpb")
        scored = status not in NO_SCORE and isinstance(bpb, (int, float)) and math.isfinite(bpb)
        mem = m.get("peak_memory_mb")
        mem_gb = mem / 1024 if scored and isinstance(mem, (int, float)) and math.isfinite(mem) else 0.0
        tsv_status = "keep" if i in kept else ("discard" if scored else "crash")
        desc = subject(rec) or "(no commit message)"
        if rec.get("git_dirty"):
            desc += " (uncommitted)"
        if status != "ok":
            desc += f" [{status}]"
        desc = " ".join(desc.replace("\t", " ").split())
        rows.append(f"{(rec.get('git_commit') or '-')[:7]}\t{bpb if scored else 0.0:.6f}\t{mem_gb:.1f}\t{tsv_status}\t{desc}")
    return rows


def write_results_tsv(folder: Path, records: list[dict]) -> Path:
    """results.tsv of a workspace from its ledger, written atomically."""
    path = Path(folder) / "results.tsv"
    atomic_write_text(path, "\n".join(tsv_rows(records, kept_runs(folder, records))) + "\n")
    return path
