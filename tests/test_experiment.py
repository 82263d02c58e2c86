"""One experiment pipeline (harness/experiment.py, harness/run/settings.py): the workspace's settings
decide a run's budget under `arp train`, `arp submit` and `arp calibrate`; a flag overrides and
says so; `arp submit` refuses code that already ran; `arp show` takes git revisions. The cluster
run through the same steps, end to end, is in tests/test_history_e2e.py."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest
from typer.testing import CliRunner

from autoresearch_portable.errors import UserError
from autoresearch_portable.harness.records import ledger
from autoresearch_portable.harness.experiment import Options, resolve
from autoresearch_portable.harness.run.settings import Workspace


def make_workspace(folder, **settings):
    folder.mkdir(parents=True, exist_ok=True)
    Workspace(folder, **settings).save()
    return Workspace.load(folder)


def test_a_workspace_made_for_n_seconds_runs_n_seconds(tmp_path):
    ws = make_workspace(tmp_path / "ws", budget_seconds=5.0, dataset="bundled", backend="cpu", eval_rows=40)
    budget, dataset = resolve(Options(), ws)
    assert (budget.seconds, budget.mode, dataset) == (5.0, "wall", "bundled")
    assert ws.budget_note(5.0) is None and ws.eval_rows_for("bundled", 5.0) == 40
    budget, _ = resolve(Options(budget=60, budget_mode="work"), ws)  # a flag overrides ...
    assert (budget.seconds, budget.mode) == (60.0, "work")
    note = ws.budget_note(60.0)  # ... and says what was sized for which budget
    assert "sized for 5s" in note and "scaled to 60s" in note
    assert ws.eval_rows_for("bundled", 60.0) == 480  # evaluation stays the same share of the budget
    assert ws.eval_rows_for("bundled", 0.1) == 4
    assert ws.eval_rows_for("climbmix", 5.0) is None  # another dataset's rows are the run's to size
    outside = Workspace.load(tmp_path / "nowhere")
    assert not outside.found and resolve(Options(), outside)[0].seconds == 300.0
    with pytest.raises(UserError, match="budget-mode"):
        resolve(Options(budget_mode="fast"), ws)
    with pytest.raises(UserError, match="--budget must be"):
        resolve(Options(budget=float("nan")), ws)


def test_the_settings_file_keeps_what_this_version_does_not_know(tmp_path):
    (tmp_path / ".arp.json").write_text(json.dumps(dict(budget_seconds=30, future_key={"a": 1}, eval_rows=7)))
    ws = Workspace.load(tmp_path)
    assert ws.found and ws.budget_seconds == 30.0 and ws.eval_rows == 7 and ws.other == {"future_key": {"a": 1}}
    ws.save()
    assert json.loads((tmp_path / ".arp.json").read_text()) == dict(budget_seconds=30.0, future_key={"a": 1}, eval_rows=7)
    (tmp_path / ".arp.json").write_text("[1, 2]")
    assert not Workspace.load(tmp_path).found


def git(folder, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=folder, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    ws = tmp_path / "ws"
    make_workspace(ws, budget_seconds=7.0, dataset="bundled", backend="cpu")
    (ws / "train.py").write_text("print('baseline')\n")
    git(ws, "init", "-q")
    git(ws, "add", ".")
    git(ws, "commit", "-qm", "baseline")
    return ws


def test_submit_takes_the_workspaces_budget_and_refuses_code_that_already_ran(repo, monkeypatch):
    from autoresearch_portable.cluster import client

    monkeypatch.delenv("ARP_BACKEND", raising=False)
    options = client.options_for(repo, Options(seed=3))
    assert (options["budget"], options["budget_mode"], options["dataset"], options["seed"]) == (7.0, "wall", "bundled", 3)
    assert options["backend"] is None and options["abandon"] is True  # each node: the workspace's backend
    head = git(repo, "rev-parse", "HEAD")
    client.check_new(repo, [head], options)  # nothing ran yet
    sha = hashlib.sha256((repo / "train.py").read_bytes()).hexdigest()
    ledger.append(repo / "results" / "ledger.jsonl", dict(status="ok", train_py_sha256=sha, git_commit=head[:7], metrics=dict(
        dataset="bundled", budget_seconds=7.0, budget_mode="wall", backend="cpu", val_bpb=1.5)))
    said = []
    with pytest.raises(UserError, match="already ran 1 time"):
        client.check_new(repo, [head], options, log=said.append)
    assert said and said[0].startswith(head[:7] + ": already ran: run 1")
    client.check_new(repo, [head], dict(options, budget=14.0))  # another budget is another experiment


def test_calibrate_without_a_budget_calibrates_the_workspaces(repo, monkeypatch):
    from autoresearch_portable import cli
    from autoresearch_portable.harness.baseline import calibrate as cal
    from autoresearch_portable.harness.baseline import datasize

    seen = {}
    monkeypatch.setattr(datasize, "ensure_prepared", lambda *a, **kw: None)
    monkeypatch.setattr(cal, "calibrate", lambda pr, plan, dataset, budget, repeats, **kw: seen.update(
        dataset=dataset, budget=budget) or {})
    monkeypatch.setattr(cal, "format_profile", lambda p: "profile")
    monkeypatch.chdir(repo)
    r = CliRunner().invoke(cli.app, ["calibrate", "--backend", "cpu"])
    assert r.exit_code == 0, r.output
    assert seen == dict(dataset="bundled", budget=7.0)


def two_runs(repo):
    """The baseline and one committed idea, each with a run in the ledger: (first, second, ledger)."""
    first = git(repo, "rev-parse", "HEAD")
    (repo / "train.py").write_text("print('idea')\n")
    git(repo, "commit", "-qam", "idea")
    second = git(repo, "rev-parse", "HEAD")
    path = repo / "results" / "ledger.jsonl"
    for c in (first, second):
        ledger.append(path, dict(status="ok", git_commit=c[:7], metrics=dict(val_bpb=1.0)))
    return first, second, path


def test_show_takes_a_git_revision(repo):
    from autoresearch_portable.harness.records import history

    first, second, path = two_runs(repo)
    records = ledger.read(path)
    assert history.find_run(records, history.revision(repo, "HEAD"))[0] == 2
    assert history.find_run(records, history.revision(repo, "HEAD~1"))[0] == 1
    assert history.revision(repo, "last") == "last" and history.revision(repo, "-1") == "-1"
    assert history.revision(repo, "nonsense") == "nonsense"  # find_run says what it is not


def test_a_repeat_runs_on_seeds_this_code_has_not_run_with(tmp_path):
    from autoresearch_portable.harness.experiment import unused_seed

    path = tmp_path / "results" / "ledger.jsonl"
    code = b"print('idea')\n"
    settings = dict(dataset="bundled", budget_seconds=7.0, budget_mode="wall", backend="cpu")
    assert unused_seed(path, code, settings) == 0
    sha = hashlib.sha256(code).hexdigest()
    for seed in (0, 1):
        ledger.append(path, dict(status="ok", train_py_sha256=sha, metrics=dict(settings, val_bpb=1.0, seed=seed)))
    assert unused_seed(path, code, settings) == 2
    assert unused_seed(path, code, dict(settings, budget_seconds=14.0)) == 0  # another experiment
    assert unused_seed(path, b"other", settings) == 0


def test_results_rewrites_results_tsv_from_the_branch(repo):
    """A commit reset away was `keep` in results.tsv until the next run rewrote it; `arp results`
    rewrites it too."""
    from autoresearch_portable import cli

    first, second, path = two_runs(repo)
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    r = CliRunner().invoke(cli.app, ["results", str(repo)])
    assert r.exit_code == 0, r.output
    rows = [line.split("\t") for line in (repo / "results.tsv").read_text().splitlines()[1:]]
    assert [(c, status) for c, _, _, status, _ in rows] == [(first[:7], "keep"), (second[:7], "discard")]
