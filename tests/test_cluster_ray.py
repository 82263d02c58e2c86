"""`arp submit` / `arp wait` on a local Ray cluster on this CPU, sized down to 2 slots of 1 core,
with tiny budgets: every submitted commit ends in the ledger with its commit and slot, whatever
happens to the driver or a worker. One Ray cluster for the whole module."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
from conftest import SCORED  # noqa: E402

from autoresearch_portable.harness.run import confine  # noqa: E402

pytestmark = pytest.mark.slow

BUDGET = "3"  # the workspace is made for it: `arp submit` takes it from there


def arp(*args, cwd, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "autoresearch_portable", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster with 2 CPUs; the workspaces' drivers join it by address."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False,
             namespace="arp-tests")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def env(cluster):
    return dict(os.environ, ARP_DRIVER_IDLE="2", RAY_ADDRESS=cluster)


@pytest.fixture()
def workspace(small_bundled, tmp_path, env):
    ws = tmp_path / "research"
    r = arp("init", str(ws), "--budget", BUDGET, "--backend", "cpu", "--dataset", "bundled", "--depth", "2", "--dim", "64", "--device-batch", "2",
            "--total-batch", str(2 * small_bundled.seq_len), "--parallel", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert (ws / "program_parallel.md").is_file()
    # not a test of the clock: a generous overhead keeps a busy machine from making runs over_budget
    config = json.loads((ws / ".arp.json").read_text())
    (ws / ".arp.json").write_text(json.dumps(dict(config, overhead_seconds=30.0)))
    git(ws, "commit", "-qam", "generous overhead")
    yield ws
    pid = _driver_pid(ws)
    if pid:
        os.kill(pid, signal.SIGTERM)


def git(ws, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=ws, check=True,
                          capture_output=True, text=True).stdout.strip()


def commits(ws, n):
    """n commits, each a small edit of train.py: their short hashes."""
    out = []
    for i in range(n):
        with open(ws / "train.py", "a") as f:
            f.write(f"\n# idea {i}\n")
        git(ws, "commit", "-qam", f"idea {i}")
        out.append(git(ws, "rev-parse", "--short", "HEAD"))
    return out


def ledger(ws):
    from autoresearch_portable.harness.records import ledger as L

    return L.read(ws / "results" / "ledger.jsonl")


def entries(ws):
    from autoresearch_portable.cluster import queue

    return queue.load(ws)


def _driver_pid(ws):
    from autoresearch_portable.cluster.driver import running_pid

    return running_pid(ws)


def until(what, check, timeout=240):
    t0 = time.time()
    while time.time() - t0 < timeout:
        got = check()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.serial  # two slots of one core each: two cores, not one worker's
def test_three_commits_on_two_slots_survive_a_driver_restart(workspace, env):
    shas = commits(workspace, 3)
    r = arp("submit", *shas, "--cpus-per-slot", "1", cwd=workspace, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("queued") >= 3
    again = arp("submit", shas[0], cwd=workspace, env=env)  # already queued with these settings
    assert again.returncode == 2 and "already queued" in again.stderr, again.stderr
    # both slots busy, then the driver dies (kill -9): its Ray tasks die with it
    running = until("two experiments running", lambda: [e for e in entries(workspace) if e.state == "running"][1:] and
                    [e for e in entries(workspace) if e.state == "running"])
    assert {e.slot for e in running} == {"1 cpu"}
    os.kill(_driver_pid(workspace), signal.SIGKILL)
    until("the driver gone", lambda: _driver_pid(workspace) is None, timeout=30)
    assert "driver: not running" in arp("queue", cwd=workspace, env=env).stdout
    # arp wait starts a new driver, which resumes the queue
    r = arp("wait", "--timeout", "500", cwd=workspace, env=env)
    assert r.returncode == 0, r.stderr + r.stdout
    recs = [rec for rec in ledger(workspace) if rec.get("queue")]
    assert sorted(rec["queue"]["id"] for rec in recs) == ["q0001", "q0002", "q0003"]  # each once, none lost
    assert sorted(rec["git_commit"] for rec in recs) == sorted(shas)
    for rec in recs:
        assert rec["status"] in SCORED, (rec["status"], rec.get("reason"))
        assert rec["cluster"]["slot"] == "1 cpu" and rec["cluster"]["node"] and rec["cluster"]["device_key"]
        assert rec["cluster"]["threads"] == 1 and not rec.get("untrusted")
        assert rec["metrics"]["budget_seconds"] == float(BUDGET)  # the workspace's
        assert rec["metrics"]["confined"].startswith("yes") or confine.landlock_abi() == 0
    done = entries(workspace)
    assert all(e.state == "done" for e in done)
    assert any("driver restarted" in " ".join(e.notes) for e in done)
    # the two slots ran at the same time
    spans = sorted((rec["cluster"]["started"], rec["cluster"]["finished"]) for rec in recs)
    assert any(a[1] > b[0] for a, b in zip(spans, spans[1:]))
    for e in done:
        assert "val_bpb:" in (workspace / "results" / "cluster" / "logs" / f"{e.id}.log").read_text()
    shown = arp("results", cwd=workspace, env=env).stdout
    assert all(s in shown for s in shas) and done[0].node in shown
    assert "nothing pending" in arp("wait", "--any", cwd=workspace, env=env).stdout
    tsv = (workspace / "results.tsv").read_text()  # written by the driver, as `arp train` writes it
    assert all(s in tsv for s in shas)


def test_a_worker_killed_twice_is_retried_then_lost(workspace, env):
    (sha,) = commits(workspace, 1)
    r = arp("submit", sha, "--budget", "30", "--cpus-per-slot", "1", cwd=workspace, env=env)
    assert r.returncode == 0, r.stderr
    # arp queue shows where it runs: node, slot, and the device once the worker has probed it
    first = until("attempt 1 on its device", lambda: [e for e in entries(workspace) if e.attempts == 1 and e.device])[0]
    assert first.state == "running" and first.node and first.slot == "1 cpu" and first.device.startswith("cpu-")
    assert first.device in arp("queue", cwd=workspace, env=env).stdout
    os.kill(first.worker_pid, signal.SIGKILL)
    second = until("attempt 2", lambda: [e for e in entries(workspace) if e.attempts == 2])[0]
    assert second.worker_pid != first.worker_pid
    os.kill(second.worker_pid, signal.SIGKILL)
    r = arp("wait", "--any", "--timeout", "120", cwd=workspace, env=env)
    assert r.returncode == 0 and "lost" in r.stdout, r.stderr + r.stdout
    (rec,) = [rec for rec in ledger(workspace) if rec.get("queue")]
    assert rec["status"] == "lost" and "died twice" in rec["reason"] and rec["git_commit"] == sha
    assert rec["queue"]["attempts"] == 2 and not rec.get("untrusted")
    assert entries(workspace)[0].state == "lost"
