"""What an agent reads before its next experiment: `arp results [--last N] [--near] [--json]` and
`arp show RUN|COMMIT`. Runs are numbered from 1 in ledger order (the `run` column of `arp results`);
the numbers never change, since the ledger is only appended to.

`--near`: the near-misses, groups of runs of the same code whose mean lies within the noise band of
the bar (verdict.py's groups, σ and bar): not significantly worse, so worth combining or
repeating; and runs that beat the bar by less than it takes to keep them.

The JSON shapes are stable (documented in the README, "Research memory"): new keys may be added,
none are renamed or removed."""

from __future__ import annotations

import math

from autoresearch_portable.errors import UserError
from autoresearch_portable.harness.records import ledger
from autoresearch_portable.harness.records import memory
from autoresearch_portable.harness.records import verdict
from autoresearch_portable.harness.records.results import _f, _normalized, _short_time, gain_notes, row, skipped_note
from autoresearch_portable.harness.run.summary import format_summary, table
from autoresearch_portable.harness.run import summary
from autoresearch_portable.harness.run.provenance import git_output


def numbered(records: list[dict], last: int | None = None) -> list[tuple[int, dict]]:
    out = list(enumerate(records, 1))
    if last is not None:
        if last < 1:
            raise UserError("--last must be at least 1")
        out = out[-last:]
    return out


def run_row(number: int, rec: dict, kept: set[int] | None = None) -> dict:
    """`arp results --json`: results.row's keys plus the memory of the run."""
    m = rec.get("metrics") or {}
    out = dict(run=number, **row(rec))
    out.update(
        parent=rec.get("git_parent"), message=memory.subject(rec) or None, diff_summary=rec.get("diff_summary"),
        train_py_sha256=rec.get("train_py_sha256"), git_dirty=rec.get("git_dirty"),
        kept=(number in kept) if kept is not None else None, noisy=bool(m.get("load_noisy")),
        machine_load=m.get("load_summary"), verdict=rec.get("verdict"),
        decision=(m.get("decision") or {}).get("word"),  # keep | discard | repeat N (harness/records/verdict.py)
        abandon_progress=m.get("abandon_progress"), abandon_gap=m.get("abandon_gap"),
        abandon_saved_seconds=m.get("abandon_saved_seconds"), peak_memory_mb=m.get("peak_memory_mb"),
    )
    return out


def _reference(records: list[dict]) -> dict | None:
    """The settings the near-misses are judged under: those of the latest trusted ok run."""
    for rec in reversed(records):
        m = rec.get("metrics") or {}
        if rec.get("status") == "ok" and not rec.get(ledger.UNTRUSTED) and isinstance(m.get("val_bpb"), (int, float)):
            return m
    return None


def near_misses(records: list[dict], branch: set[str] | None = None) -> dict:
    """The bar (verdict.py: the best significantly better group on the branch) and the groups
    within its noise band (see the module doc). `branch`: the commits on the workspace's branch."""
    ref = _reference(records)
    if ref is None:
        return dict(best=None, sigma=None, sigma_source=None, near=[])
    gs = verdict.groups(records, ref)
    calibrated = verdict.calibrated_noise(ref)
    noise = verdict.pooled_noise(gs, calibrated)
    source = ("none: nothing repeated and no calibration" if noise is None else
              "calibration and repeated runs in this ledger" if calibrated and noise.dof > calibrated.dof else
              "calibration" if calibrated else "repeated runs in this ledger")
    best = verdict.find_bar(gs, noise, branch) or gs[0]
    runs_of: dict[str, list[int]] = {}
    for i, rec in enumerate(records, 1):
        code = str(rec.get("train_py_sha256") or (rec.get("metrics") or {}).get("train_py_sha256") or rec.get("git_commit") or "?")
        runs_of.setdefault(code, []).append(i)

    def describe(g: verdict.Group, width: float | None) -> dict:
        numbers = runs_of.get(g.code, [])
        first = records[numbers[0] - 1] if numbers else {}  # the run whose commit names the group
        return dict(commit=g.commit, message=memory.subject(first) or None, diff_summary=first.get("diff_summary"),
                    runs=numbers, n=g.n, mean_val_bpb=g.mean, spread=g.spread,
                    gap=g.mean - best.mean, band=width, train_py_sha256=g.code)

    near = []
    for g in gs:
        if g is best:
            continue
        width = noise.t * verdict.se(g.n, best.n, noise) if noise else math.inf
        if g.mean - best.mean <= width:
            near.append(describe(g, width))
    near.sort(key=lambda d: d["gap"])
    return dict(best=describe(best, None), sigma=noise.sigma if noise else None, sigma_dof=noise.dof if noise else None,
                sigma_source=source, near=near)


def format_near(near: dict) -> str:
    best = near["best"]
    if best is None:
        return "no ok runs yet: nothing to compare with"
    sig = (f"σ {near['sigma']:.6f} per run ({near['sigma_source']}, {near['sigma_dof']} degrees of freedom)"
           if near["sigma"] is not None else f"σ unknown ({near['sigma_source']})")
    lines = [f"the bar: {best['mean_val_bpb']:.6f} over {best['n']} run(s), commit {best['commit'] or '-'}: "
             f"{best['message'] or '(no message)'}; {sig}"]
    if not near["near"]:
        lines.append("no near-misses: every other result is worse than the best by more than the noise band")
    for d in near["near"]:
        what = "ahead, unconfirmed" if d["gap"] < 0 else "within the band"
        lines.append(f"  {d['mean_val_bpb']:.6f} ({d['gap']:+.6f}, band {d['band']:.6f}, {what}; {d['n']} run(s) "
                     f"{','.join(map(str, d['runs']))}) commit {d['commit'] or '-'}: {d['message'] or '(no message)'}"
                     + (f"  [{d['diff_summary']}]" if d.get("diff_summary") else ""))
    return "\n".join(lines)


# --- arp show -------------------------------------------------------------------------------------

def find_run(records: list[dict], key: str) -> tuple[int, dict]:
    """RUN (a number from `arp results`, `last`, or -N from the end) or COMMIT (a prefix of at
    least 4 characters: its latest run). UserError, one line, otherwise."""
    if not records:
        raise UserError("the ledger is empty")
    k = key.strip()
    if k == "last":
        k = "-1"
    if k.lstrip("-").isdigit() and (k.startswith("-") or int(k) <= len(records)):
        n = int(k)
        n = len(records) + 1 + n if n < 0 else n
        if 1 <= n <= len(records):
            return n, records[n - 1]
        raise UserError(f"no run {key}: the ledger has runs 1 to {len(records)}")
    if len(k) < 4:
        raise UserError(f"{key!r} is neither a run number (1 to {len(records)}) nor a commit (at least 4 characters)")
    hits = [(i, r) for i, r in enumerate(records, 1) if str(r.get("git_commit") or "").startswith(k)
            or k.startswith(str(r.get("git_commit") or "\0"))]
    if not hits:
        raise UserError(f"no run of commit {key} in the ledger")
    if len({r.get("git_commit") for _, r in hits}) > 1:
        raise UserError(f"{key} matches several commits; give more characters")
    return hits[-1]


def revision(folder, key: str) -> str:
    """`arp show` of a git revision (HEAD, HEAD~2, a branch, a tag): the commit it names in the
    workspace at `folder`; a run number, `last`, or what git does not know, unchanged."""
    k = key.strip()
    if k == "last" or k.lstrip("-").isdigit():
        return k
    sha = (git_output(folder, "rev-parse", "--verify", "--quiet", f"{k}^{{commit}}") or "").strip()
    return sha or k


def show(records: list[dict], key: str) -> dict:
    n, rec = find_run(records, key)
    out = run_row(n, rec)
    m = rec.get("metrics") or {}
    out.update(commit_message=rec.get("commit_message"), diff_base=rec.get("diff_base"), diff=rec.get("diff"),
               log_tail=rec.get("log_tail"), summary=format_summary(dict(m, status=out["status"], reason=rec.get("reason"))),
               same_code_runs=[i for i, r in enumerate(records, 1) if rec.get("train_py_sha256")
                               and r.get("train_py_sha256") == rec.get("train_py_sha256")])
    return out


def format_show(s: dict) -> str:
    head = [f"run {s['run']}  {s['time'] or '?'}  commit {s['commit'] or '-'} (parent {s['parent'] or '-'})"
            + ("  [uncommitted changes]" if s.get("git_dirty") else ""),
            "", (s.get("commit_message") or "(no commit message)").strip(), ""]
    if len(s["same_code_runs"]) > 1:
        head.append(f"same code (train.py hash) ran as runs {', '.join(map(str, s['same_code_runs']))}")
    if s.get("verdict"):
        head.append(s["verdict"])
    diff = s.get("diff") or ""
    body = [s["summary"], "",
            f"--- diff of train.py against {s.get('diff_base') or 'its parent'}: {s.get('diff_summary') or 'not recorded'}",
            diff.rstrip() if diff.strip() else "(no diff recorded)", "", "--- log tail (train.py's output)",
            (s.get("log_tail") or "(no log recorded)").rstrip()]
    return "\n".join(head + body)


# --- the table ------------------------------------------------------------------------------------

COLUMNS = ("run", "time", "commit", "status", "val_bpb", "±stderr", "gain", "normalized_bpb", "steps", "budget",
           "kept", "hypothesis")


def table_cells(r: dict) -> list[str]:
    """One run_row as the table's cells (plain text, shared by the plain and the rich table)."""
    status = r["status"] or "?"
    if status == "abandoned" and r.get("abandon_progress") is not None:
        status += f" @{100 * r['abandon_progress']:.0f}%"
    if r.get("node"):  # ran on a cluster (arp submit): which machine
        status += f" on {r['node']}"
    return [str(r["run"]), _short_time(r["time"]), r["commit"] or "-", status, _f(r["val_bpb"], ".6f"),
            _f(r["val_bpb_stderr"], ".6f"), summary.short_gain(r), _normalized(r), _f(r["num_steps"], "d"),
            _budget(r), {True: "keep", False: "", None: "?"}[r.get("kept")], (r.get("message") or "-")[:60]]


def _budget(r: dict) -> str:
    """120s, or 120s work / matched: runs compare only at the same budget and mode."""
    if not isinstance(r.get("budget_seconds"), (int, float)):
        return "?"
    mode = r.get("budget_mode") or "wall"
    return f"{r['budget_seconds']:g}s" + ("" if mode == "wall" else f" {mode}")


def notes(records: list[dict], rows: list[dict]) -> list[str]:
    ok = [r for r in rows if r["status"] == "ok" and isinstance(r["val_bpb"], (int, float)) and math.isfinite(r["val_bpb"])]
    out = []
    allok = [(i, rec) for i, rec in enumerate(records, 1) if memory._ok(rec)]
    if allok:
        out.append(f"{len(records)} runs, {len(allok)} ok; abandoned runs are never a best")
        budgets = {}  # the best of each budget and mode: val_bpb compares only within one
        for i, rec in allok:
            budgets.setdefault(_budget(rec["metrics"]), []).append((i, rec))
        for b, runs in budgets.items():
            i, best = min(runs, key=lambda t: t[1]["metrics"]["val_bpb"])
            out.append(f"best val_bpb at {b}: {best['metrics']['val_bpb']:.6f} (run {i}, {best.get('git_commit') or '?'})")
    if len(rows) < len(records):
        out.append(f"showing the last {len(rows)} ({len(ok)} ok among them)")
    out += gain_notes(rows)
    refs = sorted({r["normalized_reference"] for r in rows if r.get("normalized_reference")})
    if refs:
        out.append("normalized_bpb on the scale of: " + "; ".join(refs))
    if any(r["status"] == "untrusted" for r in rows):
        out.append("untrusted = not signed by the harness (written or edited by something else): never counted")
    note = skipped_note(records)
    if note:
        out.append(note)
    return out


def format_runs(records: list[dict], rows: list[dict]) -> str:
    if not records:
        return "the ledger is empty"
    body = [table_cells(r) for r in rows]
    return table(list(COLUMNS), body, left={1, 2, 3, 10, 11}) + "\n\n" + "\n".join(notes(records, rows))


def rich_table(rows: list[dict]):
    """The same table for a terminal, with rich (a dependency of typer): ok runs plain, kept ones
    green, failures dim."""
    from rich.table import Table

    t = Table(show_edge=False, header_style="bold")
    for i, c in enumerate(COLUMNS):
        t.add_column(c, justify="left" if i in (1, 2, 3, 10, 11) else "right", no_wrap=c != "hypothesis")
    for r in rows:
        style = "green" if r.get("kept") else ("" if r["status"] == "ok" else "dim")
        t.add_row(*table_cells(r), style=style)
    return t
