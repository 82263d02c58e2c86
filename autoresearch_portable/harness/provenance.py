"""What code a run ran with: hashes of train.py, of the harness's own files and of the Python
environment, and the git commit. The runner takes them before train.py starts and again before
the evaluator starts: train.py runs as the same user, and where it is not confined (harness/
confine.py) it could rewrite them, for instance drop a `.pth` file into site-packages that runs
only inside the evaluator and patches the scorer."""

from __future__ import annotations

import hashlib
import os
import site
import subprocess
import sysconfig
from pathlib import Path

HARNESS_ROOT = Path(__file__).resolve().parent.parent
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
    .pth files, which run at start-up), the user site and the standard library."""
    folders = [*site.getsitepackages(), site.getusersitepackages(),
               sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]]
    seen, out = set(), []
    for f in folders:
        p = Path(f)
        if p.is_dir() and p.resolve() not in seen:
            seen.add(p.resolve())
            out.append(p)
    return out


def environment_digest(folders: list[Path] | None = None) -> dict[str, str]:
    """Per folder, a hash of every code file's path, size and modification time, and of the
    contents of every .pth file. Stat only (the folders hold gigabytes of torch): about 0.2 s for
    a venv with torch. A file added, removed, replaced or touched changes it."""
    out = {}
    for folder in folders if folders is not None else environment_folders():
        h = hashlib.sha256()
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                if not name.endswith(CODE_SUFFIXES):
                    continue
                path = os.path.join(root, name)
                try:
                    st = os.stat(path)
                    h.update(f"{os.path.relpath(path, folder)} {st.st_size} {st.st_mtime_ns}\n".encode())
                    if name.endswith(".pth"):
                        h.update(Path(path).read_bytes())
                except OSError:
                    h.update(f"{name} ?\n".encode())
        out[str(folder)] = h.hexdigest()
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
