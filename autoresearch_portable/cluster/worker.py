"""One experiment inside a Ray task: check out its commit, run it through the same steps as
`arp train` (harness/experiment.py: plan and execute; the driver records), with *this* device's
calibration for early abandonment and the normalized metrics, and return the result. It writes no
ledger: the driver is the only writer, and signs the line.

The checkout is a fresh git repository in a temporary folder, filled from a bundle of the commit
the driver sends with the task, so it works on a node that does not share the workspace's disk,
and `git rev-parse HEAD` in it names exactly the submitted commit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autoresearch_portable.errors import UserError

LOG_TAIL_BYTES = 64_000  # the experiment's output that travels back (the driver writes it to its log)


def checkout(bundle: bytes, ref: str, commit: str, folder: Path) -> Path:
    """A git repository at `folder` whose HEAD is `commit` (detached), from a bundle holding `ref`."""
    folder.mkdir(parents=True)
    (folder.parent / "commit.bundle").write_bytes(bundle)
    quiet = dict(cwd=folder, check=True, capture_output=True, text=True)
    try:
        subprocess.run(["git", "init", "-q"], **quiet)
        subprocess.run(["git", "fetch", "-q", str(folder.parent / "commit.bundle"), ref], **quiet)
        subprocess.run(["git", "-c", "advice.detachedHead=false", "checkout", "-q", commit], **quiet)
    except FileNotFoundError:
        raise UserError("git is not installed on this node") from None
    except subprocess.CalledProcessError as e:
        raise UserError(f"could not check out {commit[:7]} on this node: {e.stderr.strip()[:200]}") from None
    return folder / "train.py"


def run_experiment(train_py: Path, options: dict, on_plan=None) -> tuple[dict, dict, dict]:
    """The run `arp train` makes (harness/experiment.py plan and execute: the workspace's
    settings, early abandonment against this node's calibrated baseline, the normalized metrics of
    this node's calibration), without the ledger: (result, probe, plan). A problem found before
    training starts (wrong framework, a dataset missing on this node) raises UserError. A generated
    corpus (bundled, bundled-v2) is generated on a node that lacks it; any other dataset must have
    been prepared there (`arp prepare` on each node)."""
    from autoresearch_portable import data
    from autoresearch_portable.harness import experiment

    try:
        spec = experiment.plan(train_py, experiment.Options.from_dict(options), log=lambda m: None, on_device=on_plan)
    except data.DataError as e:
        dataset = options.get("dataset")
        raise UserError(f"on {socket.gethostname()}: {e} (`arp prepare --dataset {dataset}` prepares it there)") from None
    return experiment.execute(spec), spec.probe, spec.plan


def where(gpu_ids: list, cpus: float) -> tuple[str, str]:
    """(node, slot) names for the ledger and `arp queue`."""
    slot = ("gpu " + ",".join(str(g) for g in gpu_ids)) if gpu_ids else f"{cpus:g} cpu"
    return socket.gethostname(), slot


def run_task(spec: dict, inbox) -> dict:
    """The body of the Ray task. `spec`: id, commit, ref, bundle (bytes), options. `inbox`: the
    driver's mailbox actor, told when the experiment starts (which node, slot, device)."""
    import ray

    from autoresearch_portable.harness.run.peak import device_key

    ctx = ray.get_runtime_context()
    gpu_ids = ray.get_gpu_ids()
    cpus = float(ctx.get_assigned_resources().get("CPU", 0))
    node, slot = where(gpu_ids, cpus)
    if cpus >= 1 and not gpu_ids:
        os.environ["OMP_NUM_THREADS"] = str(int(cpus))  # train.py and the evaluator use the slot's cores
    started = time.time()
    inbox.tell.remote(dict(id=spec["id"], event="start", node=node, slot=slot, pid=os.getpid(), time=started))
    # (not waited on: a task blocked in ray.get lends its CPU to another task)
    out = dict(id=spec["id"], node=node, node_ip=ray.util.get_node_ip_address(), node_id=ctx.get_node_id(),
               slot=slot, threads=int(cpus) if not gpu_ids else None, worker_pid=os.getpid(), started=started)
    with tempfile.TemporaryDirectory(prefix=f"arp-task-{spec['id']}-") as tmp:
        log_path = Path(tmp) / "output.log"
        saved = sys.stdout, sys.stderr
        with open(log_path, "w", buffering=1, errors="replace") as log:
            sys.stdout = sys.stderr = log  # the run's pumps write train.py's output here
            try:
                train_py = checkout(spec["bundle"], spec["ref"], spec["commit"], Path(tmp) / "ws")
                out["checkout_seconds"] = round(time.time() - started, 3)
                def tell_device(pr, plan):
                    inbox.tell.remote(dict(id=spec["id"], event="device", device=device_key(pr, plan)))

                result, pr, plan = run_experiment(train_py, spec["options"], on_plan=tell_device)
                out.update(result=result, probe=pr, plan=plan, device=device_key(pr, plan), train_py=str(train_py))
            except UserError as e:
                out.update(result=dict(status="crash", reason=f"not started: {e}", budget_seconds=spec["options"]["budget"]))
            finally:
                sys.stdout, sys.stderr = saved
        out["output"] = log_path.read_bytes()[-LOG_TAIL_BYTES:].decode("utf-8", "replace")
    out["finished"] = time.time()
    return out
