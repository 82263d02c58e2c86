"""benchmarks/transfer.py (issue 32): the edits, the analysis of its runs, and the transfer term
the harness's band uses, checked against the committed measurement."""

from __future__ import annotations

import importlib.util
import sys
import json
import math
from pathlib import Path

import pytest

from autoresearch_portable.harness.baseline import normalize as nz

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("transfer", ROOT / "benchmarks" / "transfer.py")
transfer = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # dataclasses need it there
_spec.loader.exec_module(transfer)
MEASURED = ROOT / "benchmarks" / "measured" / "transfer-10x.json"


def test_edits_are_relative_to_each_devices_own_baseline():
    tpl = transfer.template_defaults()
    small = dict(DEPTH=2, MODEL_DIM=128, DEVICE_BATCH_SIZE=1, TOTAL_BATCH_SIZE=1024)
    large = dict(DEPTH=4, MODEL_DIM=256, DEVICE_BATCH_SIZE=4, TOTAL_BATCH_SIZE=8192)
    assert transfer.edited_values(small, tpl, "half_width") == {"MODEL_DIM": 64}
    assert transfer.edited_values(large, tpl, "half_width") == {"MODEL_DIM": 128}
    assert transfer.edited_values(large, tpl, "half_depth") == {"DEPTH": 2}
    assert transfer.edited_values(small, tpl, "batch_x4") == {"TOTAL_BATCH_SIZE": 4096, "DEVICE_BATCH_SIZE": 1}
    assert transfer.edited_values(small, tpl, "lr_up") == {"MATRIX_LR": pytest.approx(4 * tpl["MATRIX_LR"])}
    assert transfer.edited_values(small, tpl, "no_warmdown") == {"WARMDOWN_FRAC": 0.0}


def _run(v, flops=1e12):
    return dict(status="ok", val_bpb=v, train_flops=flops)


def test_the_analysis_worked_by_hand():
    out = dict(floor_bpb=0.5, devices=[dict(name="a"), dict(name="b")], detail=dict(
        baseline=dict(runs=dict(a=[_run(1.0, 1e12), _run(1.02, 1e12)], b=[_run(0.8, 8e12), _run(0.8, 8e12),
                                                                          dict(status="noisy", val_bpb=0.1)])),
        lr_up=dict(runs=dict(a=[_run(0.91), _run(0.89)], b=[_run(0.77)]))))
    out["detail"]["baseline"]["runs"]["b"][1]["val_bpb"] = 0.82  # sigma 0.01414 on both devices
    a = transfer.analyse(out)
    assert a["log2_flop_gap"] == pytest.approx(3.0)  # a noisy run counts for nothing
    row = a["rows"][0]
    pa, pb = row["per_device"]["a"], row["per_device"]["b"]
    assert pa["delta"] == pytest.approx(0.90 - 1.01) and pb["delta"] == pytest.approx(0.77 - 0.81)
    assert pa["ratio"] == pytest.approx(0.40 / 0.51) and pb["ratio"] == pytest.approx(0.27 / 0.31)
    assert pb["delta_se"] == pytest.approx(0.02 ** 0.5 * math.sqrt(1 + 1 / 2) / 10)
    assert row["ratio_diff"] == pytest.approx(0.27 / 0.31 - 0.40 / 0.51) and row["sign_agrees"] is True
    # the transfer term: the difference beyond the runs' own noise, per doubling
    expect = math.sqrt(max(0.0, row["ratio_diff"] ** 2 - row["ratio_diff_se"] ** 2)) / 3.0
    assert transfer.transfer_term(a["rows"], a["log2_flop_gap"]) == pytest.approx(expect)
    assert transfer.transfer_term([], 3.0) is None


def test_the_harness_uses_the_measured_transfer_term():
    out = json.loads(MEASURED.read_text())
    a = transfer.analyse(out)
    assert len(out["devices"]) == 2 and all(d["train_flops"] > 0 for d in out["devices"])
    names = [e["name"] for e in out["edits"]]
    assert "baseline" in names and len(names) >= 7  # the baseline and at least six edits
    assert nz.TRANSFER_MEASURED_DOUBLINGS == pytest.approx(abs(a["log2_flop_gap"]), abs=0.005)
    assert nz.TRANSFER_PER_DOUBLING == pytest.approx(transfer.transfer_term(a["rows"], a["log2_flop_gap"]), abs=0.0005)
