"""The ledger as memory, without training: normalized hashes, diff summaries, the git context of a
run, the duplicate check's rules, keep/discard and results.tsv."""

from __future__ import annotations

import subprocess

from autoresearch_portable.harness.records import history

from autoresearch_portable.harness.records import memory
from autoresearch_portable.harness.run import provenance

CODE = "import math\n\nLR = 0.02  # the learning rate\n\n\ndef f(x):\n    return math.sqrt(x) * LR\n"


def git(folder, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=folder, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_normalized_hash_ignores_comments_and_blank_lines_only():
    same = CODE.replace("# the learning rate", "# a reworded comment").replace("\n\n\n", "\n\n\n\n# note\n")
    assert provenance.normalized_sha256(same) == provenance.normalized_sha256(CODE)
    assert provenance.normalized_sha256(CODE.replace("0.02", "0.03")) != provenance.normalized_sha256(CODE)
    assert provenance.normalized_sha256("def f(:\n  (") is None  # does not tokenize: the exact hash still counts


def test_diff_summary():
    diff = "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-LR = 0.02\n+LR   =   0.2\n"
    assert provenance.summarize_diff(diff) == "+1 -1: -LR = 0.02 | +LR = 0.2"
    assert provenance.summarize_diff("") == "no change to train.py"


def test_code_of_from_git(tmp_path):
    (tmp_path / "train.py").write_text(CODE)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "train.py")
    git(tmp_path, "commit", "-qm", "baseline")
    base = git(tmp_path, "rev-parse", "--short", "HEAD")
    (tmp_path / "train.py").write_text(CODE.replace("0.02", "0.2"))
    git(tmp_path, "commit", "-qam", "LR x10: faster learning?\n\nlonger explanation")
    ctx = provenance.code_of(tmp_path / "train.py").to_dict()
    assert ctx["git_parent"] == base and ctx["diff_base"] == base
    assert ctx["commit_message"].startswith("LR x10: faster learning?") and "longer explanation" in ctx["commit_message"]
    assert ctx["diff_summary"] == "+1 -1: -LR = 0.02 # the learning rate | +LR = 0.2 # the learning rate"
    assert "+LR = 0.2" in ctx["diff"]
    # uncommitted changes: the code that runs is HEAD plus them, diffed against HEAD
    (tmp_path / "train.py").write_text(CODE.replace("0.02", "0.5"))
    ctx = provenance.code_of(tmp_path / "train.py").to_dict()
    assert ctx["diff_base"] == git(tmp_path, "rev-parse", "--short", "HEAD") and ctx["diff_summary"].endswith("(uncommitted)")
    assert "-LR = 0.2" in ctx["diff"] and "+LR = 0.5" in ctx["diff"]


def test_code_of_outside_git(tmp_path):
    (tmp_path / "train.py").write_text(CODE)
    ctx = provenance.code_of(tmp_path / "train.py").to_dict()
    assert {k for k, v in ctx.items() if v is not None} <= {"train_py_sha256", "train_py_norm_sha256", "git_dirty"}
    assert ctx["train_py_norm_sha256"] and ctx["git_commit"] is None and ctx["diff"] is None


def _rec(status, sha, val=1.0, budget=60.0, commit="abc1234", **kw):
    return dict(dict(status=status, train_py_sha256=sha, train_py_norm_sha256="n" + sha, git_commit=commit,
                     commit_message="try " + sha, time="2026-01-01T10:00:00",
                     metrics=dict(val_bpb=val if status == "ok" else None, budget_seconds=budget, budget_mode="wall",
                                  dataset="bundled", backend="cpu", peak_memory_mb=512.0)), **kw)


SETTINGS = dict(dataset="bundled", budget_seconds=60, budget_mode="wall", backend="cpu")


def test_duplicates_count_conclusive_runs_of_the_same_code_and_settings():
    records = [_rec("ok", "a"), _rec("noisy", "b"), _rec("interrupted", "b"), _rec("abandoned", "c"),
               _rec("ok", "a", budget=30.0), _rec("ok", "d", untrusted=True), _rec("crash", "a")]
    assert [n for n, _ in memory.duplicates(records, "a", None, SETTINGS)] == [1, 7]
    assert memory.duplicates(records, "b", "nb", SETTINGS) == []  # the machine, not the code
    assert [n for n, _ in memory.duplicates(records, "zzz", "nc", SETTINGS)] == [4]  # normalized hash
    assert memory.duplicates(records, "d", None, SETTINGS) == []  # untrusted lines never count
    line = memory.run_line(1, records[0])
    assert line.startswith("run 1 (commit abc1234") and "ok, val_bpb 1.000000" in line and "try a" in line


def test_results_tsv_in_the_original_format(tmp_path):
    records = [_rec("ok", "a", 1.0, commit="aaaaaaa"), _rec("ok", "b", 0.9, commit="bbbbbbb"),
               _rec("abandoned", "c", commit="ccccccc", reason="trailing"), _rec("noisy", "d", commit="ddddddd"),
               _rec("ok", "e", 0.95, commit="eeeeeee", git_dirty=True)]
    records[3]["metrics"]["val_bpb"] = 0.8
    # outside git: kept = ok runs that set a new best
    assert memory.kept_runs(tmp_path, records) == {1, 2}
    path = memory.write_results_tsv(tmp_path, records)
    lines = path.read_text().splitlines()
    assert lines[0] == "commit\tval_bpb\tmemory_gb\tstatus\tdescription"
    assert lines[1] == "aaaaaaa\t1.000000\t0.5\tkeep\ttry a"
    assert lines[3] == "ccccccc\t0.000000\t0.0\tcrash\ttry c [abandoned]"
    assert lines[4] == "ddddddd\t0.800000\t0.5\tdiscard\ttry d [noisy]"
    assert lines[5] == "eeeeeee\t0.950000\t0.5\tdiscard\ttry e (uncommitted)"
    assert all(len(l.split("\t")) == 5 for l in lines)


def test_kept_runs_follow_the_branch_history(tmp_path):
    (tmp_path / "f").write_text("1")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "f")
    git(tmp_path, "commit", "-qm", "base")
    base = git(tmp_path, "rev-parse", "--short", "HEAD")
    (tmp_path / "f").write_text("2")
    git(tmp_path, "commit", "-qam", "tried")
    tried = git(tmp_path, "rev-parse", "--short", "HEAD")
    git(tmp_path, "reset", "-q", "--hard", "HEAD~1")  # the agent discarded it
    records = [_rec("ok", "a", commit=base), _rec("ok", "b", 0.5, commit=tried), _rec("crash", "c", commit=base)]
    assert memory.kept_runs(tmp_path, records) == {1}


def test_find_run_by_number_or_commit():
    records = [_rec("ok", "a", commit="abc1234"), _rec("ok", "b", commit="def5678"), _rec("crash", "c", commit="abc1234")]
    assert history.find_run(records, "2")[0] == 2
    assert history.find_run(records, "last")[0] == 3 and history.find_run(records, "-3")[0] == 1
    assert history.find_run(records, "abc1")[0] == 3  # a commit's latest run
    assert history.find_run(records, "def5678deadbeef")[0] == 2  # a longer hash than recorded
    for bad in ("9", "zz", "0", "ffff"):
        try:
            history.find_run(records, bad)
        except Exception as e:  # noqa: BLE001
            assert type(e).__name__ == "UserError" and "\n" not in str(e)
        else:
            raise AssertionError(bad)


def test_program_md_starts_from_the_memory():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "program.md").read_text()
    for needle in ("arp results --json", "arp results --near", "arp show RUN", "git commit -am \"",
                   "`abandoned`", "--no-abandon", "--again", "arp results --last 1", "Do what the verdict says",
                   "`verdict: repeat N`", "arp train --repeat N",
                   "written by the harness"):
        assert needle in text, needle
