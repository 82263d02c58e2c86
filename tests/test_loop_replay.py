"""benchmarks/loop_replay.py (issue 33): its edits, the Welch classes, and the replay of the loop
on recorded runs (pure: no training)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("loop_replay", ROOT / "benchmarks" / "loop_replay.py")
loop_replay = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loop_replay)
import loop_edits  # noqa: E402  (benchmarks/ is on sys.path now)

B = loop_replay.BASELINE


def test_every_edit_changes_the_code_of_the_template():
    from autoresearch_portable.harness.run.provenance import normalized_sha256

    text = (ROOT / "train_template.py").read_text()
    for name, edit in loop_edits.EDITS.items():
        new = edit.apply(text)
        assert normalized_sha256(new) != normalized_sha256(text), name  # a new experiment, not a duplicate
        compile(new, name, "exec")
    c = loop_edits.constants(loop_edits.EDITS["half_width"].apply(text))
    assert c["MODEL_DIM"] == loop_edits.constants(text)["MODEL_DIM"] // 2 and c["MODEL_DIM"] % c["HEAD_DIM"] == 0
    with pytest.raises(SystemExit):
        loop_edits.check_independent(["mlp2", "mlp2_full"])
    loop_edits.check_independent(list(loop_edits.DEFAULT_EDITS))


def test_welch_classes():
    base = [1.0, 1.02, 0.98, 1.01, 0.99]
    assert loop_replay.welch([v - 0.1 for v in base], base)["cls"] == "better"
    assert loop_replay.welch([v + 0.1 for v in base], base)["cls"] == "worse"
    w = loop_replay.welch([1.005, 0.995, 1.0], base)
    assert w["cls"] == "neutral" and w["gain"] == pytest.approx(0.0)
    assert loop_replay.welch([0.9], base)["cls"] == "n/a"


def test_floor_noise_separates_the_texts_difficulty_from_the_rest():
    # every run of a code scores 0.37 above its text's floor: the whole spread is the text
    floors = [0.250, 0.256, 0.253, 0.259]
    runs = {B: [dict(seed=i, status="ok", val_bpb=0.37 + f, floor_bpb=f) for i, f in enumerate(floors)],
            "x": [dict(seed=0, status="ok", val_bpb=0.6, floor_bpb=0.25), dict(seed=1, status="ok", val_bpb=0.61,
                                                                              floor_bpb=0.25)],
            "old": [dict(seed=0, status="ok", val_bpb=0.7), dict(seed=1, status="ok", val_bpb=0.5)],  # no floor
            "bad": [dict(seed=0, status="invalid", val_bpb=None, floor_bpb=0.3)]}
    f = loop_replay.floor_noise(runs)
    assert f["runs"] == 6 and f["dof"] == 4
    assert f["sigma_excess"] == pytest.approx((0.005 ** 2 * 2 / 4) ** 0.5)  # only x's spread is left
    assert f["sigma_val"] == pytest.approx(((45e-6 + 50e-6) / 4) ** 0.5)  # the floors' spread too
    assert f["floor_sigma"] > 0
    assert loop_replay.floor_noise({"old": runs["old"]})["sigma_val"] is None


def test_the_establish_phase_resumes_on_the_seeds_it_lacks():
    runs = [dict(seed=0, status="ok", val_bpb=1.0), dict(seed=1, status="noisy", val_bpb=1.1),
            dict(seed=2, status="crash"), dict(seed=3, status="invalid", reason="the Python environment changed "
                                                "during the run (site-packages)")]
    assert loop_replay.next_seed(runs) == 1  # a run the machine spoiled is run again on its seed
    assert not loop_replay.code_failed(runs[3]) and loop_replay.code_failed(dict(status="invalid", reason="causal"))
    assert loop_replay.next_seed([]) == 0
    targets = {B: 2, "a": 1, "bad": 1}
    done = {B: runs, "a": [dict(seed=0, status="ok", val_bpb=0.9)],
            "bad": [dict(seed=s, status="crash") for s in range(3)]}
    assert loop_replay.todo(done, targets) == [B]  # a code that crashed three times is not tried again


def test_draws_are_paired_by_seed_without_replacement_and_shifted_by_kept_gains():
    rec = {B: {0: 1.0, 1: 2.0, 2: 3.0}, "a": {0: 0.5, 1: 1.5, 2: 2.5}, "x": {0: 10.0, 1: 20.0}}
    draw = loop_replay.loop_draws(rec, np.random.default_rng(1))
    base = [draw(B, []) for _ in range(3)]
    assert sorted(base) == [1.0, 2.0, 3.0]                      # each recorded run once
    assert draw("a", []) == base[0] - 0.5                         # the first run's seed, as arp train pairs them
    shift_a = np.mean([0.5, 1.5, 2.5]) - 2.0
    first_x = draw("x", ["a"])                                    # on top of a kept edit: a's measured gain added
    assert first_x - shift_a in (10.0, 20.0)
    assert {first_x - shift_a, draw("x", ["a"]) - shift_a} == {10.0, 20.0}
    assert draw("x", ["a"]) - shift_a in (10.0, 20.0)             # used up: drawn again with replacement


def test_the_replay_keeps_a_clear_gain_and_not_an_exact_neutral():
    rng = np.random.default_rng(0)
    base = {s: float(0.74 + 0.01 * rng.standard_normal()) for s in range(10)}
    rec = {B: base, "good": {s: float(0.74 - 0.05 + 0.01 * rng.standard_normal()) for s in range(10)},
           "same": dict(base)}  # exactly the baseline's runs: the most neutral an edit can be
    loops = loop_replay.replay(rec, ["good", "same"], loops=100, seed=0)
    s = loop_replay.summarize(loops, {"good": "better", "same": "neutral"}, {"good": "better", "same": "neutral"})
    assert s["loops"] == 100 and set(s["edits"]) == {"good", "same"}
    assert s["edits"]["good"]["kept"] >= 0.8
    assert s["edits"]["same"]["kept"] <= 0.1 and s["kept_neutral_chosen"] == s["edits"]["same"]["kept"]
    assert 1 <= s["edits"]["good"]["runs"] <= 10 and s["runs_per_decision"] >= 1


def test_work_mode_runs_are_kept_apart_from_wall_mode_runs(monkeypatch, tmp_path):
    calls = []

    def run_one(folder, text, seed, mode):
        calls.append((text, seed, mode))
        return dict(status="ok", reason=None, val_bpb=1.0, val_bpb_stderr=0.01, num_steps=10, seconds=1.0)

    (tmp_path / "ws-5s").mkdir()
    monkeypatch.setattr(loop_replay, "workspace",
                        lambda folder, b, dataset, log: b.update(sizes={}, eval_rows=7) or "BASE")
    monkeypatch.setattr(loop_replay, "run_one", run_one)
    monkeypatch.setattr(loop_replay, "EDITS", {"e": loop_edits.Edit("neutral", "", replace=(("BASE", "EDITED"),))})
    out = dict(budgets={"5": dict(budget_seconds=5.0, runs={B: [dict(seed=0, status="ok", val_bpb=2.0)]})})
    for mode in ("work", "wall"):
        args = SimpleNamespace(budgets=[5.0], budget_mode=mode, edits=["e"], runs=1, baseline_runs=1,
                               workdir=str(tmp_path), dataset="bundled-v2")
        loop_replay.establish(args, out, save=lambda: None)
    work = out["budgets"]["5-work"]
    assert work["budget_mode"] == "work" and sorted(work["runs"]) == [B, "e"]
    assert calls[:2] == [("BASE", 0, "work"), ("EDITED", 0, "work")]
    assert calls[2:] == [("EDITED", 0, "wall")]  # the wall key already had its baseline run
