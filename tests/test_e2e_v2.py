"""bundled-v2 end to end on the CPU with a tiny budget: arp init --dataset bundled-v2, arp train
scores fresh v2 documents with their floor; and arp prepare's bundled-v2 options fail in one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SCORED, scored

pytestmark = pytest.mark.slow


def arp(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "autoresearch_portable", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=os.environ.copy())


def test_init_and_train_on_bundled_v2(small_bundled_v2, tmp_path):
    ws = tmp_path / "research"
    r = arp("init", str(ws), "--budget", "4", "--backend", "cpu", "--dataset", "bundled-v2", "--depth", "2", "--dim", "64",
            "--device-batch", "2", "--total-batch", str(2 * small_bundled_v2.seq_len))
    assert r.returncode == 0, r.stderr[-2000:]
    config = json.loads((ws / ".arp.json").read_text())
    assert config["dataset"] == "bundled-v2"
    # not a test of the clock (tests/test_integrity.py is): a busy machine must not make it over_budget
    # and a few evaluation rows keep it quick (fresh v2 documents, their floor: the same path)
    (ws / ".arp.json").write_text(json.dumps(dict(config, overhead_seconds=30.0, eval_rows=8)))
    r = arp("train", "--budget", "2", "--backend", "cpu", cwd=ws)
    from autoresearch_portable.harness.records import ledger

    rec = ledger.read(ws / "results" / "ledger.jsonl")[-1]
    assert scored(r, rec["status"]), r.stderr[-2000:]
    m = rec["metrics"]
    assert rec["status"] in SCORED and m["verified"] is True
    assert m["eval_source"] == "bundled-v2 corpus, fresh documents"
    floor = float(re.search(r"^floor_bpb:\s+([0-9.]+)$", r.stdout, re.M).group(1))
    assert 0.1 < floor < 0.6 and m["floor_bpb"] == pytest.approx(floor, abs=1e-6)
    assert m["val_bpb"] > floor and m["excess_bpb"] == pytest.approx(m["val_bpb"] - m["floor_bpb"], abs=1e-9)


def test_prepare_options_of_bundled_v2_are_checked_in_one_line():
    r = arp("prepare", "--dataset", "bundled-v2", "--train-tokens", "5")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "between 10000" in r.stderr
    r = arp("prepare", "--dataset", "bundled", "--train-tokens", "100000")
    assert r.returncode == 2 and "bundled-v2 only" in r.stderr and "Traceback" not in r.stderr
    r = arp("prepare", "--dataset", "bundled-v2", "--budget", "nan")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_the_first_edit_after_the_baseline_prints_a_provisional_gain(small_bundled_v2, tmp_path, monkeypatch):
    """The README's first command trains the baseline; the first edited run after it is scored
    against that run (issue 31): a numeric excess_ratio and normalized_bpb, marked provisional.
    The reference is the bundled one, for this test's small corpus (its identity: another
    tokenizer, so the bundled profile as shipped does not apply to it)."""
    from autoresearch_portable.harness.baseline import calibrate as cal

    bench = tmp_path / "benchmarks"
    (bench / "results").mkdir(parents=True)
    shipped = Path(__file__).resolve().parent.parent / "benchmarks"
    (bench / "standard.json").write_text((shipped / "standard.json").read_text())
    ref = json.loads((shipped / "results" / "cpu-torch-amd-epyc-2core-bf16-v2.json").read_text())
    ref["dataset"] = cal.dataset_identity(small_bundled_v2)
    (bench / "results" / "reference.json").write_text(json.dumps(ref))
    monkeypatch.setenv("ARP_BENCHMARKS_DIR", str(bench))
    ws = tmp_path / "research"
    r = arp("init", str(ws), "--budget", "3", "--backend", "cpu", "--dataset", "bundled-v2", "--depth", "2", "--dim", "64",
            "--device-batch", "2", "--total-batch", str(2 * small_bundled_v2.seq_len))
    assert r.returncode == 0, r.stderr[-2000:]
    config = json.loads((ws / ".arp.json").read_text())
    (ws / ".arp.json").write_text(json.dumps(dict(config, overhead_seconds=30.0, eval_rows=8)))
    r = arp("train", cwd=ws)
    from autoresearch_portable.harness.records import ledger

    first = ledger.read(ws / "results" / "ledger.jsonl")[-1]
    if first["status"] == "noisy":
        pytest.skip("the machine was busy during the baseline run: it cannot calibrate")
    assert r.returncode == 0 and first["status"] == "ok", r.stderr[-2000:]
    assert "the runs after it at 3s are scored against it (provisional)" in r.stdout
    train = ws / "train.py"
    train.write_text(train.read_text().replace("WARMDOWN_FRAC = 0.5", "WARMDOWN_FRAC = 0.0"))
    subprocess.run(["git", "commit", "-qam", "no warmdown"], cwd=ws, check=True)
    r = arp("train", cwd=ws)
    rec = ledger.read(ws / "results" / "ledger.jsonl")[-1]
    assert scored(r, rec["status"]), r.stderr[-2000:]
    if rec["status"] == "ok":
        ratio = re.search(r"^excess_ratio:\s+([0-9.]+) ± ([0-9.]+) .*\[provisional: against this device's baseline \(1 run at 3s\), "
                          r"σ a prior: the reference's, scaled by this run's evaluation error", r.stdout, re.M)
        assert ratio and float(ratio.group(2)) > 0, r.stdout
        assert re.search(r"^normalized_bpb:\s+[0-9.]+ ± [0-9.]+ \(ref: .+\) \[provisional\]$", r.stdout, re.M), r.stdout
        assert rec["metrics"]["provisional"] and "calibrated_sigma" not in rec["metrics"]
