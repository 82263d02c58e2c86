import re

from autoresearch_portable.harness.score.passes import bpb_from_rows
from autoresearch_portable.harness.run.summary import format_summary

import numpy as np
import math


def test_summary_keeps_the_original_lines_first_and_greppable():
    r = dict(val_bpb=0.9979, training_seconds=300.04, total_seconds=325.9, peak_memory_mb=45060.2,
             mfu_percent=39.8, total_tokens=499.6e6, num_steps=953, num_params=50.3e6, depth=8,
             backend="cuda", device="NVIDIA H100 80GB HBM3", budget_mode="wall", train_flops=1.5e17,
             val_bpb_stderr=0.0012, floor_bpb=None, status="ok")
    text = format_summary(r)
    lines = text.splitlines()
    assert lines[0] == "---"
    assert lines[1] == "val_bpb:          0.997900"
    assert lines[2] == "training_seconds: 300.0"
    assert lines[4] == "peak_vram_mb:     45060.2"
    assert lines[5] == "mfu_percent:      39.80"
    assert lines[6] == "total_tokens_M:   499.6"
    assert lines[7] == "num_steps:        953"
    assert lines[8] == "num_params_M:     50.3"
    assert lines[9] == "depth:            8"
    keys = [l.split(":")[0] for l in lines[1:]]
    assert keys[9:] == ["backend", "device", "budget_mode", "train_flops", "val_bpb_stderr",
                        "excess_ratio", "normalized_bpb", "floor_bpb", "eval_tokens", "verified",
                        "machine_load", "confined", "status"]
    assert lines[-1] == "status:           ok"  # always the last line, so `grep "^status:"` finds every run
    assert re.findall(r"^val_bpb:\s+(\S+)", text, re.M) == ["0.997900"]
    assert "n/a" in [l for l in lines if l.startswith("excess_ratio")][0]


def test_failed_runs_say_so_in_the_status_line_and_short_runs_keep_their_tokens():
    text = format_summary(dict(status="invalid", reason="model looks at later tokens", total_tokens=34816))
    assert re.findall(r"^val_bpb:\s+(\S+)", text, re.M) == ["n/a"]
    assert text.splitlines()[-1] == "status:           invalid (model looks at later tokens)"
    assert re.search(r"^total_tokens_M:\s+0\.0348$", text, re.M)


def test_bpb_and_standard_error():
    nats = np.array([10.0, 12.0, 8.0, 10.0]) * math.log(2)  # bits 10, 12, 8, 10
    nbytes = np.array([10, 10, 10, 10])
    bpb, se = bpb_from_rows(nats, nbytes)
    assert bpb == 1.0
    # residuals 0, 2, -2, 0 -> sqrt(8 / 12) / 10
    assert abs(se - math.sqrt(8 / 12) / 10) < 1e-12
