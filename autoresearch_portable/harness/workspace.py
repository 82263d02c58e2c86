"""`arp init`: a research workspace with train.py sized for this device, program.md and a
.gitignore, as a fresh git repository."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path

from autoresearch_portable import HARNESS_VERSION, paths
from autoresearch_portable.errors import UserError
from autoresearch_portable.fsutil import atomic_write_json, atomic_write_text
from autoresearch_portable.harness import sizing
from autoresearch_portable.harness.settings import FILE as SETTINGS_FILE, Workspace

GITIGNORE = """\
# run outputs stay out of the research history
results/
results.tsv
run.log
__pycache__/
"""


def asset(name: str) -> Path:
    """A file shipped with the package: inside the wheel (assets/), or at the top of a source
    checkout (editable install)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "assets" / name, here.parent / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"package file {name} is missing from this installation")


def template_name(backend: str) -> str:
    return "train_template_mlx.py" if backend == "mlx" else "train_template.py"


def render_template(text: str, values: dict) -> str:
    """Replace `NAME = ...` constant lines of the template, keeping their comments."""
    for name, value in values.items():
        pattern = re.compile(rf"^({name}\s*=\s*)([^#\n]*?)(\s*#.*)?$", re.M)
        if not pattern.search(text):
            raise ValueError(f"template has no constant {name}")
        text = pattern.sub(lambda m: f"{m.group(1)}{value!r}{m.group(3) or ''}", text, count=1)
    return text


def baseline_text(plan: dict, values: dict) -> str:
    """The template of the plan's backend with `values` and the plan's window pattern: the one
    baseline that init's probes measure, `arp init` writes and `arp calibrate` trains."""
    if plan.get("window_pattern"):
        values = {"WINDOW_PATTERN": plan["window_pattern"], **values}
    return render_template(asset(template_name(plan["backend"])).read_text(), values)


def throughput_probe(probe: dict, plan: dict, dataset: str, depth: int, dim: int, device_batch: int,
                     log=print) -> dict:
    """Run the real template for a few steps at one size and measure achieved FLOP/s. Cached per
    device, dataset, harness version and size (an OOM is cached too, as status "oom"); a rate
    measured while other processes loaded the machine is used but not cached."""
    from autoresearch_portable.harness.load import measure_quietly
    from autoresearch_portable.harness.peak import device_key
    from autoresearch_portable.harness.runner import run_training

    key = f"{device_key(probe, plan)}-{dataset}-h{HARNESS_VERSION}-d{depth}w{dim}b{device_batch}"
    cache = paths.probes_dir() / f"throughput-{key}.json"
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        pass
    from autoresearch_portable import data

    log(f"measuring throughput: depth {depth}, width {dim}, device batch {device_batch} ...")
    seq_len = data.load(dataset).seq_len
    text = baseline_text(plan, dict(DEPTH=depth, MODEL_DIM=dim, DEVICE_BATCH_SIZE=device_batch,
                                    TOTAL_BATCH_SIZE=device_batch * seq_len))

    def measure() -> dict:
        with tempfile.TemporaryDirectory(prefix="arp-probe-") as tmp:
            train_py = Path(tmp) / "train.py"
            train_py.write_text(text)
            return run_training(train_py, probe=probe, plan=plan, dataset=dataset, budget_seconds=60,
                                probe_steps=3, quiet=True, timeout=600)

    # only a rate depends on the load: an OOM or a crash is the same on a quiet machine
    result, cacheable = measure_quietly(measure, f"throughput probe (depth {depth}, width {dim}, device batch {device_batch})",
                                        log=log, load_matters=lambda r: r.get("status") == "ok")
    out = dict(depth=depth, model_dim=dim, device_batch=device_batch, status=result.get("status"),
               reason=result.get("reason"))
    if out["status"] == "ok":
        out.update(tokens_per_second=result["tokens_per_second"],
                   flops_per_second=result["tokens_per_second"] * result["flops_per_token"],
                   peak_memory_mb=result.get("peak_memory_mb"),
                   # launch to hand-over minus the timed steps: start-up, warm-up and export, as
                   # the parent's clock saw them (the allowance of wall-mode runs is made from it)
                   overhead_seconds=result["wall_seconds"] - result["training_seconds"],
                   # each phase as the parent saw it: every run's phase limits (harness/phases.py)
                   phases=result.get("phase_baseline") or None)
    if cacheable and out["status"] in ("ok", "oom"):  # facts about this device worth keeping
        atomic_write_json(cache, out)
    return out


def size_for_device(probe: dict, plan: dict, dataset: str, budget_seconds: float, log=print) -> dict:
    """Measure, choose, and if the choice is a different size, measure that size and choose again
    (small models run a device less efficiently, so the first estimate errs small). The final
    device batch is the largest that runs without OOM (autotune, halving)."""
    from autoresearch_portable import data
    from autoresearch_portable.harness.autotune import largest_fitting_batch

    ds = data.load(dataset)
    memory, _ = sizing.memory_cap(probe, plan)
    dtype_bytes = 4 if plan["dtype"] == "float32" else 2
    memory_model = dict(dtype_bytes=dtype_bytes, materialized_attention=sizing.attention_materialized(plan),
                        max_array_bytes=sizing.largest_array_bytes(probe, plan))
    depth, dim, batch = 4, 256, (1 if plan["device"] == "cpu" else 8)
    measured: dict[tuple, dict] = {}

    def trial(depth: int, dim: int):
        def run(b: int) -> str:
            measured[(depth, dim, b)] = tp = throughput_probe(probe, plan, dataset, depth, dim, b, log=log)
            if tp["status"] == "ok" and memory and (tp.get("peak_memory_mb") or 0) * 2**20 > memory:
                # it ran, but past the cap: on a Mac that is swapping (slow), not fitting
                return "oom"
            return tp["status"]
        return run

    chosen: dict = {}
    for _ in range(2):
        batch = largest_fitting_batch(trial(depth, dim), batch)
        tp = measured[(depth, dim, batch)]
        chosen = sizing.choose_baseline(tp["flops_per_second"], budget_seconds, ds.seq_len, ds.vocab_size, memory, **memory_model)
        chosen["measured_flops_per_second"] = tp["flops_per_second"]
        chosen["measured"] = tp
        if (chosen["DEPTH"], chosen["MODEL_DIM"], chosen["DEVICE_BATCH_SIZE"]) == (depth, dim, batch):
            return chosen
        depth, dim, batch = chosen["DEPTH"], chosen["MODEL_DIM"], chosen["DEVICE_BATCH_SIZE"]
    # the final size's device batch must run too
    chosen["DEVICE_BATCH_SIZE"] = largest_fitting_batch(trial(depth, dim), batch)
    chosen["measured"] = measured[(depth, dim, chosen["DEVICE_BATCH_SIZE"])]
    return chosen


SIZE_KEYS = ("DEPTH", "MODEL_DIM", "DEVICE_BATCH_SIZE", "TOTAL_BATCH_SIZE")


# What arp init writes (and commits): nothing else in the folder is touched or committed.
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
                   force: bool = False, log=print, sizes: dict | None = None) -> dict:
    """`sizes` with all of SIZE_KEYS skips the measurement (a user who knows what they want)."""
    target = Path(target)
    check_target(target, force)
    from autoresearch_portable import data

    seq_len = data.load(dataset).seq_len
    if sizes and all(sizes.get(k) for k in SIZE_KEYS):
        if sizes["TOTAL_BATCH_SIZE"] % (sizes["DEVICE_BATCH_SIZE"] * seq_len):
            raise UserError(f"--total-batch must be a multiple of --device-batch x seq_len ({seq_len})")
        # the user's sizes, measured once anyway: the evaluation set and the clock's allowance
        # are sized from this device's speed
        tp = throughput_probe(probe, plan, dataset, sizes["DEPTH"], sizes["MODEL_DIM"], sizes["DEVICE_BATCH_SIZE"], log=log)
        sizes = dict(sizes, HEAD_DIM=sizes.get("HEAD_DIM") or sizing.HEAD_DIM, sized_by="user",
                     expected_steps=None, measured=tp)
    else:
        sizes = size_for_device(probe, plan, dataset, budget_seconds, log=log)
    run_settings = workspace_run_settings(sizes.pop("measured", None), budget_seconds, seq_len)
    values = {k: sizes[k] for k in ("DEPTH", "MODEL_DIM", "HEAD_DIM", "DEVICE_BATCH_SIZE", "TOTAL_BATCH_SIZE")}
    text = baseline_text(plan, values)
    target.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target / "train.py", text)
    atomic_write_text(target / "program.md", asset("program.md").read_text())
    atomic_write_text(target / ".gitignore", GITIGNORE)
    Workspace(target, backend=plan["backend"], dataset=dataset, budget_seconds=budget_seconds, sizing=sizes,
              **run_settings).save()
    if not (target / ".git").exists():
        _git(target, "init", "-q")
    _git(target, "add", *WORKSPACE_FILES)
    unchanged = subprocess.run(["git", "diff", "--cached", "--quiet", "--", *WORKSPACE_FILES], cwd=target).returncode == 0
    if not unchanged:  # (a --force that writes what is already committed has nothing to commit)
        # the user's git identity if they have one; a placeholder so the first commit never fails
        has_identity = subprocess.run(["git", "config", "user.email"], cwd=target, capture_output=True, text=True).stdout.strip()
        identity = [] if has_identity else ["-c", "user.name=arp", "-c", "user.email=arp@localhost"]
        # only our files: anything else the user had staged stays staged, out of the baseline
        _git(target, *identity, "commit", "-q", "-m", "baseline from arp init", "--", *WORKSPACE_FILES)
    return sizes


def workspace_run_settings(measured: dict | None, budget_seconds: float, seq_len: int) -> dict:
    """What every run of the workspace shares: the number of scored rows (so two runs are scored
    on the same amount of text however fast each trained) and the measured start-up + export
    overhead the clock allows, and each phase's (start-up, warm-up, hand-over, CPU use) for the
    per-phase limits. Empty without a successful measurement (runs then size these
    themselves and say so)."""
    from autoresearch_portable.harness.budget import eval_rows

    if not measured or measured.get("status") != "ok":
        return {}
    out = dict(eval_rows=eval_rows(budget_seconds, measured["tokens_per_second"], seq_len))
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
