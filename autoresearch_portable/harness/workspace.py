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

GITIGNORE = """\
# run outputs stay out of the research history
results/
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
    text = asset(template_name(plan["backend"])).read_text()
    text = render_template(text, dict(DEPTH=depth, MODEL_DIM=dim, DEVICE_BATCH_SIZE=device_batch,
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
                   overhead_seconds=result["wall_seconds"] - result["training_seconds"])
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
    memory = _device_memory(probe, plan)
    dtype_bytes = 4 if plan["dtype"] == "float32" else 2
    depth, dim, batch = 4, 256, (1 if plan["device"] == "cpu" else 8)
    measured: dict[tuple, dict] = {}

    def trial(depth: int, dim: int):
        def run(b: int) -> str:
            measured[(depth, dim, b)] = tp = throughput_probe(probe, plan, dataset, depth, dim, b, log=log)
            return tp["status"]
        return run

    chosen: dict = {}
    for _ in range(2):
        batch = largest_fitting_batch(trial(depth, dim), batch)
        tp = measured[(depth, dim, batch)]
        chosen = sizing.choose_baseline(tp["flops_per_second"], budget_seconds, ds.seq_len, ds.vocab_size, memory, dtype_bytes)
        chosen["measured_flops_per_second"] = tp["flops_per_second"]
        chosen["measured"] = tp
        if (chosen["DEPTH"], chosen["MODEL_DIM"], chosen["DEVICE_BATCH_SIZE"]) == (depth, dim, batch):
            return chosen
        depth, dim, batch = chosen["DEPTH"], chosen["MODEL_DIM"], chosen["DEVICE_BATCH_SIZE"]
    # the final size's device batch must run too
    chosen["DEVICE_BATCH_SIZE"] = largest_fitting_batch(trial(depth, dim), batch)
    chosen["measured"] = measured[(depth, dim, chosen["DEVICE_BATCH_SIZE"])]
    return chosen


def _device_memory(probe: dict, plan: dict) -> float | None:
    gpus = probe.get("gpus") or []
    if plan["backend"] == "cuda" and gpus:
        return gpus[0].get("memory_bytes")
    return probe.get("memory_bytes")


SIZE_KEYS = ("DEPTH", "MODEL_DIM", "DEVICE_BATCH_SIZE", "TOTAL_BATCH_SIZE")


def init_workspace(target: Path, probe: dict, plan: dict, dataset: str, budget_seconds: float,
                   force: bool = False, log=print, sizes: dict | None = None) -> dict:
    """`sizes` with all of SIZE_KEYS skips the measurement (a user who knows what they want)."""
    target = Path(target)
    if target.exists() and any(target.iterdir()) and not force:
        raise UserError(f"{target} is not empty (use --force to write into it anyway)")
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
    text = render_template(asset(template_name(plan["backend"])).read_text(), values)
    target.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target / "train.py", text)
    atomic_write_text(target / "program.md", asset("program.md").read_text())
    atomic_write_text(target / ".gitignore", GITIGNORE)
    atomic_write_json(target / ".arp.json", dict(backend=plan["backend"], dataset=dataset, budget_seconds=budget_seconds,
                                                 sizing=sizes, **run_settings))
    if not (target / ".git").exists():
        _git(target, "init", "-q")
    _git(target, "add", "train.py", "program.md", ".gitignore", ".arp.json")
    # the user's git identity if they have one; a placeholder so the first commit never fails
    has_identity = subprocess.run(["git", "config", "user.email"], cwd=target, capture_output=True, text=True).stdout.strip()
    identity = [] if has_identity else ["-c", "user.name=arp", "-c", "user.email=arp@localhost"]
    _git(target, *identity, "commit", "-q", "-m", "baseline from arp init")
    return sizes


def workspace_run_settings(measured: dict | None, budget_seconds: float, seq_len: int) -> dict:
    """What every run of the workspace shares: the number of scored rows (so two runs are scored
    on the same amount of text however fast each trained) and the measured start-up + export
    overhead the clock allows. Empty without a successful measurement (runs then size these
    themselves and say so)."""
    from autoresearch_portable.harness.budget import eval_rows

    if not measured or measured.get("status") != "ok":
        return {}
    out = dict(eval_rows=eval_rows(budget_seconds, measured["tokens_per_second"], seq_len))
    if measured.get("overhead_seconds") is not None:
        out["overhead_seconds"] = round(float(measured["overhead_seconds"]), 2)
    return out


def _git(cwd: Path, *args: str) -> None:
    try:
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise UserError("git is not installed; arp init needs it for the workspace history")
    except subprocess.CalledProcessError as e:
        raise UserError(f"git {args[0]} failed in {cwd}: {e.stderr.strip()[:200]}")
