"""Calibration logic without training: a fake runner returns runs that follow a known curve, so
the schedule, the fit, the profile file, its reuse and its versioning are checked in milliseconds."""

from __future__ import annotations

import json
import math
import re

import pytest

from autoresearch_portable import HARNESS_VERSION, data
from autoresearch_portable.errors import UserError
from autoresearch_portable.harness.baseline import calibrate as cal

PROBE = {"cpu_model": "Fake CPU 9000", "os": "Linux"}
PLAN = {"backend": "cpu", "device": "cpu", "dtype": "bfloat16"}
SIZES = dict(DEPTH=2, MODEL_DIM=64, HEAD_DIM=32, DEVICE_BATCH_SIZE=1, TOTAL_BATCH_SIZE=128)
RATE = 1e9  # FLOP/s of the fake device


class FakeDataset:
    def __init__(self, version=1):
        self.name = "bundled"
        self.meta = {"generator_version": version, "versions": {"tokenizer": 2}}
        self.floor_bpb = 0.5
        self.seq_len = 128
        self.vocab_size = 256


def fake_runner(curve=lambda c: 4.0 - 0.1 * math.log2(c), calls=None):
    noise = {0: 0.0, 1: 0.01, 2: -0.01, 3: 0.005, 4: -0.005}

    def run(train_py, *, probe, plan, dataset, budget_seconds, budget_mode, seed, quiet, **kw):
        text = train_py.read_text()
        if calls is not None:
            calls.append(dict(budget=budget_seconds, seed=seed, mode=budget_mode, text=text))
        c = RATE * budget_seconds
        return dict(status="ok", val_bpb=curve(c) + noise[seed], val_bpb_stderr=0.001, train_flops=c,
                    tokens_per_second=1000.0, flops_per_token=1e6, mfu_percent=5.0, peak_flops=2e10,
                    peak_flops_source="measured", num_steps=int(40 * budget_seconds), num_params=12345)

    return run


@pytest.fixture
def fake_data(monkeypatch, tmp_path):
    monkeypatch.setenv("ARP_CACHE_DIR", str(tmp_path / "cache"))
    ds = FakeDataset()
    monkeypatch.setattr(data, "load", lambda name: ds, raising=False)
    return ds


def test_schedule_is_quarter_half_full_then_repeats():
    runs = cal.schedule(300, 2)
    assert [(r["budget_seconds"], r["seed"]) for r in runs] == [(75, 0), (150, 0), (300, 0), (300, 1), (300, 2)]


def test_baseline_source_is_the_template_with_sizes_and_seed():
    text = cal.baseline_source(PLAN, SIZES, model_seed=43)
    assert "\nDEPTH = 2 " in text and "\nMODEL_DIM = 64 " in text and "\nSEED = 43" in text
    assert "\nSEED = 42" in cal.baseline_source(PLAN, SIZES)


def test_calibrate_fits_the_curve_and_writes_the_profile(fake_data):
    calls, lines = [], []
    p = cal.calibrate(PROBE, PLAN, "bundled", 100, 3, sizes=SIZES, runner=fake_runner(calls=calls), log=lines.append)
    assert [(c["budget"], c["seed"], c["mode"]) for c in calls] == [
        (25, 0, "wall"), (50, 0, "wall"), (100, 0, "wall"), (100, 1, "wall"), (100, 2, "wall"), (100, 3, "wall")]
    assert "SEED = 44" in calls[4]["text"]  # other seeds: data order and model init
    # points exactly on the curve except the seed noise at T (mean 0.00125) -> a, s close to truth
    assert p["s"] == pytest.approx(0.1, abs=0.01)
    assert p["flops_at_budget"] == pytest.approx(1e11)
    assert p["flops_per_second"] == pytest.approx(RATE)
    assert p["sigma"] == pytest.approx(cal.normalize.sample_std([0.0, 0.01, -0.01, 0.005]))
    assert p["repeats"] == 3 and len(p["points"]) == 6
    assert p["harness_version"] == HARNESS_VERSION
    assert p["dataset"] == {"name": "bundled", "versions": {"generator_version": 1, "tokenizer": 2, "seq_len": 128, "vocab_size": 256}, "floor_bpb": 0.5}
    assert p["baseline_sizes"]["DEPTH"] == 2 and p["device_key"].startswith("cpu-cpu-Fake_CPU_9000")
    stored = json.loads(open(p["path"]).read())
    assert stored["a"] == p["a"] and "path" not in stored
    assert any("[6/6]" in l for l in lines)  # progress shown


def test_profile_is_reused_unless_forced(fake_data):
    cal.calibrate(PROBE, PLAN, "bundled", 100, 2, sizes=SIZES, runner=fake_runner(), log=lambda m: None)
    calls = []
    p = cal.calibrate(PROBE, PLAN, "bundled", 100, 2, sizes=SIZES, runner=fake_runner(calls=calls), log=lambda m: None)
    assert p["reused"] and calls == []
    with pytest.raises(UserError, match="already exists"):
        cal.calibrate(PROBE, PLAN, "bundled", 60, 2, sizes=SIZES, runner=fake_runner(), log=lambda m: None)
    cal.calibrate(PROBE, PLAN, "bundled", 100, 2, sizes=SIZES, runner=fake_runner(calls=calls), log=lambda m: None, force=True)
    assert len(calls) == 5


def test_no_profile_when_more_compute_does_not_help(fake_data):
    with pytest.raises(cal.CalibrationError, match="more compute did not help"):
        cal.calibrate(PROBE, PLAN, "bundled", 100, 2, sizes=SIZES, runner=fake_runner(curve=lambda c: 1.0 + 1e-13 * c),
                      log=lambda m: None)
    assert not cal.profile_path(PROBE, PLAN, "bundled").exists()


def test_stale_harness_version_is_refused(fake_data):
    p = cal.calibrate(PROBE, PLAN, "bundled", 100, 2, sizes=SIZES, runner=fake_runner(), log=lambda m: None)
    ds_id = cal.dataset_identity(fake_data)
    found, note = cal.find_profile(PROBE, PLAN, ds_id)
    assert found is not None and found["s"] == p["s"]
    # same file, older harness inside
    stored = json.loads(open(p["path"]).read())
    stored["harness_version"] = "0"
    with open(p["path"], "w") as f:
        json.dump(stored, f)
    found, note = cal.find_profile(PROBE, PLAN, ds_id)
    assert found is None and "harness version 0" in note and "arp calibrate" in note
    # a file of another harness version (its own name) is never picked up, and the note says so
    other = cal.paths.profiles_dir() / cal.profile_filename(p["device_key"], "bundled", "0")
    with open(p["path"]) as f:
        other.write_text(f.read())
    import os

    os.unlink(p["path"])
    found, note = cal.find_profile(PROBE, PLAN, ds_id)
    assert found is None and "another harness version" in note
    # calibrate with a stale profile present measures again instead of reusing it
    calls = []
    stored["harness_version"] = "0"
    with open(p["path"], "w") as f:
        json.dump(stored, f)
    cal.calibrate(PROBE, PLAN, "bundled", 100, 2, sizes=SIZES, runner=fake_runner(calls=calls), log=lambda m: None)
    assert len(calls) == 5


def test_changed_dataset_version_is_refused(fake_data):
    cal.calibrate(PROBE, PLAN, "bundled", 100, 2, sizes=SIZES, runner=fake_runner(), log=lambda m: None)
    found, note = cal.find_profile(PROBE, PLAN, cal.dataset_identity(FakeDataset(version=2)))
    assert found is None and "changed" in note


def test_missing_profile_note(fake_data):
    found, note = cal.find_profile(PROBE, PLAN, cal.dataset_identity(fake_data))
    assert found is None and "no calibration" in note and "arp calibrate" in note


def test_bad_arguments(fake_data):
    with pytest.raises(UserError, match="--repeats"):
        cal.calibrate(PROBE, PLAN, "bundled", 100, 1, sizes=SIZES, runner=fake_runner())
    with pytest.raises(UserError, match="--budget"):
        cal.calibrate(PROBE, PLAN, "bundled", 0, 2, sizes=SIZES, runner=fake_runner())


def test_failed_repeats_leave_too_few_points():
    pts = [dict(fraction=f, seed=s, status=st, val_bpb=1.0, train_flops=1e9 * f, tokens_per_second=1.0)
           for f, s, st in ((0.25, 0, "ok"), (0.5, 0, "ok"), (1.0, 0, "ok"), (1.0, 1, "crash"), (1.0, 2, "timeout"))]
    with pytest.raises(cal.CalibrationError, match="only 1"):
        cal.build_profile(pts, budget=10, base={})


# --- validity: the T/4 runs must make MIN_STEPS optimizer steps ------------------------------------

def few_steps_runner(steps_per_second, calls):
    base = fake_runner(calls=calls)

    def run(train_py, **kw):
        r = base(train_py, **kw)
        r["num_steps"] = int(steps_per_second * kw["budget_seconds"])
        return r

    return run


def test_steps_refusal_is_a_pure_rule():
    pts = [dict(fraction=0.25, seed=0, status="ok", num_steps=100), dict(fraction=0.5, seed=0, status="ok", num_steps=5)]
    why = cal.steps_refusal(pts, 100)
    # 100 steps in 25 s -> 200 steps take 50 s at T/4 -> T = 200 s, +10 % -> 220 s
    assert why == ("the baseline made only 100 optimizer steps at T/4 = 25s; normalized results need at least 200 "
                   "there: `arp calibrate --budget 220` (or longer) would do")
    assert cal.steps_refusal([dict(pts[0], num_steps=200)], 100) is None
    assert cal.steps_refusal(pts, 100, min_steps=0) is None
    assert cal.steps_refusal([dict(pts[0], status="crash")], 100) is None  # nothing measured at T/4 yet


def test_too_few_steps_refuse_normalization_but_keep_the_profile(fake_data):
    """A short budget: the curve is not trusted for normalized results, and the profile says which
    T would do; its FLOP/s, sigma and loss trace still serve work mode, the verdict and abandonment."""
    logs, calls = [], []
    p = cal.calibrate(PROBE, PLAN, "bundled", 100, 4, sizes=SIZES, runner=few_steps_runner(3, calls), log=logs.append)
    assert len(calls) == 7  # the whole schedule ran
    assert re.search(r"only 75 optimizer steps at T/4 = 25s.*--budget 300", p["normalization_refused"])
    assert any(m.startswith("note: the baseline made only 75") for m in logs)
    assert p["flops_per_second"] > 0 and p["sigma"] >= 0
    assert cal.stale_reason(p, p["dataset"]) is None  # current: work mode finds it
    assert "normalized results: at T=100s only; at other budgets n/a (the baseline made only 75" in cal.format_profile(p)
    from autoresearch_portable.harness.baseline import matched
    from autoresearch_portable.harness.records import results

    # at another budget the curve would place the run: refused
    r = results.annotate(dict(status="ok", val_bpb=1.0, budget_seconds=200), PROBE, PLAN, p["dataset"])
    assert "excess_ratio" not in r and "normalized_bpb" not in r and r["normalization_note"] == p["normalization_refused"]
    # at its own budget the gain needs only the baseline's measured mean there (issue 32); this fake
    # baseline sits below the fake floor, so delta scores it
    r = results.annotate(dict(status="ok", val_bpb=1.0, budget_seconds=100), PROBE, PLAN, p["dataset"])
    assert r["baseline_bpb"] == pytest.approx(p["baseline_bpb_mean"]) and p["baseline_bpb_mean"] < 0.5
    assert r["metric"] == "delta" and r["delta_bpb"] == pytest.approx(1.0 - p["baseline_bpb_mean"])
    assert "normalization_note" not in r
    assert matched.flop_budget_for("work", 100, PROBE, PLAN, p["dataset"])[0] == pytest.approx(100 * p["flops_per_second"])


def test_profile_records_its_fit_form(fake_data):
    p = cal.calibrate(PROBE, PLAN, "bundled", 100, 4, sizes=SIZES, runner=fake_runner(), log=lambda m: None)
    assert p["fit_form"] == "loglinear" and p["metric"] == "excess_ratio" and p["min_steps"] == cal.MIN_STEPS
    assert "power_fit" not in p  # the bending curves are the benchmarks' (benchmarks/metric_candidates.py)


def test_more_budgets_asked_for_are_run_and_fitted(fake_data):
    """check_normalization.py asks for T/4, T/2, 3T/4 and T, so that its bending curve has 4 budgets."""
    calls = []
    curve = lambda c: 0.7 + 0.3 * (c / 5e10) ** -0.5  # noqa: E731
    p = cal.calibrate(PROBE, PLAN, "bundled", 100, 2, sizes=SIZES, runner=fake_runner(curve=curve, calls=calls),
                      log=lambda m: None, fractions=(0.25, 0.5, 0.75, 1.0))
    assert [c["budget"] for c in calls] == [25, 50, 75, 100, 100, 100]
    assert sorted({pt["fraction"] for pt in p["points"]}) == [0.25, 0.5, 0.75, 1.0] and p["s"] > 0
    assert p["fit_form"] == "loglinear" and p["metric"] == "excess_ratio"


def test_a_stored_profile_with_too_few_steps_gives_no_normalized_results(fake_data):
    p = cal.calibrate(PROBE, PLAN, "bundled", 100, 2, sizes=SIZES, runner=fake_runner(), log=lambda m: None)
    ds_id = cal.dataset_identity(fake_data)
    stored = json.loads(open(p["path"]).read())
    assert cal.normalization_refusal(stored) is None
    for pt in stored["points"]:
        pt["num_steps"] = 120
    del stored["min_steps"], stored["normalization_refused"]  # a profile written before the rule
    with open(p["path"], "w") as f:
        json.dump(stored, f)
    found, note = cal.find_profile(PROBE, PLAN, ds_id)
    assert found is not None  # still this device's calibration (work mode, sigma, loss trace)
    assert "only 120 optimizer steps at T/4 = 25s" in cal.normalization_refusal(found)
    stored["min_steps"] = 0  # a quick bench's profile: no minimum
    assert cal.normalization_refusal(stored) is None
