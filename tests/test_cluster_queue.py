"""The queue, the slot sizes and the cluster section of `arp doctor`, without a Ray cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from autoresearch_portable.cluster import client, driver, engine, queue
from autoresearch_portable.errors import UserError
from autoresearch_portable.harness.experiment import Options


def entries_after_submit(n=3):
    return queue.add([], [f"{i:040x}" for i in range(1, n + 1)], [dict(budget=60)] * n, now=100.0)


def test_entries_are_numbered_after_the_existing_ones():
    first = entries_after_submit(2)
    more = queue.add(first, ["f" * 40], [dict(budget=60)], now=200.0)
    assert [e.id for e in first + more] == ["q0001", "q0002", "q0003"]
    assert more[0].ref == "refs/arp/queue/q0003" and more[0].short == "fffffff"


def test_resume_keeps_what_landed_and_queues_what_ran_again():
    """A driver that died between the ledger line and the queue update must not run it twice;
    one that died while an experiment ran must run it again, never drop it."""
    a, b, c = entries_after_submit(3)
    for e in (a, b):
        queue.start(e, dict(node="n1", slot="gpu 0", pid=1, time=1.0))
    landed = {a.key: dict(status="ok", metrics=dict(val_bpb=0.5))}
    again = queue.resume([a, b, c], landed)
    assert (a.state, a.status, a.val_bpb) == ("done", "ok", 0.5)
    assert again == ["q0002"] and b.state == "queued" and "driver restarted" in b.notes[-1]
    queue.start(b, dict(node="n2", slot="gpu 1", pid=2, time=2.0))  # the new driver's task
    assert b.attempts == 2 and not any("died" in n for n in b.notes)
    assert c.state == "queued"  # never started: still queued, not counted as resumed


def test_a_retry_is_a_second_attempt_with_a_note():
    (e,) = entries_after_submit(1)
    queue.start(e, dict(node="n1", slot="gpu 0", pid=1, time=1.0))
    queue.start(e, dict(node="n2", slot="gpu 3", pid=2, time=2.0))
    assert e.attempts == 2 and e.node == "n2" and "died" in e.notes[-1]
    queue.finish(e, "lost", None, "the worker died twice", None, 3.0)
    assert e.state == "lost" and "lost" in queue.result_line(e)


def test_the_queue_file_survives_concurrent_writers(tmp_path):
    """submit, wait and the driver change the queue from different processes: none loses the
    others' changes (the file is read, changed and written under one lock)."""
    def add_one(i):
        with queue.locked(tmp_path) as entries:
            entries.extend(queue.add(entries, [f"{i:040x}"], [dict(budget=60)], now=float(i)))

    threads = [threading.Thread(target=add_one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = queue.load(tmp_path)
    assert sorted(e.id for e in got) == [f"q{i:04d}" for i in range(1, 21)]
    assert json.loads(queue.queue_path(tmp_path).read_text())["version"] == 1


def test_format_queue_names_node_slot_and_device():
    a, b = entries_after_submit(2)
    queue.start(a, dict(node="gpu-box", slot="gpu 5", pid=1, time=time.time()))
    a.device = "cuda-cuda-NVIDIA_H100-bfloat16"
    text = queue.format_queue([a, b])
    assert "gpu-box" in text and "gpu 5" in text and "NVIDIA_H100" in text
    assert "1 queued, 1 running" in text


@pytest.mark.parametrize("resources,nodes,per_slot,options,count", [
    (dict(CPU=64, GPU=8), [64], None, dict(num_gpus=1, num_cpus=1), 8),      # one experiment per GPU
    (dict(CPU=96, GPU=16), [48, 48], None, dict(num_gpus=1, num_cpus=1), 16),  # two 8-GPU nodes
    (dict(CPU=48), [16, 32], None, dict(num_cpus=16), 3),                    # CPU nodes: whole smallest node
    (dict(CPU=2), [2], 1, dict(num_cpus=1), 2),                              # sized down: 2 slots of 1 core
    (dict(CPU=2), [2], 8, dict(num_cpus=2), 1),                              # never more than a node has
])
def test_slots(resources, nodes, per_slot, options, count):
    assert engine.slot_options(resources, nodes, per_slot) == options
    assert engine.slot_count(resources, nodes, per_slot) == count


def test_doctor_without_a_configured_cluster_starts_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    t0 = time.time()
    data, text = client.cluster_report(dict(logical_cores=2, gpus=[]), tmp_path)
    assert time.time() - t0 < 2 and data["address"] is None and data["status"] is None
    assert "none configured" in text and "2 slot(s) of 1 cpu" not in text and "1 slot(s) of 2 cpu" in text


def test_doctor_with_an_unreachable_cluster_says_so_within_its_deadline(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setattr(engine, "STATUS_TIMEOUT", 8.0)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")  # nothing listens there
    t0 = time.time()
    data, text = client.cluster_report(dict(logical_cores=2, gpus=[]), tmp_path)
    assert time.time() - t0 < 12
    assert data["status"]["error"] and "not reachable" in text


def git(ws, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=ws, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_submit_refuses_what_it_cannot_run(tmp_path):
    pytest.importorskip("ray")
    with pytest.raises(UserError, match="not a workspace"):
        client.submit(tmp_path, ["HEAD"], Options(budget=60))
    git(tmp_path, "init", "-q")
    (tmp_path / "notes.txt").write_text("x")
    git(tmp_path, "add", "notes.txt")
    git(tmp_path, "commit", "-qm", "no train.py")
    with pytest.raises(UserError, match="has no train.py"):
        client.submit(tmp_path, ["HEAD"], Options(budget=60))
    with pytest.raises(UserError, match="not a commit"):
        client.submit(tmp_path, ["nope"], Options(budget=60))
    assert queue.load(tmp_path) == []  # nothing queued
    with pytest.raises(UserError, match="budget-mode"):
        client.options_for(tmp_path, Options(budget=60, budget_mode="fast"))


def test_cli_bad_input_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "autoresearch_portable", "submit", "--budget", "nan"], cwd=tmp_path,
                       capture_output=True, text=True, env=dict(os.environ))
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "autoresearch_portable", "queue"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and "the queue is empty" in r.stdout


def test_no_driver_runs_in_a_fresh_workspace(tmp_path):
    assert driver.running_pid(tmp_path) is None
    with driver.driver_lock(tmp_path) as mine:
        assert mine and driver.running_pid(tmp_path) == os.getpid()
        with driver.driver_lock(tmp_path) as second:
            assert not second  # one driver per workspace
    assert driver.running_pid(tmp_path) is None


def test_a_run_watches_only_the_gpus_it_was_given():
    """Under arp submit each experiment gets one GPU (CUDA_VISIBLE_DEVICES from Ray): the
    experiments on the node's other GPUs must not make it `noisy`."""
    from autoresearch_portable.detect.load_gpu import visible_indices

    uuids = [f"GPU-{i}aaa-{i}" for i in range(8)]
    assert visible_indices(None, uuids) == list(range(8))
    assert visible_indices("3", uuids) == [3]
    assert visible_indices("5,1", uuids) == [5, 1]
    assert visible_indices("GPU-2aaa", uuids) == [2]
    assert visible_indices("", uuids) == []
    assert visible_indices("1,9,2", uuids) == [1]  # CUDA stops at the first device it does not know


def test_a_driver_that_died_after_writing_the_ledger_does_not_run_it_again(tmp_path):
    """The driver writes the ledger line, then the queue: a restart between the two finds the
    signed line (by queue id and submission time) and marks the entry done. A line someone else
    wrote with that id does not count."""
    (e,) = entries_after_submit(1)
    queue.start(e, dict(node="n1", slot="1 cpu", pid=1, time=1.0))
    out = dict(result=dict(status="crash", reason="exit code 1: boom", git_commit=e.short), node="n1", slot="1 cpu")
    result, verdict = driver.record(tmp_path, e, out)
    assert result["status"] == "crash" and verdict is None
    rec = json.loads(driver.ledger_path(tmp_path).read_text())
    assert rec["queue"]["id"] == "q0001" and rec["cluster"]["slot"] == "1 cpu" and rec["sig"]
    assert "exit code 1: boom" in driver.log_path(tmp_path, e.id).read_text()
    forged = queue.add([e], ["a" * 40], [dict(budget=60)], now=5.0)[0]
    with open(driver.ledger_path(tmp_path), "a") as f:
        f.write(json.dumps(dict(rec, queue=dict(id=forged.id, submitted=forged.submitted))) + "\n")
    queue.start(forged, dict(node="n1", slot="1 cpu", pid=2, time=6.0))
    again = queue.resume([e, forged], driver.landed(tmp_path))
    assert e.state == "done" and e.status == "crash"
    assert again == [forged.id] and forged.state == "queued"


def test_the_backend_is_checked_when_submitting(monkeypatch, tmp_path):
    monkeypatch.delenv("ARP_BACKEND", raising=False)
    with pytest.raises(UserError, match="unknown backend"):
        client.options_for(tmp_path, Options(budget=60, backend="tpu"))
    assert client.options_for(tmp_path, Options(budget=60))["backend"] is None  # the workspace's
    monkeypatch.setenv("ARP_BACKEND", "cpu")
    assert client.options_for(tmp_path, Options(budget=60))["backend"] == "cpu"
