"""The Ray side: which cluster, what one experiment asks of it, and what `arp doctor` shows.

Ray does the scheduling, the placement, the retries and notices dead workers and nodes; this
module only says what to ask for:
* a cluster: the address given to `arp submit --address` (kept in results/cluster/config.json),
  else RAY_ADDRESS, else a local cluster that the workspace's driver starts (`ray.init`) and that
  ends with it;
* one experiment = one task with `max_retries=1` (a worker or node that dies mid-run gets the task
  run again once; the second death reaches the driver as an error and the run is recorded `lost`);
* its slot: one GPU (`num_gpus=1`) where the cluster has GPUs, else a whole CPU node
  (`num_cpus` = the smallest node's cores) or `--cpus-per-slot N` cores."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from autoresearch_portable.cluster import queue, worker
from autoresearch_portable.errors import UserError
from autoresearch_portable.fsutil import atomic_write_json, read_json

NAMESPACE = "autoresearch-portable"
LOCAL_OBJECT_STORE = 256 * 2**20  # results are small; Ray's default would take 30 % of the memory
STATUS_TIMEOUT = 20.0  # arp doctor gives an unreachable cluster this long


def require_ray():
    try:
        import ray
    except ImportError:
        raise UserError("running experiments in parallel needs Ray: pip install 'autoresearch-portable[cluster]'") from None
    return ray


# --- settings of a workspace -------------------------------------------------------------------

def settings_path(workspace: Path) -> Path:
    return queue.cluster_dir(workspace) / "config.json"


def load_settings(workspace: Path) -> dict:
    return read_json(settings_path(workspace)) or {}


def save_settings(workspace: Path, address: str | None, cpus_per_slot: int | None) -> dict:
    """Remember `--address` / `--cpus-per-slot` for the workspace (a restarted driver uses them)."""
    current = load_settings(workspace)
    if address is not None:
        current["address"] = address or None  # --address "" forgets it
    if cpus_per_slot is not None:
        if cpus_per_slot < 1:
            raise UserError("--cpus-per-slot must be at least 1")
        current["cpus_per_slot"] = cpus_per_slot
    atomic_write_json(settings_path(workspace), current)
    return current


def address_for(settings: dict) -> str | None:
    """The cluster to join, None for a local one the driver starts."""
    return settings.get("address") or os.environ.get("RAY_ADDRESS") or None


# --- what one experiment asks for ------------------------------------------------------------

def slot_options(resources: dict, node_cpus: list[float], cpus_per_slot: int | None) -> dict:
    """Ray resources of one experiment: a GPU where the cluster has any, else `cpus_per_slot`
    cores, by default all cores of the smallest CPU node (one experiment per node)."""
    if resources.get("GPU", 0) >= 1:
        return dict(num_gpus=1, num_cpus=1)
    smallest = min((c for c in node_cpus if c >= 1), default=1)
    return dict(num_cpus=min(cpus_per_slot, smallest) if cpus_per_slot else smallest)


def slot_count(resources: dict, node_cpus: list[float], cpus_per_slot: int | None) -> int:
    """How many experiments run at once with those options."""
    opts = slot_options(resources, node_cpus, cpus_per_slot)
    if "num_gpus" in opts:
        return int(resources.get("GPU", 0))
    return sum(int(c // opts["num_cpus"]) for c in node_cpus)


def connect(address: str | None):
    """Join the cluster at `address`, or start a local one (all cores and GPUs of this machine)."""
    ray = require_ray()
    if address:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    else:
        ray.init(address="local", namespace=NAMESPACE, log_to_driver=False, include_dashboard=False,
                 num_cpus=os.cpu_count(), object_store_memory=LOCAL_OBJECT_STORE)
    return ray


def alive_node_cpus(ray) -> list[float]:
    return [float(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]


class Inbox:
    """The driver's mailbox (a Ray actor): workers tell it when they start an experiment, the
    driver drains it. Telling is fire-and-forget, so a worker never blocks on it."""

    def __init__(self):
        self.messages = []

    def tell(self, message: dict) -> None:
        self.messages.append(message)

    def drain(self) -> list:
        out, self.messages = self.messages, []
        return out


def make_inbox(ray):
    return ray.remote(num_cpus=0)(Inbox).remote()


def submit(ray, spec: dict, slot: dict, inbox):
    """One experiment as one Ray task: retried once if its worker or node dies."""
    task = ray.remote(max_retries=1, retry_exceptions=False)(worker.run_task)
    return task.options(name=f"arp-{spec['id']}", **slot).remote(spec, inbox)


# --- arp doctor ---------------------------------------------------------------------------------

def status(address: str) -> dict:
    """The cluster at `address` (in a child process with a deadline: an unreachable address
    must not hang `arp doctor`)."""
    try:
        run = subprocess.run([sys.executable, "-m", "autoresearch_portable.cluster.engine", address],
                             capture_output=True, text=True, timeout=STATUS_TIMEOUT)
    except subprocess.TimeoutExpired:
        return dict(address=address, error=f"no answer within {STATUS_TIMEOUT:.0f}s")
    try:
        return json.loads(run.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        lines = [l for l in run.stderr.splitlines() if l.strip()]
        return dict(address=address, error=(lines[-1] if lines else "no answer")[:300])


def _status_here(address: str) -> dict:
    ray = require_ray()
    ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level="ERROR")
    nodes = [dict(host=n.get("NodeManagerHostname") or n.get("NodeManagerAddress"), ip=n.get("NodeManagerAddress"),
                  cpus=n["Resources"].get("CPU", 0), gpus=n["Resources"].get("GPU", 0))
             for n in ray.nodes() if n.get("Alive")]
    out = dict(address=address, nodes=nodes, total=ray.cluster_resources(), free=ray.available_resources())
    ray.shutdown()
    return out


def local_plan(probe: dict) -> dict:
    """What a local cluster on this machine would offer (nothing is started)."""
    gpus = len(probe.get("gpus") or [])
    cpus = float(probe.get("logical_cores") or os.cpu_count() or 1)
    return dict(cpus=cpus, gpus=gpus)


def format_status(info: dict | None, settings: dict, local: dict, ray_installed: bool) -> str:
    per_slot = settings.get("cpus_per_slot")
    lines = ["", "cluster"]
    if not ray_installed:
        return "\n".join(lines + ["  Ray is not installed: arp submit needs pip install 'autoresearch-portable[cluster]'"])
    if info is None:
        res = dict(CPU=local["cpus"], GPU=local["gpus"])
        n = slot_count(res, [local["cpus"]], per_slot)
        what = f"{n} slot(s) of one GPU" if local["gpus"] else f"{n} slot(s) of {slot_options(res, [local['cpus']], per_slot)['num_cpus']:g} cpu"
        return "\n".join(lines + ["  none configured (no RAY_ADDRESS, no `arp submit --address`): arp submit starts a "
                                  f"local Ray cluster on this machine: {what}"])
    lines.append(f"  address:     {info.get('address')}")
    if info.get("error"):
        return "\n".join(lines + [f"  not reachable: {info['error']}"])
    total, free = info.get("total", {}), info.get("free", {})
    for n in info.get("nodes", []):
        lines.append(f"  node:        {n['host']} ({n['ip']}): {n['cpus']:g} cpu, {n['gpus']:g} gpu")
    node_cpus = [float(n["cpus"]) for n in info.get("nodes", [])]
    slots = slot_count(total, node_cpus, per_slot)
    opts = slot_options(total, node_cpus, per_slot)
    unit = "GPU" if "num_gpus" in opts else "CPU"
    size = 1 if unit == "GPU" else opts["num_cpus"]
    free_slots = int(math.floor(free.get(unit, 0) / size))
    lines.append(f"  slots:       {slots} of {size:g} {unit} each, {min(free_slots, slots)} free now")
    return "\n".join(lines)


if __name__ == "__main__":  # arp doctor's child: the cluster at argv[1] as one JSON line
    try:
        print(json.dumps(_status_here(sys.argv[1])))
    except Exception as e:  # any failure to connect is the answer, on one line
        print(json.dumps(dict(address=sys.argv[1], error=f"{type(e).__name__}: {e}"[:300])))
