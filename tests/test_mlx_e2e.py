"""End to end through the MLX backend on mlx's CPU device (no Metal on the CI machine):
`arp init --backend mlx` writes the MLX template, `arp train --backend mlx` runs it under the
harness (budget clock, causality probe, chunked eval from logits, ledger). Slow-ish (under a
minute in all), hence the `slow` mark; the sizes are tiny and given explicitly so `arp init`
skips its throughput measurement. The causality probe catching a leaky MLX model is tested
in-process in test_mlx_parity.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SCORED, scored

pytest.importorskip("mlx.core")

pytestmark = pytest.mark.slow


def arp(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "autoresearch_portable", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=os.environ.copy())


def ledger(folder: Path):
    from autoresearch_portable.harness.records import ledger as L

    return L.read(folder / "results" / "ledger.jsonl")


@pytest.fixture(scope="module")
def mlx_workspace(small_bundled, tmp_path_factory):
    ws = tmp_path_factory.mktemp("mlxws") / "research"
    r = arp("init", str(ws), "--budget", "4", "--backend", "mlx", "--dataset", "bundled", "--depth", "2", "--dim", "64", "--device-batch", "1",
            "--total-batch", str(small_bundled.seq_len))
    assert r.returncode == 0, r.stderr[-2000:]
    return ws


def variant(workspace: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = (workspace / "train.py").read_text()
    assert old in text
    path = tmp_path / "train.py"
    path.write_text(text.replace(old, new, 1))
    (tmp_path / ".arp.json").write_text((workspace / ".arp.json").read_text())  # the workspace's dataset
    return path


def test_init_writes_the_mlx_template(mlx_workspace):
    text = (mlx_workspace / "train.py").read_text()
    assert "import mlx.core as mx" in text and "import torch" not in text
    assert re.search(r"^DEPTH = 2\b", text, re.M) and re.search(r"^MODEL_DIM = 64\b", text, re.M)
    assert json.loads((mlx_workspace / ".arp.json").read_text())["backend"] == "mlx"


def test_train_on_mlx_prints_the_summary_and_records_the_ledger(mlx_workspace):
    r = arp("train", "--budget", "6", "--backend", "mlx", cwd=mlx_workspace)
    from autoresearch_portable.harness.records import ledger as ledger_file

    assert scored(r, ledger_file.read(mlx_workspace / "results" / "ledger.jsonl")[-1]["status"]), (r.stdout[-2000:], r.stderr[-2000:])
    vals = re.findall(r"^val_bpb:\s+([0-9.]+)$", r.stdout, re.M)
    assert len(vals) == 1
    assert 0 < float(vals[0]) < 12
    assert re.search(r"^backend:\s+mlx\b", r.stdout, re.M)
    assert int(re.search(r"^num_steps:\s+(\d+)", r.stdout, re.M).group(1)) >= 1
    assert float(re.search(r"^peak_vram_mb:\s+(\S+)", r.stdout, re.M).group(1)) > 0
    assert float(re.search(r"^train_flops:\s+(\S+)", r.stdout, re.M).group(1)) > 0
    rec = ledger(mlx_workspace)[-1]
    assert rec["status"] in SCORED
    assert rec["plan"]["backend"] == "mlx" and rec["plan"]["device"] in ("cpu", "gpu")  # gpu on a Mac
    assert rec["metrics"]["verified"] is True  # scored by the evaluator from the exported graph
    assert rec["metrics"]["causality"]["rows_failed"] == 0
    assert rec["metrics"]["val_bpb"] == pytest.approx(float(vals[0]), abs=1e-5)


def test_mlx_nan_loss_fails_fast(mlx_workspace, tmp_path):
    path = variant(mlx_workspace, tmp_path, "train_loss = loss.item()", "train_loss = loss.item() * float('nan')")
    r = arp("train", str(path), "--budget", "30", "--backend", "mlx")
    assert r.returncode == 1
    rec = ledger(tmp_path)[-1]
    assert rec["status"] == "diverged" and "nan" in rec["reason"].lower()
    assert rec["metrics"]["total_seconds"] < 30
