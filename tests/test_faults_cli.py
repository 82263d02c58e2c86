"""Bad input at the command line and in a workspace (issue 16): budgets that are not a duration,
a workspace folder that cannot be created, `arp init --force` over someone's work, a train.py
for the other framework. Each is one line on stderr and exit 2, before anything is measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autoresearch_portable import cli
from autoresearch_portable.errors import UserError
from autoresearch_portable.harness.run.budget import MAX_BUDGET_SECONDS, check_budget
from autoresearch_portable.harness.workspace import (
    WORKSPACE_FILES,
    check_backend,
    check_target,
    init_workspace,
)
from autoresearch_portable.harness.baseline.template import asset


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`arp ARGS` in this process (main(), as the console script runs it): (exit code, out, err)."""
    monkeypatch.setattr(sys, "argv", ["arp", *args])
    with pytest.raises(SystemExit) as e:
        cli.main()
    out, err = capsys.readouterr()
    return e.value.code, out, err


def assert_one_line(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e9", "0", "-5"])
@pytest.mark.parametrize("command", ["init", "calibrate"])
def test_unusable_budgets_are_one_line(monkeypatch, capsys, tmp_path, command, value):
    args = [command, str(tmp_path / "ws")] if command == "init" else [command]
    code, out, err = run_cli(monkeypatch, capsys, *args, "--budget", value)
    assert_one_line(code, out, err, "--budget must be a number of seconds above 0 and at most 604800 (a week)")
    assert not (tmp_path / "ws").exists()  # refused before anything was created or measured


def test_check_budget():
    assert check_budget(300) == 300.0 and check_budget(MAX_BUDGET_SECONDS) == MAX_BUDGET_SECONDS
    for bad in (float("nan"), float("inf"), 1e9, 0, -1, "soon", None):
        with pytest.raises(UserError, match=r"^--timeout must be a number of seconds"):
            check_budget(bad, "--timeout")


def test_init_in_an_impossible_place_is_one_line(monkeypatch, capsys, tmp_path):
    code, out, err = run_cli(monkeypatch, capsys, "init", "/proc/forbidden")
    assert_one_line(code, out, err, "cannot create a workspace in /proc/forbidden")
    f = tmp_path / "a-file"
    f.write_text("x")
    code, out, err = run_cli(monkeypatch, capsys, "init", str(f))
    assert_one_line(code, out, err, "exists and is not a folder")


SIZES = dict(DEPTH=2, MODEL_DIM=64, DEVICE_BATCH_SIZE=1, TOTAL_BATCH_SIZE=1024)
PLAN = {"backend": "cpu"}


def _git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=ws, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def measured(monkeypatch):
    """arp init measures the given sizes once (for the eval rows and the clock's allowance);
    these tests are about git, so the measurement is a fixed record."""
    monkeypatch.setattr("autoresearch_portable.harness.baseline.template.throughput_probe",
                        lambda *a, **k: dict(status="ok", tokens_per_second=1000.0, overhead_seconds=1.0))


def _init(ws: Path, force: bool = False) -> None:
    init_workspace(ws, {}, PLAN, "bundled", 300.0, force=force, log=lambda m: None, sizes=dict(SIZES))


def test_init_force_never_discards_work(small_bundled, measured, tmp_path):
    ws = tmp_path / "ws"
    _init(ws)
    edited = (ws / "train.py").read_text() + "\n# the agent's idea\n"
    (ws / "train.py").write_text(edited)
    with pytest.raises(UserError, match=r"has uncommitted work in train\.py; commit or move it first"):
        _init(ws, force=True)
    assert (ws / "train.py").read_text() == edited
    _git(ws, "add", "train.py")  # staged but not committed is still uncommitted work
    with pytest.raises(UserError, match="uncommitted work in train.py"):
        _init(ws, force=True)
    _git(ws, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "idea")
    # committed: --force may rewrite it (the edit stays in the history)
    _init(ws, force=True)
    assert (ws / "train.py").read_text() != edited
    assert "the agent's idea" in _git(ws, "show", "HEAD~1:train.py")


def test_init_force_commits_only_its_own_files(small_bundled, measured, tmp_path):
    ws = tmp_path / "ws"
    _init(ws)
    (ws / "train.py").write_text("# something else\n")
    _git(ws, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "other")
    (ws / "notes.txt").write_text("private notes\n")
    _git(ws, "add", "notes.txt")
    _init(ws, force=True)
    assert set(_git(ws, "show", "--name-only", "--format=", "HEAD").split()) <= set(WORKSPACE_FILES)
    assert _git(ws, "log", "-1", "--format=%s") == "baseline from arp init\n"
    assert _git(ws, "diff", "--cached", "--name-only").split() == ["notes.txt"]  # still staged, not committed
    # a --force that writes exactly what is committed has nothing to commit, and says nothing
    n = len(_git(ws, "log", "--format=%h").split())
    _init(ws, force=True)
    assert len(_git(ws, "log", "--format=%h").split()) == n


def test_init_parallel_commits_program_parallel_with_the_baseline(small_bundled, measured, tmp_path):
    ws = tmp_path / "ws"
    init_workspace(ws, {}, PLAN, "bundled", 300.0, log=lambda m: None, sizes=dict(SIZES), parallel=True)
    assert set(_git(ws, "show", "--name-only", "--format=", "HEAD").split()) == {*WORKSPACE_FILES, "program_parallel.md"}
    assert "arp submit" in (ws / "program_parallel.md").read_text()
    assert _git(ws, "status", "--porcelain") == ""


def test_init_force_outside_git_keeps_existing_files(tmp_path):
    ws = tmp_path / "plain"
    ws.mkdir()
    (ws / "train.py").write_text("mine\n")
    with pytest.raises(UserError, match=r"uncommitted work in train\.py"):
        check_target(ws, force=True)
    (ws / "other.txt").write_text("x")
    (ws / "train.py").unlink()
    check_target(ws, force=True)  # unrelated files are no obstacle
    with pytest.raises(UserError, match="is not empty"):
        check_target(ws, force=False)


def _workspace(tmp_path: Path, template: str, backend: str | None) -> Path:
    ws = tmp_path / template
    ws.mkdir()
    (ws / "train.py").write_text(asset(template).read_text())
    if backend:
        (ws / ".arp.json").write_text(json.dumps({"backend": backend}))
    return ws / "train.py"


def test_backend_of_the_other_framework_is_refused(tmp_path):
    torch_py = _workspace(tmp_path, "train_template.py", "cpu")
    mlx_py = _workspace(tmp_path, "train_template_mlx.py", "mlx")
    for backend in ("cpu", "cuda", "mps"):
        check_backend(torch_py, backend)
    check_backend(mlx_py, "mlx")
    with pytest.raises(UserError, match=r"train\.py is written for torch \(its imports\) but the backend is mlx"):
        check_backend(torch_py, "mlx")
    with pytest.raises(UserError, match=r"is written for mlx \(its imports\) but the backend is cpu; use the mlx backend"):
        check_backend(mlx_py, "cpu")
    # a file that imports neither: the workspace's record decides
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "train.py").write_text("print('hello')\n")
    (bare / ".arp.json").write_text(json.dumps({"backend": "mlx"}))
    with pytest.raises(UserError, match=r"written for mlx \(the workspace was created for mlx\)"):
        check_backend(bare / "train.py", "cuda")
    (bare / ".arp.json").unlink()
    check_backend(bare / "train.py", "cuda")  # nothing to go by: no refusal


def _good(commit: str, val: float) -> dict:
    """A record as the harness writes it: signed (an unsigned one would show as untrusted)."""
    from autoresearch_portable.harness.records import ledger

    return ledger.sign(dict(time="2026-11-27T10:00:00+0000", git_commit=commit, status="ok",
                            metrics=dict(val_bpb=val, num_steps=10, budget_seconds=60.0, budget_mode="wall",
                                         backend="cpu", device="Fake CPU", dataset="bundled")))


def _hostile_ledger(path: Path) -> None:
    """Two real records among everything a damaged or hand-edited ledger can hold."""
    bad_types = [
        dict(_good("x1", 1.0), metrics=[1, 2]),
        dict(_good("x2", 1.0), status=7),
        dict(_good("x3", 1.0), time=12345),
        dict(_good("x4", 1.0), metrics=dict(val_bpb="0.9", device="d")),
        dict(_good("x5", 1.0), metrics=dict(val_bpb=0.9, num_steps=True, device=["d"])),
        dict(_good("x6", 1.0), plan="cpu"),
    ]
    lines = [json.dumps(_good("aaa1111", 1.25)).encode(), b"[1, 2, 3]", b'"just a string"', b"42", b"null",
             b"{not json", *(json.dumps(r).encode() for r in bad_types), bytes(range(256)) * 3,
             b"\xff\xfe\x00garbage", json.dumps(_good("bbb2222", 1.125)).encode(), b"   "]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n" + b'{"status": "ok", "metrics": {"val_bpb": 0.1')  # torn tail


def test_results_and_compare_survive_a_hostile_ledger(monkeypatch, capsys, tmp_path):
    ws = tmp_path / "ws"
    _hostile_ledger(ws / "results" / "ledger.jsonl")
    code, out, err = run_cli(monkeypatch, capsys, "results", str(ws))
    assert code == 0 and "Traceback" not in err, err
    assert "aaa1111" in out and "bbb2222" in out and "x1" not in out
    assert "2 runs, 2 ok;" in out and "best val_bpb at 60s: 1.125000 (run 2, bbb2222)" in out
    skipped = [line for line in out.splitlines() if "unreadable" in line]
    # 5 + 6 bad lines, the random bytes (3 newlines in them: 4 lines), the garbage and the torn tail
    assert skipped == ["the ledger: 17 unreadable lines skipped (not a run record: damaged or edited by hand)"]
    code, out, err = run_cli(monkeypatch, capsys, "results", str(ws), "--json")
    assert code == 0 and [r["commit"] for r in json.loads(out)] == ["aaa1111", "bbb2222"]
    other = tmp_path / "other.jsonl"
    other.write_bytes(bytes(range(256)))
    code, out, err = run_cli(monkeypatch, capsys, "compare", str(ws), str(other))
    assert code == 0 and "Traceback" not in err, err
    assert f"{other}: 2 unreadable lines skipped" in out and "1.125000" in out  # one newline in bytes 0..255


def test_a_nan_score_in_an_old_ledger_is_never_the_best(tmp_path):
    from autoresearch_portable.harness.records import history
    from autoresearch_portable.harness.records import results as res

    path = tmp_path / "ledger.jsonl"
    path.write_text(json.dumps(_good("good", 1.5)) + "\n" + json.dumps(_good("nan", float("nan"))) + "\n")
    records = res.load_ledger(path)
    assert records.skipped == 0
    rows = [history.run_row(n, r) for n, r in history.numbered(records)]
    assert "best val_bpb at 60s: 1.500000 (run 1, good)" in history.format_runs(records, rows)
