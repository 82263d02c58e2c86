"""The evaluator's pieces without a training run: fresh evaluation rows with an exact floor, the
perturbed copies, the verdicts (causality, entropy floor, NaN), the clock allowance and the
harness self-check."""

from __future__ import annotations

from dataclasses import fields

import math

import numpy as np
import pytest

from autoresearch_portable.harness.score.evalset import eval_set, perturbed_copies
from autoresearch_portable.harness.score.passes import judge
from autoresearch_portable.harness.run.limits import allowance
from autoresearch_portable.harness.run.provenance import harness_digest
from autoresearch_portable.harness.run import summary
from autoresearch_portable.harness.run.outcome import ChildReport


@pytest.mark.parametrize("which", ["v1", "v2"])
def test_bundled_rows_hold_whole_fresh_documents_with_their_floor(which, request):
    """Both corpus versions are scored on fresh documents of their own generator, with the
    exact floor of the scored text."""
    from autoresearch_portable.data import corpus, corpus2

    ds = request.getfixturevalue("small_bundled" if which == "v1" else "small_bundled_v2")
    generate = corpus.generate_document if which == "v1" else corpus2.generate_document
    tok = ds.tokenizer
    es = eval_set(ds, 4, seed=7)
    assert es.rows.shape == (4, ds.seq_len + 1)
    assert (es.rows[:, 0] == tok.bos_id).all()
    assert es.source == f"{ds.meta['kind']} corpus, fresh documents"
    # the rows are documents 0.. of stream 7 (best fit reorders them), padded with BOS
    docs = [generate(7, i) for i in range(200)]
    texts = [tok.decode([t for t in row if t != tok.bos_id]) for row in es.rows]
    used = [(t, b) for t, b in docs if any(t in row for row in texts)]
    assert used and sum(len(t.encode()) for t, _ in used) == es.text_bytes
    assert es.floor_bits.sum() == pytest.approx(sum(b for _, b in used))
    # every scored byte is in a whole document: the token byte lengths add up to the text
    tb = ds.token_bytes
    assert int(tb[es.rows[:, 1:]].sum()) == es.text_bytes


def test_perturbed_copies_change_only_the_future():
    rng = np.random.default_rng(0)
    rows = rng.integers(1, 50, size=(5, 33))
    copies, cuts = perturbed_copies(rows, rng)
    for i in range(5):
        assert np.array_equal(copies[i, : cuts[i]], rows[i, : cuts[i]])
        assert copies[i, cuts[i]] != rows[i, cuts[i]]  # the first token after the cut always differs
    assert (cuts >= 1).all() and (cuts < 32).all()
    single, cut = perturbed_copies(rows[:1], rng)
    assert np.array_equal(single[0, : cut[0]], rows[0, : cut[0]])


def test_judge_verdicts():
    nats = np.full(10, 100.0)
    nbytes = np.full(10, 100)
    ok = judge(nats, nbytes, np.zeros(10), 1e-3)
    assert ok["status"] == "ok" and ok["val_bpb"] == pytest.approx(1 / math.log(2))
    peek = judge(nats, nbytes, np.array([0.0] * 9 + [0.5]), 1e-3)
    assert peek["status"] == "invalid" and "later tokens" in peek["reason"] and peek["causality"]["rows_failed"] == 1
    floor_bits = np.full(10, 160.0)  # the text holds 1.6 bits per byte; the model claims 1.44
    below = judge(nats, nbytes, np.zeros(10), 1e-3, floor_bits, 1000)
    assert below["status"] == "invalid" and "entropy floor" in below["reason"]
    assert "val_bpb" not in below and below["rejected_val_bpb"] == pytest.approx(1 / math.log(2))
    above = judge(nats, nbytes, np.zeros(10), 1e-3, np.full(10, 50.0), 1000)
    assert above["status"] == "ok" and above["excess_bpb"] == pytest.approx(1 / math.log(2) - 0.5)
    nan = judge(np.array([1.0, float("nan")]), np.array([1, 1]), np.zeros(2), 1e-3)
    assert nan["status"] == "diverged" and "val_bpb" not in nan


def test_allowance_grows_with_the_measured_overhead():
    assert allowance(300, None) == pytest.approx(90)
    assert allowance(300, 5) == pytest.approx(2 * 5 + 10 + 15)
    assert allowance(15, 5) < allowance(15, 20)


def test_harness_digest_sees_a_changed_file(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    before = harness_digest(tmp_path)
    assert harness_digest(tmp_path) == before
    (tmp_path / "a.py").write_text("x = 2\n")
    assert harness_digest(tmp_path) != before


def test_the_evaluator_process_keeps_its_large_buffers_on_the_heap(monkeypatch, tmp_path):
    """Its scoring allocates hundreds of MB each batch; the allocator settings it is started with
    halve the evaluation's time on glibc (benchmarks/bench_eval.py)."""
    from autoresearch_portable.harness.run import launch as runner

    seen = {}

    class FakeEvaluator:  # started like the real one; never answers
        pid = 2**22 + 12345  # no such process: stopping it finds nothing

        def __init__(self, cmd, **kw):
            seen.update(cmd=cmd, env=kw.get("env"), cwd=kw.get("cwd"))

        def communicate(self, text=None, timeout=None):
            if text is not None:
                seen["job"] = text
                raise runner.subprocess.TimeoutExpired(seen["cmd"], 1)
            return "", ""

        def poll(self):
            return 0

    monkeypatch.setattr(runner.subprocess, "Popen", FakeEvaluator)
    monkeypatch.setenv("ARP_SOMETHING", "kept")
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    res = runner._evaluate(None, dict(backend="cpu"), "bundled", tmp_path, 8, 4, quiet=True)
    assert res.status == "crash" and "did not finish" in res.reason
    assert seen["cmd"][1:5] == ["-I", "-m", "autoresearch_portable.harness.score.evaluator", "--wait"]
    assert seen["cwd"] == "/" and seen["job"].strip().endswith("job.json")  # the job's path on its stdin
    env = seen["env"]
    assert env["ARP_SOMETHING"] == "kept" and "PYTHONPATH" not in env  # the rest of the environment is passed on
    assert int(env["MALLOC_MMAP_THRESHOLD_"]) >= 2**30 and int(env["MALLOC_TRIM_THRESHOLD_"]) >= 2**30


def test_train_py_runs_with_the_same_allocator_settings_and_cannot_relabel_its_run(tmp_path):
    """The trainer gets the evaluator's allocator settings (2.2x CPU throughput: benchmarks/README.md);
    what the run is compared by is the harness's to say: a report that claims another harness
    version or budget changes neither."""

    from autoresearch_portable import HARNESS_VERSION
    from autoresearch_portable.harness.run import launch as runner

    train_py = tmp_path / "train.py"
    train_py.write_text(  # its environment comes back in its output (its own folder is hidden from it)
        "import json, os\n"
        "cfg = json.load(open(os.environ['ARP_RUN_CONFIG']))\n"
        "print(*(f'{k}={os.environ.get(k)}' for k in sorted(os.environ) if k.startswith('MALLOC_')))\n"
        "json.dump({'status': 'ok', 'harness_version': '0', 'budget_seconds': 1.0, 'budget_mode': 'work',\n"
        "           'dataset': 'elsewhere', 'backend': 'cuda', 'env': dict(os.environ)}, open(cfg['result_path'], 'w'))\n")
    result = runner.run_training(train_py, probe={}, plan={"backend": "cpu", "device": "cpu"}, dataset="bundled",
                                 budget_seconds=30, quiet=True, timeout=60)
    for k, v in runner.MALLOC_SETTINGS.items():
        assert f"{k}={v}" in result["log_tail"]
    assert "env" not in result and "env" in result["reported_by_train_py"]  # not train.py's to set
    assert result["status"] == "crash"  # nothing was handed over
    import psutil  # the evaluator started beside it is gone too: it had nothing to score

    assert not [p for p in psutil.Process().children(recursive=True) if "score.evaluator" in " ".join(p.cmdline())]
    assert (result["harness_version"], result["budget_seconds"], result["budget_mode"], result["dataset"],
            result["backend"]) == (HARNESS_VERSION, 30, "wall", "bundled", "cpu")


def test_a_report_cannot_carry_a_gain_or_the_noise_the_verdict_uses(tmp_path):
    """The gain, normalized_bpb and the calibration's σ are computed by the harness after the run.
    On a device without a calibration nothing overwrites them, so a report that carried them would
    be shown as the run's gain and make the verdict's band as narrow as it liked."""
    from autoresearch_portable.harness.baseline import normalize
    from autoresearch_portable.harness.run import launch as runner
    from autoresearch_portable.harness.records import verdict

    forged = dict(status="ok", excess_ratio=0.5, excess_ratio_band=0.001, significant=True, metric="excess_ratio",
                  calibrated_sigma=1e-9, calibrated_sigma_dof=1000, compute_multiplier=64.0, normalized_bpb=0.1)
    train_py = tmp_path / "train.py"
    train_py.write_text("import json, os\ncfg = json.load(open(os.environ['ARP_RUN_CONFIG']))\n"
                        f"json.dump({forged!r}, open(cfg['result_path'], 'w'))\n")
    result = runner.run_training(train_py, probe={}, plan={"backend": "cpu", "device": "cpu"}, dataset="bundled",
                                 budget_seconds=30, quiet=True, timeout=60)
    assert not set(forged) - {"status"} & set(result)
    assert summary.gain_of(result) is None and verdict.calibrated_noise(result) is None
    assert "excess_ratio" in result["reported_by_train_py"]  # what it said is still on record
    # no key the normalization writes is one train.py may report (a ChildReport field)
    profile = dict(a=4.0, s=0.1, sigma=0.01, repeats=4, flops_at_budget=2.0**30, budget_seconds=300.0, floor_bpb=0.5,
                   flops_range=[1.0, 2.0], name="p")
    for floor in (0.5, None):  # the excess ratio, and delta without a floor
        p = dict(profile, floor_bpb=floor)
        written = set(normalize.normalize(0.9, p, reference=p, budget_seconds=3000))
        assert written and not written & {f.name for f in fields(ChildReport)}, floor


def test_a_benchmark_run_is_trained_not_scored(monkeypatch, tmp_path):
    """bench_train.py times training on random tokens the evaluator cannot load: with
    evaluate=False a handed-over model is not scored and the run is `trained`, not a crash; the
    same run with evaluation on is a crash that names the dataset."""
    from autoresearch_portable.harness.run import launch as runner

    train_py = tmp_path / "train.py"
    train_py.write_text("import json, os\ncfg = json.load(open(os.environ['ARP_RUN_CONFIG']))\n"
                        "json.dump({'status': 'handed_over', 'num_steps': 3}, open(cfg['result_path'], 'w'))\n")
    run = dict(probe={}, plan={"backend": "cpu", "device": "cpu"}, dataset="synthetic", budget_seconds=30,
               quiet=True, timeout=60)
    scored = runner.run_training(train_py, **run)
    assert scored["status"] == "crash" and "synthetic" in scored["reason"]

    def no_evaluator(*a, **k):
        raise AssertionError("the evaluator was started")

    monkeypatch.setattr(runner, "_evaluate", no_evaluator)
    trained = runner.run_training(train_py, evaluate=False, **run)
    assert trained["status"] == "trained" and trained["num_steps"] == 3 and "val_bpb" not in trained
