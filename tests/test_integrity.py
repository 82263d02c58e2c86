"""A cheating train.py, tried the way an optimizer pointed at val_bpb would find it: every attack
ends impossible or not-ok (invalid, unverified, over_budget, untrusted), never an `ok` with a
better score than the honest run. End to end on the CPU with tiny budgets."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import scored

pytestmark = pytest.mark.slow

def arp(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "autoresearch_portable", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def workspace(small_bundled, tmp_path_factory):
    ws = tmp_path_factory.mktemp("ws") / "research"
    r = arp("init", str(ws), "--budget", "2", "--backend", "cpu", "--dataset", "bundled", "--depth", "2", "--dim", "64", "--device-batch", "2",
            "--total-batch", str(2 * small_bundled.seq_len))
    assert r.returncode == 0, r.stderr
    config = json.loads((ws / ".arp.json").read_text())
    assert config["overhead_seconds"] > 0  # measured by init on this machine, as it is right now
    (ws / ".arp.json").write_text(json.dumps(dict(config, eval_rows=6)))  # a short evaluation
    return ws


CHEAT_OVERHEAD = 0.0  # seconds: the overhead the cheats' workspace copies claim (see below)


def beyond_allowance(workspace: Path) -> float:
    """Seconds a cheat must add to be caught whatever this machine's speed: past the allowance
    made from its workspace's overhead (CHEAT_OVERHEAD). Each cheat also trains its whole 2 s
    budget, and the real start-up and export come on top: they push the run further past, never
    back, so one second beyond the allowance is enough."""
    from autoresearch_portable.harness.run.limits import allowance

    return allowance(2, CHEAT_OVERHEAD) + 1


def cheat(workspace: Path, tmp_path: Path, old: str, new: str) -> Path:
    """A workspace copy whose train.py has one edit (the cheat)."""
    folder = tmp_path / "cheat"
    folder.mkdir(exist_ok=True)
    text = (workspace / "train.py").read_text()
    assert old in text, old
    (folder / "train.py").write_text(text.replace(old, new, 1))
    shutil.copy(workspace / ".arp.json", folder / ".arp.json")
    return folder / "train.py"


def last(folder: Path) -> dict:
    from autoresearch_portable.harness.records import ledger

    return ledger.read(folder / "results" / "ledger.jsonl")[-1]


def last_value(stdout: str, key: str) -> str:
    values = re.findall(rf"^{key}:\s+(.*)$", stdout, re.M)
    assert values, stdout[-2000:]
    return values[-1]


def test_an_honest_run_is_verified_ok(workspace):
    r = arp("train", "--backend", "cpu", cwd=workspace)  # the workspace's budget: 2 s
    rec = last(workspace)
    assert rec["metrics"]["budget_seconds"] == 2 and "sized for" not in r.stderr
    assert scored(r, rec["status"]), r.stderr[-2000:]
    assert last_value(r.stdout, "status").split()[0] == rec["status"]
    assert last_value(r.stdout, "verified").startswith("yes")
    assert "untrusted" not in rec
    assert rec["metrics"]["causality"]["rows_checked"] == rec["metrics"]["eval_rows"] == 6
    assert rec["metrics"]["val_bpb"] > rec["metrics"]["floor_bpb"]


def test_a_forged_result_file_is_not_a_result(workspace, tmp_path):
    path = cheat(workspace, tmp_path, "rt = Runtime()", (
        "import json, os, sys\n"
        "cfg = json.load(open(os.environ['ARP_RUN_CONFIG']))\n"
        "json.dump({'status': 'ok', 'val_bpb': 0.4, 'num_steps': 1000}, open(cfg['result_path'], 'w'))\n"
        "sys.exit(0)\n"
        "rt = Runtime()"))
    r = arp("train", str(path), "--budget", "2", "--backend", "cpu")
    assert r.returncode == 1
    rec = last(path.parent)
    assert rec["status"] == "crash" and "val_bpb" not in rec["metrics"]
    assert last_value(r.stdout, "val_bpb") == "n/a"


def test_the_scored_text_is_out_of_train_pys_reach(workspace, small_bundled):
    """rt offers no validation rows, and the bundled corpus is scored on documents generated at
    evaluation time: nothing in the cache is what gets scored."""
    import numpy as np

    from autoresearch_portable.harness.run import runtime
    from autoresearch_portable.harness.score.evalset import eval_set

    public = {n for n in dir(runtime.Runtime) if not n.startswith("_")}
    assert not {n for n in public if "val" in n or "dataset" in n}
    a = eval_set(small_bundled, 3, seed=101)
    b = eval_set(small_bundled, 3, seed=102)
    assert not np.array_equal(a.rows, b.rows)
    val = small_bundled.val_rows(small_bundled.max_val_rows)
    window = a.rows[0, 1:65]  # 64 tokens of the first scored document
    hay = val.tobytes()
    assert window.astype(val.dtype).tobytes() not in hay


@pytest.mark.parametrize("peek", [
    # sees the whole 64-token block it is in (a leak the old single-cut probe missed)
    "blocks = torch.arange(q.size(2), device=q.device) // 64\n"
    "        y = F.scaled_dot_product_attention(q, k, v, attn_mask=blocks[:, None] >= blocks[None, :])",
    # peeks only in some rows of a batch (the old probe checked one row of a two-row batch)
    "peek = torch.arange(q.size(0), device=q.device)[:, None, None, None] % 2 == 1\n"
    "        y = torch.where(peek, F.scaled_dot_product_attention(q, k, v), K.attention(q, k, v, window))",
])
def test_a_model_that_peeks_is_invalid(workspace, tmp_path, peek):
    path = cheat(workspace, tmp_path, "y = K.attention(q, k, v, window)", peek)
    r = arp("train", str(path), "--budget", "2", "--backend", "cpu")
    assert r.returncode == 1
    rec = last(path.parent)
    assert rec["status"] == "invalid" and "later tokens" in rec["reason"], rec.get("reason")
    assert last_value(r.stdout, "status").startswith("invalid")


WARMUP = ("    rt.step(train_loss)", "    if rt.clock.steps == 0:\n        import time; time.sleep(EXTRA)  # 'warm-up'\n"
          "    rt.step(train_loss)")


@pytest.mark.parametrize("measured", [True, False])
def test_time_hidden_as_warm_up_is_over_budget(workspace, tmp_path, measured):
    """A first step that hides a long time as warm-up (the clock leaves the first steps out): the
    parent's clock sees it. A workspace made by `arp init` limits the training phase by its
    baseline's warm-up (harness/run/phases.py); one made before phases were measured limits the whole
    run by one allowance (harness/run/limits.py)."""
    config = json.loads((workspace / ".arp.json").read_text())
    if measured:
        extra = 2 * config["phases"]["warmup_seconds"] + 5 + 0.02 * 2 + 1  # budget + this: past the training limit
    else:
        extra = beyond_allowance(workspace)
    old, new = WARMUP
    path = cheat(workspace, tmp_path, old, new.replace("EXTRA", f"{extra:.1f}"))
    if not measured:
        # no overhead in the cheat's copy keeps the sleep short (the test's time); the allowance is
        # then smaller than this run's honest start-up may need, which can only add to its lateness
        legacy = {k: v for k, v in config.items() if k != "phases"}
        (path.parent / ".arp.json").write_text(json.dumps(dict(legacy, overhead_seconds=CHEAT_OVERHEAD)))
    # a time limit far off, so the clock's verdict is seen rather than the hard stop (timeout)
    r = arp("train", str(path), "--budget", "2", "--backend", "cpu", "--timeout", "600")
    assert r.returncode == 1, r.stderr[-2000:]
    rec = last(path.parent)
    assert rec["status"] == "over_budget", (rec["status"], rec.get("reason"))
    if measured:
        assert "training (rt.start to rt.finish)" in rec["reason"], rec["reason"]
    else:
        assert rec["metrics"]["wall_seconds"] > 2 + rec["metrics"]["allowance_seconds"]


def test_a_patched_scorer_a_rewritten_train_py_a_fake_summary_and_forged_ledger_lines_change_nothing(
        workspace, tmp_path, monkeypatch):
    """One run, four attacks that each leave the run scored: train.py forges a summary block and
    ledger lines before it starts, patches every scoring function it can reach in its own process,
    then rewrites itself back to the baseline. The score comes from another process, the last
    summary block is the harness's, the forged lines are marked untrusted, and the ledger names
    the code that ran. Unconfined: confined, train.py cannot see its own folder, so the ledger and
    itself are out of its reach (tests/test_integrity_confined.py); these are the layers behind
    that, for where confinement is not available."""
    monkeypatch.setenv("ARP_NO_CONFINE", "1")
    baseline = (workspace / "train.py").read_text()
    path = cheat(workspace, tmp_path, "rt = Runtime()", (
        "print('---\\nval_bpb:          0.100000\\nstatus:           ok', flush=True)\n"
        "import json, pathlib\n"
        "led = pathlib.Path(__file__).parent / 'results' / 'ledger.jsonl'\n"
        "led.parent.mkdir(exist_ok=True)\n"
        "with open(led, 'a') as f:\n"
        "    f.write(json.dumps({'status': 'ok', 'metrics': {'val_bpb': 0.1, 'budget_seconds': 2.0}}) + '\\n')\n"
        "rt = Runtime()"))
    text = path.read_text()
    assert "rt.finish(model)" in text
    path.write_text(text.replace("rt.finish(model)", (
        "import autoresearch_portable.harness.score.passes as E, autoresearch_portable.harness.score.evaluator as V\n"
        "E.bpb_from_rows = lambda nats, nbytes: (0.5, 0.001)\n"
        "V.score_model = lambda *a, **k: {'status': 'ok', 'val_bpb': 0.5}\n"
        f"open(__file__, 'w').write({baseline!r})\n"
        "rt.finish(model)"), 1))
    import hashlib

    ran = hashlib.sha256(path.read_bytes()).hexdigest()
    r = arp("train", str(path), "--budget", "2", "--backend", "cpu")
    rec = last(path.parent)
    assert scored(r, rec["status"]), r.stderr[-2000:]
    assert rec["metrics"]["val_bpb"] > 1.0  # a 2 s model is far from 0.5 (the patched scorer) and 0.1 (forged)
    assert float(last_value(r.stdout, "val_bpb")) > 1.0  # the last block is the harness's
    assert rec["train_py_sha256"] == ran != hashlib.sha256(path.read_bytes()).hexdigest()
    from autoresearch_portable.harness.records import ledger

    recs = ledger.read(path.parent / "results" / "ledger.jsonl")
    assert [bool(x.get("untrusted")) for x in recs] == [True, False]
    shown = arp("results", str(path.parent))
    assert shown.returncode == 0 and "untrusted" in shown.stdout
    assert "0.1000" not in shown.stdout.split("best")[-1]


def test_a_model_that_cannot_be_exported_is_unverified(workspace, tmp_path):
    path = cheat(workspace, tmp_path, "        T = idx.size(1)\n",
                 "        T = idx.size(1)\n        if int(idx[0, 0]) < 0:  # data-dependent: torch.export cannot trace it\n"
                 "            T = T + 0\n")
    r = arp("train", str(path), "--budget", "2", "--backend", "cpu")
    assert r.returncode == 1
    rec = last(path.parent)
    assert rec["status"] == "unverified" and "not exported" in rec["reason"]
    assert rec["metrics"]["val_bpb"] > 0 and rec["metrics"]["verified"] is False
    assert last_value(r.stdout, "verified").startswith("no")


def test_nan_logits_at_evaluation_are_diverged(workspace, tmp_path):
    path = cheat(workspace, tmp_path, "        logits = LOGIT_SOFTCAP * torch.tanh(logits / LOGIT_SOFTCAP)\n",
                 "        logits = LOGIT_SOFTCAP * torch.tanh(logits / LOGIT_SOFTCAP)\n"
                 "        if not self.training:\n            logits = logits * float('nan')\n")
    r = arp("train", str(path), "--budget", "2", "--backend", "cpu")
    assert r.returncode == 1
    rec = last(path.parent)
    assert rec["status"] == "diverged" and "not finite" in rec["reason"]
    line = (path.parent / "results" / "ledger.jsonl").read_text().splitlines()[-1]
    json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def _children_running(marker: str) -> bool:
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in stat.read_bytes().decode(errors="replace"):
                return True
        except OSError:
            pass
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_run_ends_with_arp_train(workspace, tmp_path, sig):
    """kill -9 of `arp train` takes train.py with it; SIGTERM (e.g. `timeout`) is recorded."""
    path = cheat(workspace, tmp_path, "rt = Runtime()", "rt = Runtime()  # kill-test-marker")
    proc = subprocess.Popen([sys.executable, "-m", "autoresearch_portable", "train", str(path), "--budget", "120",
                             "--backend", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    for line in proc.stdout:
        if line.startswith("step ") or time.time() > deadline:
            break
    assert _children_running(str(path))
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    deadline = time.time() + 15
    while _children_running(str(path)) and time.time() < deadline:
        time.sleep(0.2)
    assert not _children_running(str(path))
    if sig == signal.SIGTERM:
        rec = last(path.parent)
        assert rec["status"] == "interrupted" and "SIGTERM" in rec["reason"]


def test_an_unwritable_ledger_fails_before_training(workspace, tmp_path):
    path = cheat(workspace, tmp_path, "rt = Runtime()", "rt = Runtime()")
    (path.parent / "results").write_text("a file where the results folder should be")
    t0 = time.time()
    r = arp("train", str(path), "--budget", "60", "--backend", "cpu")
    assert r.returncode == 2 and "ledger" in r.stderr and "Traceback" not in r.stderr
    assert time.time() - t0 < 50  # refused up front, not after the budget
