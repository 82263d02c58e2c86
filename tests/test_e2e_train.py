"""End to end on the CPU with tiny budgets: arp init -> arp train -> ledger, and every way a run
can go wrong ending with its own status."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import SCORED, scored

pytestmark = pytest.mark.slow

SIZES = ["--depth", "2", "--dim", "64", "--device-batch", "2", "--total-batch", None]


def arp(*args, cwd=None, timeout=600, env=None):
    return subprocess.run([sys.executable, "-m", "autoresearch_portable", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env or os.environ.copy())


@pytest.fixture(scope="module")
def workspace(small_bundled, tmp_path_factory):
    ws = tmp_path_factory.mktemp("ws") / "research"
    sizes = [s if s is not None else str(2 * small_bundled.seq_len) for s in SIZES]
    r = arp("init", str(ws), "--backend", "cpu", "--dataset", "bundled", "--budget", "4", *sizes)
    assert r.returncode == 0, r.stderr
    # these tests are not about the clock: a generous measured overhead keeps a slow, busy test
    # machine from turning honest runs into over_budget (tests/test_integrity.py tests the clock)
    config = json.loads((ws / ".arp.json").read_text())
    (ws / ".arp.json").write_text(json.dumps(dict(config, overhead_seconds=30.0)))
    return ws


def variant(workspace: Path, tmp_path: Path, old: str, new: str, name="train.py") -> Path:
    """A copy of the workspace's train.py with one edit (a broken agent change), beside a copy of
    the workspace's settings (its dataset)."""
    text = (workspace / "train.py").read_text()
    assert old in text
    folder = tmp_path / "variant"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text.replace(old, new, 1))
    (folder / ".arp.json").write_text((workspace / ".arp.json").read_text())
    return path


def ledger(folder: Path):
    from autoresearch_portable.harness.records import ledger as L

    return L.read(folder / "results" / "ledger.jsonl")


def test_init_writes_a_git_workspace(workspace):
    for name in ("train.py", "program.md", ".gitignore"):
        assert (workspace / name).is_file()
    text = (workspace / "train.py").read_text()
    assert re.search(r"^DEPTH = 2\b", text, re.M) and re.search(r"^MODEL_DIM = 64\b", text, re.M)
    log = subprocess.run(["git", "log", "--oneline"], cwd=workspace, capture_output=True, text=True)
    assert "baseline" in log.stdout
    assert "results/" in (workspace / ".gitignore").read_text()


def test_init_refuses_a_non_empty_folder(workspace):
    r = arp("init", str(workspace), "--backend", "cpu", "--dataset", "bundled", "--depth", "2", "--dim", "64", "--device-batch", "1", "--total-batch", "1024")
    assert r.returncode == 2 and "not empty" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.serial  # two `arp train` start at once: on one worker's core the refused one slows the other's start-up
def test_train_prints_the_summary_records_the_ledger_and_refuses_a_second_run_at_once(workspace):
    """Two `arp train` at once in one workspace (they would share the cores and both measure
    noise): the second is refused with one line; the first prints the summary and records its
    result, and the ledger stays valid."""
    results = []

    def go(seed):
        results.append(arp("train", "--budget", "4", "--backend", "cpu", "--seed", str(seed), cwd=workspace))

    before = len(ledger(workspace))
    threads = [threading.Thread(target=go, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.returncode for r in results)
    assert codes in ([0, 2], [1, 2]), [r.stderr[-500:] for r in results]
    refused = next(r for r in results if r.returncode == 2)
    assert "another arp train is running" in refused.stderr and "Traceback" not in refused.stderr
    assert "val_bpb:" not in refused.stdout  # nothing was trained
    lines = (workspace / "results" / "ledger.jsonl").read_text().splitlines()
    assert len(lines) == before + 1
    r = next(r for r in results if r.returncode != 2)
    assert scored(r, ledger(workspace)[-1]["status"]), r.stderr[-2000:]
    vals = re.findall(r"^val_bpb:\s+([0-9.]+)$", r.stdout, re.M)  # the original's grep
    assert len(vals) == 1
    bpb = float(vals[0])
    # untrained, a model predicts ~uniformly over the vocab: log2(V) bits per token
    assert 0 < bpb < 12
    for key in ("training_seconds", "total_seconds", "peak_vram_mb", "mfu_percent", "num_steps", "backend",
                "train_flops", "val_bpb_stderr", "excess_ratio", "normalized_bpb", "floor_bpb"):
        assert re.search(rf"^{key}:", r.stdout, re.M), key
    assert float(re.search(r"^peak_vram_mb:\s+(\S+)", r.stdout, re.M).group(1)) > 0
    recs = ledger(workspace)
    assert recs and recs[-1]["status"] in SCORED
    rec = recs[-1]
    assert rec["metrics"]["val_bpb"] == pytest.approx(bpb, abs=1e-6)
    assert rec["plan"]["backend"] == "cpu" and rec["device"]["cpu_model"]
    assert len(rec["train_py_sha256"]) == 64 and rec["git_commit"]
    assert rec["metrics"]["verified"] is True and rec["metrics"]["causality"]["rows_failed"] == 0


def test_non_causal_model_is_reported_invalid(workspace, tmp_path):
    path = variant(workspace, tmp_path, "y = K.attention(q, k, v, window)",
                   "y = F.scaled_dot_product_attention(q, k, v)  # sees the future")
    r = arp("train", str(path), "--budget", "2", "--backend", "cpu")
    assert r.returncode != 0
    assert re.search(r"^status:\s+invalid", r.stdout, re.M)
    assert ledger(path.parent)[-1]["status"] == "invalid"
    assert "val_bpb" not in ledger(path.parent)[-1]["metrics"]


def test_crash_is_recorded(workspace, tmp_path):
    path = variant(workspace, tmp_path, "rt.step(train_loss)", "raise RuntimeError('agent bug')")
    r = arp("train", str(path), "--budget", "2", "--backend", "cpu")
    assert r.returncode == 1
    rec = ledger(path.parent)[-1]
    assert rec["status"] == "crash" and "agent bug" in rec["reason"]


def test_nan_loss_fails_fast(workspace, tmp_path):
    path = variant(workspace, tmp_path, "train_loss = loss.item()", "train_loss = loss.item() * float('nan')")
    r = arp("train", str(path), "--budget", "30", "--backend", "cpu")
    assert r.returncode == 1
    rec = ledger(path.parent)[-1]
    assert rec["status"] == "diverged" and "nan" in rec["reason"].lower()
    assert rec["metrics"]["total_seconds"] < 30  # failed fast, did not train out the budget


def test_run_past_its_time_limit_is_stopped(workspace, tmp_path):
    path = variant(workspace, tmp_path, "rt.step(train_loss)", "import time; time.sleep(3600)")
    r = arp("train", str(path), "--budget", "2", "--backend", "cpu", "--timeout", "8")
    assert r.returncode == 1
    assert ledger(path.parent)[-1]["status"] == "timeout"


def test_missing_train_py_is_one_line(tmp_path):
    r = arp("train", str(tmp_path / "nope.py"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not found" in r.stderr


def test_unknown_budget_mode_is_one_line(workspace):
    r = arp("train", "--budget-mode", "sometimes", cwd=workspace)
    assert r.returncode == 2 and "budget-mode" in r.stderr and "Traceback" not in r.stderr


def test_ctrl_c_is_recorded_as_interrupted(workspace):
    import signal
    import time

    # Ctrl-C reaches a program started from a terminal, where SIGINT has its default action. A
    # test session started in the background of a shell without job control (`pytest ... &` in a
    # script) inherits SIGINT *ignored*, and so would `arp train` here: Python then installs no
    # KeyboardInterrupt handler and the run trains on. Start `arp train` as a terminal would.
    proc = subprocess.Popen([sys.executable, "-m", "autoresearch_portable", "train", "--budget", "60", "--backend", "cpu"],
                            cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    before = len(ledger(workspace))
    deadline = time.time() + 120
    for line in proc.stdout:  # wait until training has started
        if line.startswith("step ") or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running 60 s after Ctrl-C; its output ended: {out[-800:]!r}; stderr: {err[-1500:]!r}")
    assert proc.returncode == 130, err[-1000:]
    recs = ledger(workspace)
    assert len(recs) == before + 1 and recs[-1]["status"] == "interrupted"


def test_out_of_memory_is_recorded_as_oom(workspace, tmp_path):
    path = variant(workspace, tmp_path, "rt.step(train_loss)",
                   "raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB')")
    r = arp("train", str(path), "--budget", "2", "--backend", "cpu")
    assert r.returncode == 1
    rec = ledger(path.parent)[-1]
    assert rec["status"] == "oom" and "out of memory" in rec["reason"]


def test_train_py_runs_standalone_without_arp(workspace, tmp_path):
    # `python train.py` configures the harness itself (this machine, the workspace's corpus) and prints
    # the summary; ARP_BUDGET shortens it
    env = dict(os.environ, ARP_BUDGET="2", ARP_BACKEND="cpu")
    env.pop("ARP_RUN_CONFIG", None)
    r = subprocess.run([sys.executable, "train.py"], cwd=workspace, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(re.findall(r"^val_bpb:\s+[0-9.]+$", r.stdout, re.M)) == 1
