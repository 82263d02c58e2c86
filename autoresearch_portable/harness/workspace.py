"""`arp init`: a research workspace with train.py sized for this device, program.md and a
.gitignore, as a fresh git repository."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from autoresearch_portable.errors import UserError
from autoresearch_portable.fsutil import atomic_write_text
from autoresearch_portable.harness.baseline import sizing
from autoresearch_portable.harness.baseline import template
from autoresearch_portable.harness.baseline.template import SIZE_KEYS, asset, baseline_text
from autoresearch_portable.harness.run.provenance import normalized_sha256
from autoresearch_portable.harness.run.settings import FILE as SETTINGS_FILE, Workspace

GITIGNORE = """\
# run outputs stay out of the research history
results/
results.tsv
run.log
__pycache__/
"""


# What arp init writes (and commits; with --parallel program_parallel.md too): nothing else in the
# folder is touched or committed.
WORKSPACE_FILES = ("train.py", "program.md", ".gitignore", SETTINGS_FILE)


def check_target(target: Path, force: bool = False) -> None:
    """Fail early (UserError, one line) unless `target` can become a workspace: creatable and
    writable, empty unless --force, and with --force no uncommitted work in the files arp init
    would overwrite. Creates the folder. Cheap: runs before anything is measured."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise UserError(f"{target} exists and is not a folder")
    try:
        if target.exists() and any(target.iterdir()):
            if not force:
                raise UserError(f"{target} is not empty (use --force to write into it anyway)")
            unsaved = _unsaved_work(target)
            if unsaved:
                raise UserError(f"{target} has uncommitted work in {', '.join(unsaved)}; commit or move it "
                                "first (arp init --force overwrites these files and never discards work)")
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as e:
        raise UserError(f"cannot create a workspace in {target}: {e.strerror or e}") from None


def _unsaved_work(target: Path) -> list[str]:
    """The files arp init would overwrite that hold work not in git: in a workspace repository,
    those git reports as changed, staged or untracked; in any other folder, those that exist."""
    if not (target / ".git").exists():
        return [f for f in WORKSPACE_FILES if (target / f).exists()]
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", *WORKSPACE_FILES],
                             cwd=target, capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        raise UserError("git is not installed; arp init needs it for the workspace history") from None
    except subprocess.CalledProcessError as e:
        raise UserError(f"git status failed in {target}: {e.stderr.strip()[:200]}") from None
    return [line[3:] for line in out.splitlines() if line.strip()]


def init_workspace(target: Path, probe: dict, plan: dict, dataset: str, budget_seconds: float,
                   force: bool = False, log=print, sizes: dict | None = None, parallel: bool = False) -> dict:
    """`sizes` with all of SIZE_KEYS (HEAD_DIM optional) skips the measurement (a user who knows what they want).
    `parallel` (arp init --parallel): program_parallel.md too, the loop with many experiments at once."""
    target = Path(target)
    check_target(target, force)
    from autoresearch_portable import data

    seq_len = data.load(dataset).seq_len
    if sizes and all(sizes.get(k) for k in SIZE_KEYS if k != "HEAD_DIM"):
        if sizes["TOTAL_BATCH_SIZE"] % (sizes["DEVICE_BATCH_SIZE"] * seq_len):
            raise UserError(f"--total-batch must be a multiple of --device-batch x seq_len ({seq_len})")
        # the user's sizes, measured once anyway: the evaluation set and the clock's allowance
        # are sized from this device's speed
        tp = template.throughput_probe(probe, plan, dataset, sizes["DEPTH"], sizes["MODEL_DIM"], sizes["DEVICE_BATCH_SIZE"], log=log)
        sizes = dict(sizes, HEAD_DIM=sizes.get("HEAD_DIM") or sizing.HEAD_DIM, sized_by="user",
                     expected_steps=None, measured=tp)
    else:
        sizes = template.size_for_device(probe, plan, dataset, budget_seconds, log=log)
    run_settings = workspace_run_settings(sizes.pop("measured", None), budget_seconds, seq_len)
    values = {k: sizes[k] for k in ("DEPTH", "MODEL_DIM", "HEAD_DIM", "DEVICE_BATCH_SIZE", "TOTAL_BATCH_SIZE")}
    text = baseline_text(plan, values)
    target.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target / "train.py", text)
    programs = ("program.md", "program_parallel.md") if parallel else ("program.md",)
    for name in programs:
        atomic_write_text(target / name, asset(name).read_text())
    atomic_write_text(target / ".gitignore", GITIGNORE)
    Workspace(target, backend=plan["backend"], dataset=dataset, budget_seconds=budget_seconds, sizing=sizes,
              baseline_sha256=normalized_sha256(text), **run_settings).save()
    if not (target / ".git").exists():
        _git(target, "init", "-q")
    files = (*WORKSPACE_FILES, *programs[1:])
    _git(target, "add", *files)
    unchanged = subprocess.run(["git", "diff", "--cached", "--quiet", "--", *files], cwd=target).returncode == 0
    if not unchanged:  # (a --force that writes what is already committed has nothing to commit)
        # the user's git identity if they have one; a placeholder so the first commit never fails
        has_identity = subprocess.run(["git", "config", "user.email"], cwd=target, capture_output=True, text=True).stdout.strip()
        identity = [] if has_identity else ["-c", "user.name=arp", "-c", "user.email=arp@localhost"]
        # only our files: anything else the user had staged stays staged, out of the baseline
        _git(target, *identity, "commit", "-q", "-m", "baseline from arp init", "--", *files)
    return sizes


def workspace_run_settings(measured: dict | None, budget_seconds: float, seq_len: int) -> dict:
    """What every run of the workspace shares: the number of scored rows (so two runs are scored
    on the same amount of text however fast each trained) and the measured start-up + export
    overhead the clock allows, and each phase's (start-up, warm-up, hand-over, CPU use) for the
    per-phase limits. Empty without a successful measurement (runs then size these
    themselves and say so)."""
    from autoresearch_portable.harness.run.budget import eval_rows

    if not measured or measured.get("status") != "ok":
        return {}
    out = dict(eval_rows=eval_rows(budget_seconds, measured["tokens_per_second"], seq_len,
                                   forward_tokens_per_second=measured.get("forward_tokens_per_second")))
    if measured.get("overhead_seconds") is not None:
        out["overhead_seconds"] = round(float(measured["overhead_seconds"]), 2)
    if measured.get("phases"):
        out["phases"] = measured["phases"]
    return out


def template_family(backend: str) -> str:
    """Which template a backend runs: the MLX one, or the torch one (cuda, mps, cpu)."""
    return "mlx" if backend == "mlx" else "torch"


def check_backend(train_py: Path, backend: str) -> None:
    """Refuse (UserError, one line) to run a train.py written for the other framework: an MLX
    train.py on a torch backend or the reverse would only fail later with an obscure error. The
    file's own imports decide; failing those, the workspace's .arp.json (what arp init chose)."""
    train_py = Path(train_py)
    try:
        text = train_py.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    has_mlx = re.search(r"^\s*(import|from)\s+mlx\b", text, re.M)
    has_torch = re.search(r"^\s*(import|from)\s+torch\b", text, re.M)
    written_for, how = ("mlx" if has_mlx else "torch", "imports") if bool(has_mlx) != bool(has_torch) else (None, "")
    if written_for is None:
        chosen = Workspace.load(train_py.parent).backend
        if not isinstance(chosen, str):
            return
        written_for, how = template_family(chosen), f"was created for {chosen}"
    if written_for != template_family(backend):
        what = "its imports" if how == "imports" else f"the workspace {how}"
        raise UserError(
            f"{train_py} is written for {written_for} ({what}) but the backend is {backend}; use "
            f"{'a torch backend (cuda, mps or cpu)' if written_for == 'torch' else 'the mlx backend'}, or create a "
            f"workspace for {backend} with `arp init DIR --backend {backend}`"
        )


def _git(cwd: Path, *args: str) -> None:
    try:
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise UserError("git is not installed; arp init needs it for the workspace history")
    except subprocess.CalledProcessError as e:
        raise UserError(f"git {args[0]} failed in {cwd}: {e.stderr.strip()[:200]}")
