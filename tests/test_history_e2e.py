"""Research memory on a real ledger made by real tiny runs: the duplicate check, `arp results`
(--json, --last, --near, --plot), `arp show`, results.tsv, and early abandonment of a real run
against a calibrated baseline trace (from the real calibrate() with a fake runner)."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import zlib

import pytest
from conftest import SCORED

from autoresearch_portable.harness.baseline import calibrate as cal

pytestmark = pytest.mark.slow

TINY = dict(DEPTH=2, MODEL_DIM=64, HEAD_DIM=32, DEVICE_BATCH_SIZE=2)


def arp(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "autoresearch_portable", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=os.environ.copy())


def git(ws, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=ws, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def ws(small_bundled, tmp_path_factory):
    ws = tmp_path_factory.mktemp("memory") / "ws"
    r = arp("init", str(ws), "--budget", "4", "--backend", "cpu", "--dataset", "bundled", "--depth", "2", "--dim", "64", "--device-batch", "2",
            "--total-batch", str(2 * small_bundled.seq_len))
    assert r.returncode == 0, r.stderr
    config = json.loads((ws / ".arp.json").read_text())  # not about the clock (see test_e2e_train)
    (ws / ".arp.json").write_text(json.dumps(dict(config, overhead_seconds=30.0)))
    return ws


@pytest.fixture(scope="module")
def history(ws):
    """Three real runs: the baseline; an edit (committed with its hypothesis, then discarded with
    git reset); the same edit committed again, refused as a duplicate, then run with --again."""
    runs = {"baseline": arp("train", "--budget", "2", "--backend", "cpu", cwd=ws)}
    text = (ws / "train.py").read_text()
    edited = re.sub(r"^MATRIX_LR = 0.02", "MATRIX_LR = 0.04", text, flags=re.M)
    (ws / "train.py").write_text(edited)
    git(ws, "commit", "-qam", "double the Muon LR\n\nfaster early progress?")
    runs["edit"] = arp("train", "--budget", "2", "--backend", "cpu", cwd=ws)
    git(ws, "reset", "-q", "--hard", "HEAD~1")
    # the same code again, only a comment differs: the normalized hash recognises it
    (ws / "train.py").write_text(edited.replace("# Muon, for the 2D weights", "# Muon (again), for the 2D weights"))
    git(ws, "commit", "-qam", "double the Muon LR, retried")
    runs["refused"] = arp("train", "--budget", "2", "--backend", "cpu", cwd=ws)
    runs["again"] = arp("train", "--budget", "2", "--backend", "cpu", "--again", cwd=ws)
    return runs


def test_the_duplicate_check_shows_the_earlier_result_and_asks_for_again(ws, history):
    r = history["refused"]
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert lines[-1].startswith("error: this train.py already ran 1 time(s)") and "--again" in lines[-1]
    assert any(l.startswith("already ran: run 2 (commit ") and "double the Muon LR" in l for l in lines), lines
    assert "val_bpb:" not in r.stdout  # nothing was trained
    assert history["again"].returncode in (0, 1) and "val_bpb:" in history["again"].stdout
    rows = json.loads(arp("results", "--json", cwd=ws).stdout)
    assert len(rows) == 3  # the refused one left no line


def test_results_json_carries_the_memory(ws, history):
    rows = json.loads(arp("results", "--json", cwd=ws).stdout)
    assert [r["run"] for r in rows] == [1, 2, 3]
    assert [r["message"] for r in rows] == ["baseline from arp init", "double the Muon LR", "double the Muon LR, retried"]
    base_commit = rows[0]["commit"]
    assert rows[1]["parent"] == base_commit and rows[2]["parent"] == base_commit
    assert "MATRIX_LR = 0.04" in rows[1]["diff_summary"] and rows[0]["diff_summary"].startswith("first commit")
    assert rows[1]["train_py_sha256"] != rows[2]["train_py_sha256"]  # a comment differs, the code does not
    for r in rows:
        assert r["status"] in SCORED and isinstance(r["val_bpb"], float)
        assert set(r) >= {"run", "time", "commit", "parent", "status", "val_bpb", "val_bpb_stderr", "message",
                          "diff_summary", "kept", "noisy", "verdict", "abandon_progress"}
    # kept = ok and still in the branch's history: the reset one is not
    assert rows[1]["kept"] is False
    assert rows[0]["kept"] == (rows[0]["status"] == "ok") and rows[2]["kept"] == (rows[2]["status"] == "ok")
    last = json.loads(arp("results", "--json", "--last", "1", cwd=ws).stdout)
    assert [r["run"] for r in last] == [3]


def test_results_table_and_tsv(ws, history):
    r = arp("results", cwd=ws)
    assert r.returncode == 0
    head = r.stdout.splitlines()[0].split()
    assert head[:4] == ["run", "time", "commit", "status"] and head[-1] == "hypothesis"
    assert "double the Muon LR, retried" in r.stdout
    tsv = (ws / "results.tsv").read_text().splitlines()
    assert tsv[0] == "commit\tval_bpb\tmemory_gb\tstatus\tdescription" and len(tsv) == 4
    rows = json.loads(arp("results", "--json", cwd=ws).stdout)
    for line, row in zip(tsv[1:], rows):
        commit, bpb, mem, status, desc = line.split("\t")
        assert commit == row["commit"] and float(bpb) == pytest.approx(row["val_bpb"], abs=1e-6)
        assert status == ("keep" if row["kept"] else "discard") and desc.startswith(row["message"])
        assert float(mem) == pytest.approx(row["peak_memory_mb"] / 1024, abs=0.051)
    assert "results.tsv" in (ws / ".gitignore").read_text()


def test_rich_table_renders_the_same_rows(ws, history):
    from rich.console import Console

    from autoresearch_portable.harness.records import history as h
    from autoresearch_portable.harness.records import results as res

    records = res.load_ledger(ws)
    rows = [h.run_row(n, rec, set()) for n, rec in h.numbered(records)]
    console = Console(record=True, width=200, color_system=None)
    console.print(h.rich_table(rows))
    text = console.export_text()
    assert "hypothesis" in text and "double the Muon LR, retried" in text and f"{rows[0]['val_bpb']:.6f}" in text


def test_near_misses(ws, history):
    near = json.loads(arp("results", "--near", "--json", cwd=ws).stdout)
    assert set(near) == {"best", "sigma", "sigma_dof", "sigma_source", "near"}
    ok = [r for r in json.loads(arp("results", "--json", cwd=ws).stdout) if r["status"] == "ok"]
    if not ok:
        pytest.skip("the machine was busy: no ok run to compare with")
    assert near["best"]["mean_val_bpb"] in [r["val_bpb"] for r in ok]
    for d in near["near"]:
        assert d["gap"] <= d["band"] and d["runs"]
    text = arp("results", "--near", cwd=ws).stdout
    assert text.startswith("the bar: ")


def _png_chunks(data: bytes):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        chunks.setdefault(kind, []).append(body)
        pos += 12 + n
    return chunks


def test_plot_is_a_png_with_one_point_per_scored_run(ws, history, tmp_path):
    out = tmp_path / "progress.png"
    r = arp("results", "--plot", str(out), cwd=ws)
    assert r.returncode == 0 and f"plot written: {out}" in r.stdout
    chunks = _png_chunks(out.read_bytes())
    width, height = struct.unpack(">II", chunks[b"IHDR"][0][:8])
    assert (width, height) == (1000, 500)
    text = dict(c.split(b"\0", 1) for c in chunks.get(b"tEXt", []))
    rows = json.loads(arp("results", "--json", cwd=ws).stdout)
    n_ok = sum(r["status"] == "ok" for r in rows)
    n_kept = sum(bool(r["kept"]) for r in rows)
    assert text[b"Description"].decode() == f"points={n_ok} kept={n_kept} runs=3"
    from matplotlib import image

    assert image.imread(out).shape[:2] == (500, 1000)  # it opens
    assert arp("results", "--plot", str(tmp_path / "p.jpg"), cwd=ws).returncode == 2


def test_show_by_run_and_commit(ws, history):
    rows = json.loads(arp("results", "--json", cwd=ws).stdout)
    r = arp("show", "2", cwd=ws)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith(f"run 2  ") and f"commit {rows[1]['commit']} (parent {rows[0]['commit']})" in out
    assert "faster early progress?" in out  # the whole message
    assert "+MATRIX_LR = 0.04" in out and "-MATRIX_LR = 0.02" in out  # the diff
    assert re.search(r"^val_bpb:\s+[0-9.]+$", out, re.M) and re.search(r"^status:\s+\w+", out, re.M)
    assert "--- log tail" in out and "step " in out  # train.py's own progress lines
    by_commit = json.loads(arp("show", rows[1]["commit"], "--json", cwd=ws).stdout)
    assert by_commit["run"] == 2 and by_commit["diff"].count("MATRIX_LR") == 2
    bad = arp("show", "99", cwd=ws)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: '99' is neither a run number (1 to 3)")
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


# --- early abandonment of a real run ------------------------------------------------------------

ABANDON_BUDGET = 6.0


@pytest.fixture
def low_baseline(ws, small_bundled):
    """A calibration at the test's budget whose baseline trace is far below anything a real run
    reaches (loss 0.05): every real run trails it."""
    from autoresearch_portable.detect import make_plan, probe

    pr = probe()
    plan = make_plan(pr, "cpu").to_dict()
    sizes = dict(TINY, TOTAL_BATCH_SIZE=2 * small_bundled.seq_len)

    def runner(train_py, *, budget_seconds, seed, **kw):
        c = 1e10 * budget_seconds
        return dict(status="ok", val_bpb=6.0 - 0.1 * __import__("math").log2(c) + 0.01 * seed, train_flops=c,
                    tokens_per_second=5000.0, flops_per_token=1e6, num_steps=1000,
                    loss_trace=[0.05 + 0.001 * seed] * 50)

    profiles = [cal.calibrate(pr.to_dict(), dict(plan, dtype=dt), "bundled", ABANDON_BUDGET, 2, sizes=sizes, runner=runner,
                              log=lambda m: None, force=True) for dt in ("bfloat16", "float32")]
    assert profiles[0]["loss_trace"]["runs"] == [[0.05 + 0.001 * seed] * 50 for seed in (0, 1, 2)]  # the runs at T
    yield profiles[0]
    for p in profiles:
        os.unlink(p["path"])


def test_a_run_trailing_the_baseline_is_abandoned_by_the_parent(ws, history, low_baseline):
    from autoresearch_portable.harness.records import ledger

    r = arp("train", "--budget", f"{ABANDON_BUDGET:g}", "--backend", "cpu", cwd=ws)
    assert "early abandonment: on" in r.stderr
    rec = ledger.read(ws / "results" / "ledger.jsonl")[-1]
    m = rec["metrics"]
    assert r.returncode == 1 and rec["status"] == "abandoned", (rec["status"], rec.get("reason"), r.stderr[-1500:])
    status = re.findall(r"^status:\s+(.*)$", r.stdout, re.M)[-1]  # the grep rule of program.md
    assert status.startswith("abandoned (training loss ") and "trailed the calibrated baseline" in status
    assert m["abandon_gap"] > m["abandon_margin"] > 0 and 0.3 <= m["abandon_progress"] <= 0.9
    assert m["abandon_saved_seconds"] == pytest.approx((1 - m["abandon_progress"]) * ABANDON_BUDGET)
    assert m.get("val_bpb") is None  # nothing was scored
    rows = json.loads(arp("results", "--json", cwd=ws).stdout)
    assert rows[-1]["status"] == "abandoned" and rows[-1]["abandon_gap"] == pytest.approx(m["abandon_gap"])
    assert rows[-1]["val_bpb"] is None and not rows[-1]["kept"]  # never a best, never kept
    assert (ws / "results.tsv").read_text().splitlines()[-1].split("\t")[3] == "crash"
    # the same code: a duplicate (abandoned is an outcome); --no-abandon --again runs it to the end
    r2 = arp("train", "--budget", f"{ABANDON_BUDGET:g}", "--backend", "cpu", cwd=ws)
    assert r2.returncode == 2 and "already ran" in r2.stderr
    r3 = arp("train", "--budget", f"{ABANDON_BUDGET:g}", "--backend", "cpu", "--no-abandon", "--again", cwd=ws)
    assert "early abandonment: off (--no-abandon)" in r3.stderr
    assert ledger.read(ws / "results" / "ledger.jsonl")[-1]["status"] in SCORED, r3.stderr[-1500:]


def test_a_cluster_run_goes_through_the_same_steps_as_arp_train(ws, history, low_baseline):
    """What a Ray task runs (cluster/worker.py run_experiment) and what the driver records
    (cluster/driver.py record), without Ray: the submitted options are settled from the workspace,
    the run is watched against the node's calibrated baseline (abandoned here: it trails it), and
    the driver's signed line lands in results.tsv as an `arp train` run's does."""
    from autoresearch_portable.cluster import client, driver, queue, worker
    from autoresearch_portable.harness.records import ledger
    from autoresearch_portable.harness.experiment import Options

    options = client.options_for(ws, Options(budget=ABANDON_BUDGET, backend="cpu", seed=5))
    assert options["dataset"] == "bundled" and options["abandon"]  # the workspace's dataset
    result, pr, plan = worker.run_experiment(ws / "train.py", options)
    assert result["status"] == "abandoned" and result["budget_seconds"] == ABANDON_BUDGET, (result["status"], result.get("reason"))
    head = git(ws, "rev-parse", "HEAD")
    (e,) = queue.add([], [head], [options], now=1.0)
    before = len(ledger.read(ws / "results" / "ledger.jsonl"))
    recorded, _ = driver.record(ws, e, dict(result=result, probe=pr, plan=plan, train_py=str(ws / "train.py"), node="n1",
                                            slot="2 cpu"))
    recs = ledger.read(ws / "results" / "ledger.jsonl")
    assert len(recs) == before + 1 and recs[-1]["queue"]["id"] == e.id and not recs[-1].get(ledger.UNTRUSTED)
    assert recs[-1]["status"] == "abandoned" and recs[-1]["cluster"]["node"] == "n1"
    tsv = (ws / "results.tsv").read_text().splitlines()
    assert len(tsv) == len(recs) + 1 and tsv[-1].split("\t")[3] == "crash"  # the header, then one row per run


def test_repeat_is_a_deliberate_rerun(ws, small_bundled, tmp_path, monkeypatch, capsys):
    """`--repeat N` runs code that already ran (the duplicate check only prints the earlier result);
    a plain rerun is refused. In process, with the training itself faked (the check is the CLI's)."""
    from autoresearch_portable import HARNESS_VERSION, cli
    from autoresearch_portable.harness.records import ledger
    from autoresearch_portable.harness.run import launch as runner
    from autoresearch_portable.harness.run.provenance import file_sha256

    train_py = tmp_path / "train.py"
    train_py.write_text((ws / "train.py").read_text())
    calls = []

    def fake_run(path, *, budget_seconds, budget_mode, seed, **kw):
        calls.append(seed)
        return dict(status="ok", val_bpb=1.0 + 0.01 * seed, val_bpb_stderr=0.001, budget_seconds=budget_seconds,
                    harness_version=HARNESS_VERSION, seed=seed,
                    budget_mode=budget_mode, backend="cpu", dataset="bundled", train_py_sha256=file_sha256(path),
                    train_py_norm_sha256=None)

    monkeypatch.setattr(runner, "run_training", fake_run)

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["arp", "train", str(train_py), "--budget", "3", "--backend", "cpu", "--dataset", "bundled", *args])
        with pytest.raises(SystemExit) as e:
            cli.main()
        return e.value.code, capsys.readouterr()

    assert run()[0] == 0 and calls == [0]
    code, out = run()
    assert code == 2 and "already ran: run 1" in out.err and out.err.strip().splitlines()[-1].startswith("error: ")
    code, out = run("--repeat", "2")
    # the repeats run on data seeds this code has not run with (0 is in its mean already)
    assert code == 0 and calls == [0, 1, 2] and "repeat: 2 ok runs of 2; this code now has 3 ok runs" in out.out
    assert len(ledger.read(tmp_path / "results" / "ledger.jsonl")) == 3
