"""`arp bench` logic with a fake runner: the definition, choosing the reference, the table, the
export format; and the real bundled files' consistency."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from autoresearch_portable.harness.baseline import bench
from autoresearch_portable.harness.baseline import calibrate as cal

from test_calibrate import PLAN, PROBE, SIZES, FakeDataset, fake_data, fake_runner  # noqa: F401
from test_results import bundle  # noqa: F401

# benchmarks/update_readme.py: the README's table of the bundled reference profiles
_spec = importlib.util.spec_from_file_location("update_readme", Path(__file__).resolve().parent.parent / "benchmarks" / "update_readme.py")
update_readme = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # dataclasses need it there
_spec.loader.exec_module(update_readme)


def test_reference_preference_h100_first(bundle):
    ds_id = cal.dataset_identity(FakeDataset())
    base = dict(harness_version=cal.HARNESS_VERSION, dataset=ds_id, a=1, s=0.1, sigma=0.01, flops_at_budget=1e12,
                budget_seconds=300)
    profiles = [dict(base, file="cpu.json", backend="cpu", device_name="EPYC"),
                dict(base, file="mlx.json", backend="mlx", device_name="EPYC"),
                dict(base, file="a100.json", backend="cuda", device_name="NVIDIA A100"),
                dict(base, file="h100.json", backend="cuda", device_name="NVIDIA H100 80GB HBM3"),
                dict(base, file="old.json", backend="cuda", device_name="NVIDIA H100 old", harness_version="0")]
    refs, why = bench.usable_references(ds_id, profiles)
    assert [p["file"] for p in refs] == ["h100.json", "a100.json", "cpu.json", "mlx.json"] and why == ""
    refs, why = bench.usable_references(ds_id, profiles[-1:])
    assert refs == [] and "harness version" in why
    refs, why = bench.usable_references(dict(ds_id, name="climbmix"), profiles[:1])
    assert refs == [] and "climbmix" in why



def test_tables_show_the_excess_over_the_floor():
    p = dict(budget_seconds=300, baseline_bpb_mean=0.5031, floor_bpb=0.2584, backend="cpu", device_name="EPYC",
             file="cpu.json", s=0.03, sigma=0.004)
    assert bench.excess_over_floor(p) == pytest.approx(0.2447)
    assert bench.excess_over_floor(dict(p, floor_bpb=None)) is None
    row = next(line for line in update_readme.markdown_table([p]).splitlines() if "cpu.json" in line)
    assert "| 0.5031 | 0.2584 | 0.2447 |" in row and "| None (not used) |" in row
    rows = update_readme.markdown_table([dict(p, harness_version="0", file="old.json"),
                                 dict(p, harness_version=cal.HARNESS_VERSION, file="new.json")]).splitlines()
    assert "new.json" in rows[2] and "old.json" in rows[3]  # the profiles this version uses come first
    assert f"| {cal.HARNESS_VERSION} | 300 |" in rows[2] and "| 0 (not used) | 300 |" in rows[3]
    table = bench.format_table([bench.bench_row(p, None)], None)
    assert "excess" in table.splitlines()[0] and "0.2447" in table

def test_quick_bench_runs_and_prints_the_table(fake_data, bundle):
    lines = []
    p = bench.run_bench(PROBE, PLAN, quick=True, sizes=SIZES, runner=fake_runner(), log=lines.append)
    assert p["budget_seconds"] == 8 and p["quick"] is True
    assert p["path"].endswith("--quick.json") and "/bench/" in p["path"]
    assert not cal.profile_path(PROBE, PLAN, "bundled").exists()  # a quick bench is not the device's calibration
    text = bench.report(p)
    head = [l for l in text.splitlines() if l.startswith("device")][0]
    for col in ("tok/s", "MFU %", "bpb@T", "s/doubling", "sigma", "normalized_bpb"):
        assert col in head
    assert "this device: " in text and "Ref CPU (cpu)" in text
    assert "normalized_bpb on the scale of: Ref CPU (cpu)" in text
    assert "H100: not yet measured" in text
    # the reference's own baseline sits at b_ref on its own scale: g = 0
    ref_line = [l for l in text.splitlines() if l.startswith("Ref CPU")][0]
    assert "~+0.0%" in ref_line and "1.1600" in ref_line


def test_standard_bench_becomes_the_calibration_and_reuses_it(fake_data, bundle):
    p = bench.run_bench(PROBE, PLAN, sizes=SIZES, runner=fake_runner(), log=lambda m: None)
    assert p["budget_seconds"] == 100
    assert cal.profile_path(PROBE, PLAN, "bundled").exists()
    calls = []
    again = bench.run_bench(PROBE, PLAN, sizes=SIZES, runner=fake_runner(calls=calls), log=lambda m: None)
    assert calls == [] and again["a"] == p["a"]


def test_export_format(fake_data, bundle, tmp_path):
    p = bench.run_bench(PROBE, PLAN, quick=True, sizes=SIZES, runner=fake_runner(), log=lambda m: None)
    out = bench.to_bundle(p, bench_name="std-quick", command="arp bench --quick")
    assert "path" not in out and out["measured_with"] == "arp bench --quick" and out["benchmark"] == "std-quick"
    for k in ("device", "backend", "tokens_per_second", "mfu_percent", "a", "s", "sigma", "baseline_bpb_mean",
              "floor_bpb", "points", "harness_version", "dataset"):
        assert k in out, k
    # an exported file dropped into the bundle is a usable reference
    (tmp_path / "benchmarks" / "results" / "exported.json").write_text(json.dumps(out))
    names = [r.get("benchmark") for r in bench.usable_references(cal.dataset_identity(FakeDataset()))[0]]
    assert "std-quick" in names


def test_bundled_files_are_consistent(monkeypatch):
    """The files shipped in benchmarks/: the definition parses; every reference profile holds
    what the table and the normalization need, and its numbers agree with its own points."""
    monkeypatch.delenv("ARP_BENCHMARKS_DIR", raising=False)
    d = bench.definition()
    q = bench.definition(quick=True)
    assert d["dataset"] == "bundled-v2" and d["repeats"] >= 2 and q["budget_seconds"] < d["budget_seconds"]
    for p in bench.bundled_profiles():
        ok = [pt for pt in p["points"] if pt["status"] == "ok"]
        fit = cal.normalize.fit_curve([pt["train_flops"] for pt in ok], [pt["val_bpb"] for pt in ok])
        assert fit["a"] == pytest.approx(p["a"]) and fit["s"] == pytest.approx(p["s"]) and p["s"] > 0, p["file"]
        at_t = [pt["val_bpb"] for pt in ok if pt["fraction"] == 1.0]
        assert p["sigma"] == pytest.approx(cal.normalize.sample_std(at_t)), p["file"]
        for k in ("device_name", "backend", "tokens_per_second", "flops_per_second", "budget_seconds",
                  "baseline_bpb_mean", "measured_with"):
            assert p.get(k) is not None, (p["file"], k)


def _cli(monkeypatch, capsys, *args):
    import sys

    from autoresearch_portable import cli
    from autoresearch_portable.harness import experiment

    monkeypatch.setattr(experiment, "setting", lambda options, ws, log: (*experiment.resolve(options, ws), PROBE, PLAN))
    monkeypatch.setattr(sys, "argv", ["arp", *args])
    with pytest.raises(SystemExit) as e:
        cli.main()
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_cli_bench_quick_and_export(fake_data, bundle, monkeypatch, capsys, tmp_path):
    real = bench.run_bench
    monkeypatch.setattr(bench, "run_bench", lambda pr, plan, **kw: real(pr, plan, sizes=SIZES, runner=fake_runner(), **kw))
    out_file = tmp_path / "mine.json"
    code, out, err = _cli(monkeypatch, capsys, "bench", "--quick", "--export", str(out_file))
    assert code == 0, err
    assert "this device: " in out and "normalized_bpb on the scale of: Ref CPU (cpu)" in out
    exported = json.loads(out_file.read_text())
    assert exported["measured_with"] == "arp bench --quick --backend cpu" and exported["budget_seconds"] == 8
    assert exported["name"] == "Fake CPU 9000, torch cpu bfloat16, T=8s"


def test_cli_calibrate_prints_the_profile(fake_data, monkeypatch, capsys):
    real = cal.calibrate
    monkeypatch.setattr(cal, "calibrate", lambda pr, plan, ds, budget, repeats, **kw: real(
        pr, plan, ds, budget, repeats, sizes=SIZES, runner=fake_runner(), **kw))
    code, out, err = _cli(monkeypatch, capsys, "calibrate", "--budget", "40", "--repeats", "2")
    assert code == 0, err
    assert "baseline curve: val_bpb = " in out and "noise band of one run (±4.97σ, 95% for σ from 3 runs)" in out
    assert "[5/5] budget 40s seed 2" in err  # progress on stderr
    code, out, err = _cli(monkeypatch, capsys, "calibrate", "--budget", "40", "--json")
    assert code == 0 and json.loads(out)["reused"] is True and "reusing" in err


def test_calibrate_and_a_standalone_run_use_the_workspaces_dataset_else_corpus_v2(fake_data, monkeypatch, capsys, tmp_path):
    """Corpus v2 is the default (it keeps scaling, and the reference is measured on it); inside a
    workspace `arp calibrate` and `python train.py` use the workspace's dataset, as `arp train` does."""
    from autoresearch_portable.data.common import DEFAULT_DATASET
    from autoresearch_portable.harness.run import runtime

    seen = []
    monkeypatch.setattr(cal, "calibrate", lambda pr, plan, ds, *a, **kw: seen.append(ds) or {})
    monkeypatch.setattr(cal, "format_profile", lambda p: "")
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.chdir(tmp_path)
    assert _cli(monkeypatch, capsys, "calibrate")[0] == 0
    (ws / ".arp.json").write_text(json.dumps(dict(dataset="bundled")))
    monkeypatch.chdir(ws)
    assert _cli(monkeypatch, capsys, "calibrate")[0] == 0
    assert _cli(monkeypatch, capsys, "calibrate", "--dataset", "climbmix")[0] == 0
    assert seen == [DEFAULT_DATASET, "bundled", "climbmix"] and DEFAULT_DATASET == "bundled-v2"
    monkeypatch.delenv("ARP_DATASET", raising=False)
    monkeypatch.setattr(sys, "argv", [str(ws / "train.py")])
    assert runtime.default_config("cpu")["dataset"] == "bundled"
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "train.py")])
    assert runtime.default_config("cpu")["dataset"] == DEFAULT_DATASET
    monkeypatch.setenv("ARP_DATASET", "tinystories")
    assert runtime.default_config("cpu")["dataset"] == "tinystories"


def _bench_handover():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_handover.py"
    spec = importlib.util.spec_from_file_location("bench_handover", path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_handover_splits_a_run_into_its_phases():
    bh = _bench_handover()
    run = dict(status="ok", startup_seconds=5.0, training_seconds=5.0, export_seconds=2.0, total_seconds=17.0, wall=18.0)
    assert bh.after_exit(run) == pytest.approx(5.0)
    assert bh.after_exit(dict(run, export_seconds=None)) is None
    s = bh.summarize([run, dict(run, export_seconds=3.0, wall=20.0), dict(status="crash", wall=1.0)])
    assert s["ok"] == 2 and s["handover"] == pytest.approx(2.5) and s["after_exit"] == pytest.approx(4.5)
    assert s["wall"] == pytest.approx(19.0) and s["startup"] == pytest.approx(5.0)
