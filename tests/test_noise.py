"""Load awareness end to end: the unmodified baseline quiet and under a CPU hog (busy loops on
half the cores, started here). In work mode the FLOP budget fixes the training whatever the load: the
same steps, the same FLOPs, val_bpb within the evaluation band, and the run stays ok. In wall mode
the hogged run is marked `noisy`, with the measured figure."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow


class Hog:
    """Busy loops on half the cores (at least one), bounded in time, killed on exit: others then
    use about half the machine, twice the share that makes a wall-mode run noisy, and the runs
    under it (start-up, export and evaluation included) are slowed less than by a loop on every
    core, which the test does not need. Started through a shell that
    exits at once, so the loops belong to no one here: the runner's load monitor counts its own
    process tree as the run and must see these as other programs."""

    def __init__(self, seconds: float = 240):
        self.seconds = seconds

    def __enter__(self):
        loop = f"import time\nt = time.time() + {self.seconds}\nwhile time.time() < t: pass"
        self.pids = []
        for _ in range(max(1, (os.cpu_count() or 1) // 2)):
            out = subprocess.run(["sh", "-c", f'{sys.executable} -c "{loop}" >/dev/null 2>&1 & echo $!'],
                                 capture_output=True, text=True, check=True).stdout
            self.pids.append(int(out.strip()))
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def setup(small_bundled, tmp_path_factory):
    from autoresearch_portable.detect import make_plan, probe
    from autoresearch_portable.harness.baseline import calibrate as cal

    pr = probe()
    plan = make_plan(pr, "cpu").to_dict()
    sizes = dict(DEPTH=2, MODEL_DIM=64, HEAD_DIM=32, DEVICE_BATCH_SIZE=2, TOTAL_BATCH_SIZE=2 * small_bundled.seq_len)
    train_py = tmp_path_factory.mktemp("noise") / "train.py"
    train_py.write_text(cal.baseline_source(plan, sizes))
    return pr.to_dict(), plan, train_py


def run(setup, **kw):
    from autoresearch_portable.harness.run.launch import run_training

    pr, plan, train_py = setup
    return run_training(train_py, probe=pr, plan=plan, dataset="bundled", quiet=True, eval_rows=8,
                        overhead_seconds=60.0, **kw)


def test_work_mode_is_immune_to_load_and_wall_mode_flags_it(setup):
    work = dict(budget_seconds=2, budget_mode="work", flop_budget=2e10, timeout=600)  # slow under the hog
    quiet = run(setup, **work)
    with Hog():
        hogged = run(setup, **work)
        wall = run(setup, budget_seconds=2, timeout=600)
    assert quiet["status"] == "ok", quiet.get("reason")
    assert hogged["status"] == "ok", hogged.get("reason")  # load recorded, but it cannot change the training
    assert hogged["load_noisy"] and hogged["load_figures"]["others_cpu_share"] > quiet["load_figures"]["others_cpu_share"]
    assert hogged["num_steps"] == quiet["num_steps"] and hogged["train_flops"] == quiet["train_flops"]
    assert hogged["final_train_loss"] == quiet["final_train_loss"]  # the very same training, step for step
    # the same evaluation size at any speed (the workspace's eval_rows, never the run's own speed);
    # the bundled corpus scores fresh documents each run, so the tokens are as many, not the same
    assert hogged["eval_rows"] == quiet["eval_rows"] == 8
    assert abs(hogged["eval_tokens"] - quiet["eval_tokens"]) <= 0.05 * quiet["eval_tokens"]
    # the same model scored on fresh text each run: the two scores differ by the evaluation's
    # sampling error alone (3σ: at 2σ one honest pair in twenty fails, as one did)
    band = 3 * math.hypot(quiet["val_bpb_stderr"], hogged["val_bpb_stderr"])
    assert abs(hogged["val_bpb"] - quiet["val_bpb"]) <= band
    assert wall["status"] == "noisy", (wall["status"], wall.get("reason"))
    assert "other processes used" in wall["reason"]
