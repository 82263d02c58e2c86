"""The baseline train.py of a device: the template rendered with its constants, and the sizes
`arp init` chooses for it (measured throughput -> sizing.py's choice, the device batch autotuned)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from autoresearch_portable import HARNESS_VERSION, paths
from autoresearch_portable.detect import plan as plan_mod
from autoresearch_portable.fsutil import atomic_write_json, read_json
from autoresearch_portable.harness.baseline import sizing


# the constants of train.py that size the baseline for a device
SIZE_KEYS = ("DEPTH", "MODEL_DIM", "HEAD_DIM", "DEVICE_BATCH_SIZE", "TOTAL_BATCH_SIZE")


def asset(name: str) -> Path:
    """A file shipped with the package: inside the wheel (assets/), or at the top of a source
    checkout (editable install)."""
    here = Path(__file__).resolve().parents[2]  # the package
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
    from autoresearch_portable.detect.load import measure_quietly
    from autoresearch_portable.harness.run.peak import device_key
    from autoresearch_portable.harness.run.launch import run_training

    key = f"{device_key(probe, plan)}-{dataset}-h{HARNESS_VERSION}-d{depth}w{dim}b{device_batch}"
    cache = paths.probes_dir() / f"throughput-{key}.json"
    cached = read_json(cache)
    if cached is not None and (cached.get("status") != "ok" or cached.get("forward_tokens_per_second")):
        return cached  # (an ok one measured before the forward rate was is measured again)
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
                   forward_tokens_per_second=result.get("forward_tokens_per_second"),  # sizes the evaluation
                   # launch to hand-over minus the timed steps: start-up, warm-up and export, as
                   # the parent's clock saw them (the allowance of wall-mode runs is made from it)
                   overhead_seconds=result["wall_seconds"] - result["training_seconds"],
                   # each phase as the parent saw it: every run's phase limits (harness/run/phases.py)
                   phases=result.get("phase_baseline") or None)
    if cacheable and out["status"] in ("ok", "oom"):  # facts about this device worth keeping
        atomic_write_json(cache, out)
    return out


def size_for_device(probe: dict, plan: dict, dataset: str, budget_seconds: float, log=print) -> dict:
    """Measure, choose, and if the choice is a different size, measure that size and choose again
    (small models run a device less efficiently, so the first estimate errs small). The final
    device batch is the largest that runs without OOM (autotune, halving)."""
    from autoresearch_portable import data
    from autoresearch_portable.harness.run.autotune import largest_fitting_batch

    ds = data.load(dataset)
    memory, _ = plan_mod.memory_cap(probe, plan)
    dtype_bytes = 4 if plan["dtype"] == "float32" else 2
    memory_model = dict(dtype_bytes=dtype_bytes, materialized_attention=plan_mod.attention_materialized(plan),
                        max_array_bytes=plan_mod.largest_array_bytes(probe, plan))
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


def baseline_source(plan: dict, sizes: dict, model_seed: int | None = None) -> str:
    """The unmodified baseline train.py for this device, rendered as `arp init` renders it."""
    values = {k: sizes[k] for k in SIZE_KEYS if k in sizes}
    if model_seed is not None:
        values["SEED"] = model_seed
    return baseline_text(plan, values)
