"""Round two of the cheating train.py (issue 30): the ways found after the separate evaluator, each
in its own variant here. Every one ends prevented (the run is unchanged: nothing it tried took),
`invalid` or `over_budget`, never an `ok` with a better score. End to end on the CPU, tiny budgets.
The batch-pair peek and the small counted model are also checked on hand-made models in
tests/test_evaluator_checks.py; the confinement itself in tests/test_confine.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import scored
from test_integrity import _children_running, arp, cheat, last, last_value, workspace  # noqa: F401 (the fixture)

from autoresearch_portable.harness.run import confine

pytestmark = pytest.mark.slow
landlock = pytest.mark.skipif(confine.landlock_abi() == 0, reason="Landlock is not available on this kernel")


def workspace_phases(ws: Path) -> dict:
    phases = json.loads((ws / ".arp.json").read_text()).get("phases")
    assert phases and phases["startup_seconds"] > 0, phases  # measured by arp init, phase by phase
    return phases


def _site_hook() -> Path:
    import site

    return Path(site.getsitepackages()[0]) / "arp_cheat_hook.pth"


def ordinary_cheats(tmp_path: Path) -> tuple[str, list[Path], Path]:
    """What an agent tries innocently or not, all in one train.py before it hands over: keep the
    weights for the next run's warm start (the user cache, beside itself, /tmp, /dev/shm, home),
    drop a .pth file into site-packages (it runs at the start of every Python of the environment,
    the evaluator's too; here a path line to a folder that does not exist, which Python ignores,
    so no other process is touched), and leave a daemon behind (double fork + setsid: outside
    train.py's process group) that appends a fake summary to run.log after `arp train` exits.
    Returns (the code, the places that must stay unwritten, the forged log)."""
    from autoresearch_portable.paths import cache_dir

    places = [cache_dir() / "weights.pt", tmp_path / "cheat" / "weights.pt", Path("/tmp/arp-weights-cheat.pt"),
              Path("/dev/shm/arp-weights-cheat.pt"), Path.home() / "arp-weights-cheat.pt"]
    forged = tmp_path / "cheat" / "run.log"
    # (torch.save says RuntimeError for a file it may not open)
    code = "\n".join([f"try:\n    torch.save(model.state_dict(), {str(p)!r})\nexcept Exception:\n    pass" for p in places])
    code += f"\ntry:\n    open({str(_site_hook())!r}, 'w').write('/nonexistent/arp-cheat\\n')\nexcept OSError:\n    pass\n"
    code += (
        "import os as _os\n"
        "if _os.fork() == 0:\n"
        "    _os.setsid()\n"
        "    if _os.fork() == 0:\n"
        "        import time as _t; _t.sleep(30)  # long after arp train has exited\n"
        "        try:\n"
        f"            open({str(forged)!r}, 'a').write('val_bpb:          0.312\\nstatus:           ok\\n')\n"
        "        finally:\n"
        "            _os._exit(0)\n"
        "    _os._exit(0)\n"
        "rt.finish(model)")
    return code, places, forged


@landlock
def test_confined_the_weights_the_pth_file_and_the_daemon_all_fail_and_the_run_is_scored(workspace, tmp_path):
    code, places, forged = ordinary_cheats(tmp_path)
    path = cheat(workspace, tmp_path, "rt.finish(model)", code)
    try:
        r = arp("train", str(path), "--budget", "2", "--backend", "cpu")
        rec = last(path.parent)
        assert scored(r, rec["status"]), r.stderr[-2000:]
        assert rec["metrics"]["confined"].startswith("yes"), rec["metrics"]["confined"]
        assert last_value(r.stdout, "confined").startswith("yes")
        assert set(rec["metrics"]["phases"]) >= {"startup_seconds", "training_wall_seconds", "handover_seconds"}
        written = [str(p) for p in [*places, _site_hook()] if p.exists()]
        assert not written
        assert rec["metrics"]["processes_ended"] >= 1  # the daemon, ended before the result
        assert not _children_running(str(path))  # it is a fork of train.py: its command line names it
        assert not forged.exists()
    finally:
        for p in [*places, _site_hook()]:
            p.unlink(missing_ok=True)


@landlock
def test_a_user_without_arp_cache_dir_gets_the_dataset_in_a_confined_run(workspace, tmp_path, monkeypatch, arp_cache_dir):
    """Users have no ARP_CACHE_DIR: the cache is where platformdirs puts it, under XDG_CACHE_HOME,
    which a run's scratch replaces (the only writable folder). The child is told where the cache is."""
    from autoresearch_portable.paths import APP_NAME

    for name in ("cache", "share"):
        (tmp_path / name).mkdir()
    (tmp_path / "cache" / APP_NAME).symlink_to(arp_cache_dir)  # the prepared dataset, found as a user's would be
    monkeypatch.delenv("ARP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))  # the ledger's key, not the user's
    path = cheat(workspace, tmp_path, "rt = Runtime()", "rt = Runtime()")
    r = arp("train", str(path), "--budget", "2", "--backend", "cpu")
    rec = last(path.parent)
    assert scored(r, rec["status"]), (rec["status"], rec.get("reason"), r.stderr[-1500:])
    assert rec["metrics"]["confined"].startswith("yes")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the subreaper is Linux's")
@pytest.mark.serial  # the .pth file lands in the shared site-packages: any run beside it would be invalid
def test_unconfined_the_pth_file_makes_the_run_invalid_and_the_daemon_is_ended(workspace, tmp_path, monkeypatch):
    """Where confinement is off or unavailable, what it would have prevented is still caught: the
    environment digest changes (invalid), and the subreaper ends what train.py left behind."""
    monkeypatch.setenv("ARP_NO_CONFINE", "1")
    code, places, forged = ordinary_cheats(tmp_path)
    path = cheat(workspace, tmp_path, "rt.finish(model)", code)
    try:
        r = arp("train", str(path), "--budget", "2", "--backend", "cpu")
        assert _site_hook().exists()  # unconfined it could write it ...
        rec = last(path.parent)
        assert rec["status"] == "invalid" and "Python environment changed" in rec["reason"], (r.stderr[-2000:], rec.get("reason"))
        assert rec["metrics"]["confined"].startswith("no (ARP_NO_CONFINE")
        assert rec["metrics"]["processes_ended"] >= 1
        assert not _children_running(str(path))
        assert not forged.exists()
    finally:
        for p in [*places, _site_hook()]:
            p.unlink(missing_ok=True)


def test_training_on_after_rt_done_is_over_budget(workspace, tmp_path):
    """The allowance slack: training on (without telling rt) after the budget is used up. The
    parent sees rt.done's report and then no hand-over: past the clock, whatever the allowance."""
    path = cheat(workspace, tmp_path, "rt.finish(model)", (
        "import time as _t\nuntil = _t.time() + 4\n"
        "while _t.time() < until:\n"
        "    with K.autocast():\n        loss = train_model(x, y)\n    loss.backward()\n"
        "    for opt in optimizers:\n        opt.step()\n    model.zero_grad(set_to_none=True)\n"
        "    x, y = next(loader)\n"
        "rt.finish(model)"))
    r = arp("train", str(path), "--budget", "2", "--backend", "cpu")
    assert r.returncode == 1, r.stderr[-2000:]
    rec = last(path.parent)
    assert rec["status"] == "over_budget" and "past the clock" in rec["reason"], rec.get("reason")
    assert rec["metrics"]["phases"]["overrun_seconds"] > 3


def test_work_done_before_rt_start_is_limited_by_the_start_up_phase(workspace, tmp_path):
    """Statistics over the training split computed before rt.start (a bigram table) are training
    outside the clock: the start-up phase is limited by the baseline's measured start-up, on a CPU
    backend in CPU-seconds (work costs CPU; waiting for a core does not)."""
    from autoresearch_portable.harness.run.phases import Measured, limits

    lim = next(x for x in limits(Measured.from_dict(workspace_phases(workspace)), 2.0, "wall", None, on_cpu=True)
               if x.took == "startup_cpu_seconds")
    work = (f"import time as _t\nbusy = _t.process_time() + {lim.limit + 1:.1f}\n"
            "while _t.process_time() < busy:  # the 'statistics'\n    sum(range(10000))\nrt.start(model")
    path = cheat(workspace, tmp_path, "rt.start(model", work)
    r = arp("train", str(path), "--budget", "2", "--backend", "cpu")
    assert r.returncode == 1, r.stderr[-2000:]
    rec = last(path.parent)
    assert rec["status"] == "over_budget" and "start-up" in rec["reason"] and "CPU-s" in rec["reason"], rec.get("reason")


def test_a_private_loader_in_work_mode_is_over_budget(workspace, tmp_path):
    """Extra optimizer steps on batches read past rt's loader: FLOPs the harness does not count.
    Work mode caps the CPU-seconds of training at what the baseline needs for the FLOP budget.
    16 extra steps per step: ~3x the cap here (8 gave 1.7x, and one full-suite run passed as ok)."""
    from autoresearch_portable.detect import make_plan, probe
    from autoresearch_portable.harness.run.launch import run_training

    phases = workspace_phases(workspace)
    assert phases["cpu_per_second"] > 0 and phases["flops_per_second"] > 0
    path = cheat(workspace, tmp_path, "    rt.step(train_loss)", (
        "    for _ in range(16):  # uncounted steps on a loader of our own\n"
        "        px, py = next(private)\n"
        "        with K.autocast():\n            ploss = train_model(px, py)\n        ploss.backward()\n"
        "        for opt in optimizers:\n            opt.step()\n        model.zero_grad(set_to_none=True)\n"
        "    rt.step(train_loss)"))
    text = path.read_text().replace("loader = rt.train_loader(DEVICE_BATCH_SIZE)",
                                    "loader = rt.train_loader(DEVICE_BATCH_SIZE)\n"
                                    "private = (rt.backend.to_device(b) for b in rt._data.train_batches(DEVICE_BATCH_SIZE, seed=7))", 1)
    path.write_text(text)
    found = probe()
    result = run_training(path, probe=found.to_dict(), plan=make_plan(found, "cpu").to_dict(), dataset="bundled",
                          budget_seconds=2, budget_mode="work", flop_budget=2 * phases["flops_per_second"],
                          eval_rows=6, phases=phases, quiet=True)
    assert result["status"] == "over_budget" and "CPU" in result["reason"], (result["status"], result.get("reason"))


def test_a_small_model_counted_and_a_large_one_handed_over_is_invalid(workspace, tmp_path):
    """rt.start counts a depth-1 model (its FLOPs set the work-mode budget); a deeper one trains and
    is handed over. The evaluator counts the handed-over graph."""
    path = cheat(workspace, tmp_path, "rt.start(model,", (
        "small = GPT(VOCAB_SIZE, SEQ_LEN, 1, MODEL_DIM, HEAD_DIM).to(K.device)\n"
        "small.init_weights()\n"
        "rt.start(small,"))
    r = arp("train", str(path), "--budget", "2", "--backend", "cpu")
    assert r.returncode == 1, r.stderr[-2000:]
    rec = last(path.parent)
    assert rec["status"] == "invalid" and "counted" in rec["reason"], rec.get("reason")
