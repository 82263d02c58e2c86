"""What code a run ran with: hashes of train.py, of the harness's own files and of the Python
environment, and the git commit. The runner takes them before train.py starts and again before
the evaluator starts: train.py runs as the same user, and where it is not confined (harness/
confine.py) it could rewrite them, for instance drop a `.pth` file into site-packages that runs
only inside the evaluator and patches the scorer."""

from __future__ import annotations

import hashlib
import io
import os
import site
import subprocess
import sysconfig
import tokenize
from pathlib import Path

from autoresearch_portable.harness.run.outcome import Code

HARNESS_ROOT = Path(__file__).resolve().parents[2]  # the package
DIFF_CAP = 20_000  # of the diff kept in the ledger
CODE_SUFFIXES = (".py", ".pth", ".so", ".pyd", ".dylib")  # what the interpreter may import or run


def harness_digest(root: Path | None = None) -> str:
    """Hash of the harness's own source files."""
    root = Path(root) if root is not None else HARNESS_ROOT
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"?")
    return h.hexdigest()


def environment_folders() -> list[Path]:
    """Where the evaluator's interpreter finds code outside the harness: site-packages (with its
    .pth files, which run at start-up), the user site and the standard library. A folder inside
    another one listed (a venv's site-packages inside its lib/pythonX.Y) is walked once."""
    folders = [*site.getsitepackages(), site.getusersitepackages(),
               sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]]
    found = {Path(f).resolve() for f in folders if Path(f).is_dir()}
    return sorted(p for p in found if not any(q != p and q in p.parents for q in found))


def environment_digest(folders: list[Path] | None = None) -> dict[str, str]:
    """Per folder, a hash of every code file's path, size and modification time, and of the
    contents of every .pth file. Stat only (the folders hold gigabytes of torch): about 0.4 s for
    a venv with torch and the standard library. A file added, removed, replaced or touched
    changes it."""
    out = {}
    for folder in folders if folders is not None else environment_folders():
        lines: list[str] = []
        stack = [str(folder)]
        while stack:
            try:
                entries = sorted(os.scandir(stack.pop()), key=lambda e: e.name)
            except OSError:
                continue
            subfolders = []
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    subfolders.append(e.path)
                elif e.name.endswith(CODE_SUFFIXES):
                    try:
                        st = e.stat()
                        lines.append(f"{e.path} {st.st_size} {st.st_mtime_ns}\n")
                        if e.name.endswith(".pth"):
                            lines.append(Path(e.path).read_text(errors="replace"))
                    except OSError:
                        lines.append(f"{e.path} ?\n")
            stack.extend(reversed(subfolders))
        out[str(folder)] = hashlib.sha256("".join(lines).encode()).hexdigest()
    return out


def changed_folders(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def git_commit(folder: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def git_dirty(train_py: Path) -> bool | None:
    """Whether train.py differs from the commit (then the commit does not name the code that ran)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--", train_py.name], cwd=train_py.parent,
                             capture_output=True, text=True, timeout=5)
        return bool(out.stdout.strip()) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def git_output(folder: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def normalized_sha256(text: str) -> str | None:
    """Hash of the code's tokens without comments, blank lines or layout: the same code with a
    reworded comment or re-indented continuation lines hashes the same. None if it does not
    tokenize (a syntax error: the exact hash still identifies it)."""
    parts = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING):
                continue
            parts.append(f"{tok.type}:{tok.string}")
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def summarize_diff(diff: str, max_lines: int = 4, width: int = 80) -> str:
    """`+a -b: <first changed lines>` from a unified diff."""
    added = removed = 0
    shown = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            continue
        if line.startswith(("+", "-")):
            added += line[0] == "+"
            removed += line[0] == "-"
            body = " ".join(line[1:].split())
            if body and len(shown) < max_lines:
                shown.append(line[0] + body[:width])
    if not added and not removed:
        return "no change to train.py"
    return f"+{added} -{removed}: " + " | ".join(shown)


def code_of(train_py: Path) -> Code:
    """What the run's code is: its hashes, commit, parent commit, message, diff against the parent, normalized hash.
    The parent is HEAD~1 when train.py is committed; when it has uncommitted changes, the code that
    runs is HEAD plus those changes, and the diff is against HEAD (`diff_base`)."""
    train_py = Path(train_py)
    out = dict(train_py_sha256=file_sha256(train_py), git_commit=git_commit(train_py.parent), git_dirty=git_dirty(train_py))
    try:
        out.update(train_py_norm_sha256=normalized_sha256(train_py.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        pass
    folder, name = train_py.parent, train_py.name
    if git_output(folder, "rev-parse", "--verify", "-q", "HEAD") is None:
        return Code(**out)
    parent = (git_output(folder, "rev-parse", "--short", "-q", "--verify", "HEAD~1") or "").strip() or None
    message = (git_output(folder, "log", "-1", "--format=%B") or "").strip()
    tracked = bool((git_output(folder, "ls-files", "--", name) or "").strip())
    dirty = bool((git_output(folder, "status", "--porcelain", "--", name) or "").strip())
    if not tracked:
        base, diff = None, ""
    elif dirty:
        base, diff = (git_output(folder, "rev-parse", "--short", "HEAD") or "").strip() or None, git_output(folder, "diff", "HEAD", "--", name) or ""
    elif parent:
        base, diff = parent, git_output(folder, "diff", "HEAD~1", "HEAD", "--", name) or ""
    else:
        base, diff = None, ""
    out.update(git_parent=parent, diff_base=base, commit_message=message[:2000] or None, diff=diff[:DIFF_CAP],
               diff_summary=(summarize_diff(diff) if base else "first commit (nothing to compare with)")
               + (" (uncommitted)" if dirty else ""))
    return Code(**out)
