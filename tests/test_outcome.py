"""The records at the trust boundary (harness/run/outcome.py) and the ledger line built from them."""

from __future__ import annotations

import json
from pathlib import Path

from autoresearch_portable.harness.records import ledger
from autoresearch_portable.harness.run.outcome import ChildReport, Code, Score, Status


def test_a_status_is_its_value_in_comparisons_text_and_json():
    assert Status.OK == "ok" and Status("over_budget") is Status.OVER_BUDGET
    assert f"{Status.NOISY}" == "noisy" and str(Status.CRASH) == "crash"
    assert json.loads(json.dumps({"status": Status.INVALID})) == {"status": "invalid"}
    assert Status.ABANDONED in ("ok", "abandoned")


def test_a_report_keeps_only_what_train_py_may_say():
    said = dict(status="handed_over", num_steps=12, train_flops=3e12, tokens_per_second=1e4,
                val_bpb=0.1, excess_ratio=0.5, normalized_bpb=0.2, calibrated_sigma=1e-9, verdict="keep", bogus=1)
    r = ChildReport.from_json(said)
    m = r.metrics()
    assert m == dict(num_steps=12, train_flops=3e12, tokens_per_second=1e4)  # no score, no gain, no verdict
    assert r.own_score is None and set(r.unknown) == {"excess_ratio", "normalized_bpb", "calibrated_sigma", "verdict",
                                                      "bogus"}


def test_its_own_score_counts_only_when_it_could_not_hand_over():
    r = ChildReport.from_json(dict(status="unverified", reason="not exported: x", val_bpb=0.9, val_bpb_stderr=0.01,
                                   verified=True, num_steps=5))
    assert r.own_score is not None and r.own_score.verified is False  # whatever it claimed
    assert r.metrics() == dict(num_steps=5, val_bpb=0.9, val_bpb_stderr=0.01, verified=False)


def test_a_score_is_what_the_evaluator_wrote():
    s = Score.from_json(dict(status="ok", val_bpb=0.8, eval_rows=64, verified=True, something_else=1))
    assert s.to_dict() == dict(status="ok", val_bpb=0.8, eval_rows=64, verified=True)
    assert Score.from_json({}).status == Status.CRASH  # an empty file is not a score


def test_the_ledger_line_puts_the_code_on_top_and_the_figures_under_metrics(tmp_path):
    code = Code(train_py_sha256="a" * 64, train_py_norm_sha256="b" * 64, git_commit="abc1234", git_dirty=False,
                git_parent="0000000", diff_base="0000000", commit_message="LR up", diff_summary="+1 -1", diff="@@")
    result = dict(code.to_dict(), status=Status.OK, reason=None, val_bpb=0.9, num_steps=10, verdict="keep",
                  log_tail="step 10", device="Fake CPU")
    line = ledger.line(result, Path(tmp_path) / "train.py", {"cpu_model": "Fake"}, {"backend": "cpu"})
    assert {k: line[k] for k in code.to_dict()} == code.to_dict()
    assert (line["status"], line["verdict"], line["log_tail"]) == ("ok", "keep", "step 10")
    assert line["metrics"] == dict(val_bpb=0.9, num_steps=10, device="Fake CPU")
    assert line["device"] == {"cpu_model": "Fake"} and line["plan"] == {"backend": "cpu"}
    path = tmp_path / "ledger.jsonl"
    ledger.append(path, line)
    back = ledger.read(path)[0]
    assert back["status"] == "ok" and not back.get(ledger.UNTRUSTED)  # a Status signs and verifies as its value
