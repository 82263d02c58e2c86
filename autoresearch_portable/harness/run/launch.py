"""Runs an agent's train.py under the harness and turns whatever happens to it into one result.

train.py's process is the thing being measured, so nothing it says decides the score. The parent
(this module):
* owns the clock: it measures launch to the child's exit itself; in wall mode a run that took
  longer than budget + allowance (start-up, warm-up and export, measured for the workspace's
  baseline) is `over_budget`;
* hands the exported model to the evaluator, a separate process that runs no code of train.py's
  and alone computes val_bpb, the causality check and the floor check;
* records the hash of the train.py that ran (taken before launch) and checks that the harness's
  own files did not change during the run;
* ends the child's whole process group when the child ends, and the child dies with the parent.

What train.py reports is read as a ChildReport and what the evaluator scored as a Score
(harness/run/outcome.py): each type has exactly the fields its side may set. The Status is the
parent's.

Statuses: ok, noisy (wall mode, other work on the machine disturbed the run: not comparable),
unverified (scored inside train.py's process: the model could not be exported), invalid (peeks at
later tokens, below the entropy floor, tampering), over_budget, diverged (NaN or exploding loss or
logits), oom, crash, timeout (past its time limit or, in work and matched mode, no training progress
for a while: harness/run/limits.py), interrupted (Ctrl-C, SIGTERM)."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from autoresearch_portable import HARNESS_VERSION
from autoresearch_portable.detect.load import LoadMonitor
from autoresearch_portable.detect.load import judge as judge_load
from autoresearch_portable.errors import UserError
from autoresearch_portable.fsutil import atomic_write_json, pid_lock
from autoresearch_portable.harness.run import abandon as ab
from autoresearch_portable.harness.run import child as child_process
from autoresearch_portable.harness.run import confine
from autoresearch_portable.harness.run import peak as mfu_peak
from autoresearch_portable.harness.run.budget import eval_rows as size_eval_rows
from autoresearch_portable.harness.run.limits import allowance, hang_reason, time_limit
from autoresearch_portable.harness.run.oom import OOM_PATTERN
from autoresearch_portable.harness.run.outcome import ChildReport, Score, Status
from autoresearch_portable.harness.run.phases import Marks, Measured, durations, limits, measured_from
from autoresearch_portable.harness.run.phases import judge as judge_phases
from autoresearch_portable.harness.run.provenance import changed_folders, code_of, environment_digest, harness_digest
from autoresearch_portable.harness.run.runtime import run_config
from autoresearch_portable.paths import cache_dir, data_dir

# Training and scoring allocate blocks of tens to hundreds of MB every step or batch (activations,
# gradients, logits and their copies). Above glibc's mmap threshold each one is mapped and unmapped
# afresh, paying page faults and zeroing every time; kept on the heap instead, a 64-row evaluation
# took 3.2-3.7 s instead of 8.3-8.6 s and the CPU baseline trained 2.2-2.3x faster (2-core EPYC, bf16;
# benchmarks/README.md, "The allocator"). Both processes are started with them; other C libraries
# ignore these variables.
MALLOC_SETTINGS = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


def run_training(
    train_py: Path,
    *,
    probe: dict,
    plan: dict,
    dataset: str,
    budget_seconds: float,
    budget_mode: str = "wall",
    flop_budget: float | None = None,
    seed: int = 0,
    timeout: float | None = None,
    probe_steps: int | None = None,
    quiet: bool = False,
    eval_rows: int | None = None,
    overhead_seconds: float | None = None,
    phases: dict | None = None,
    abandon: list | None = None,
    evaluate: bool = True,
    expected_tokens_per_second: float | None = None,
) -> dict[str, Any]:
    """`phases`: the workspace baseline's phases as `arp init` measured them (phases.Measured); each
    phase of this run is limited by them. Without them (a workspace made before they were measured),
    a wall-mode run is limited as a whole by `overhead_seconds` (limits.allowance).
    `abandon`: the calibrated baseline's loss traces (abandon.trace_for); with them, a run whose
    training loss clearly trails the baseline's is stopped early (status `abandoned`).
    `evaluate=False` (throughput benchmarks on tokens no evaluator can load): a model handed over
    is not scored, and the run's status is `trained`. `expected_tokens_per_second`: the rate this
    same code reached before on this device (experiment.expected_rate); a wall-mode run far below
    it is `noisy` (detect/load.py judge)."""
    train_py = Path(train_py).resolve()
    _remove_stale_run_folders()
    code = code_of(train_py)  # hashed before launch: the code that runs is this code
    harness_before, environment_before = harness_digest(), environment_digest()
    limit = timeout if timeout is not None else time_limit(budget_seconds, budget_mode)
    with tempfile.TemporaryDirectory(prefix=f"arp-run-{os.getpid()}-") as tmp:
        scratch = Path(tmp)  # the only folder train.py may write; deleted with everything in it
        report_path = scratch / "report.json"
        handover = scratch / "handover"
        handover.mkdir()
        config = run_config(
            probe, plan, dataset, budget_seconds, budget_mode=budget_mode, flop_budget=flop_budget,
            result_path=str(report_path), handover_dir=str(handover), seed=seed, probe_steps=probe_steps,
            eval_rows=eval_rows, peak=mfu_peak.peak_for_run(probe, plan),
        )
        config_path = scratch / "config.json"
        atomic_write_json(config_path, config)
        # XDG_CACHE_HOME goes to scratch (confined, it is the only writable folder), so the child is
        # told where the harness's cache (the dataset) is rather than finding it from there
        env = dict(os.environ, ARP_RUN_CONFIG=str(config_path), PYTHONUNBUFFERED="1", **MALLOC_SETTINGS,
                   **confine.scratch_env(scratch), ARP_CACHE_DIR=str(cache_dir()))
        tail: collections.deque[str] = collections.deque(maxlen=60)
        log: collections.deque[str] = collections.deque(maxlen=40)  # stdout + stderr, for `arp show`
        # the runtime's progress reports and phase marks come back on a pipe of their own (abandon.py)
        progress_r, progress_w = os.pipe() if os.name == "posix" else (None, None)
        if progress_w is not None:
            env["ARP_PROGRESS_FD"] = str(progress_w)
        argv, status_r, status_w = _confined_argv(train_py, scratch, dataset)
        monitor = LoadMonitor(watch_gpu=plan["backend"] == "cuda").start()  # the run's tree is ours
        # the evaluator starts now, before train.py, and waits: its start-up is paid while the run trains
        evaluator = _Evaluator(plan, dataset) if evaluate and probe_steps is None else None
        reaper = confine.Reaper()  # from here on, whatever train.py starts is ours to end
        cpu_before = _reaped_cpu_seconds()
        t_launch = time.time()
        marks = Marks(launched=time.monotonic())
        child = subprocess.Popen(
            argv, cwd=train_py.parent, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
            start_new_session=True, preexec_fn=child_process.die_with_parent,
            pass_fds=tuple(fd for fd in (progress_w, status_w) if fd is not None),
        )
        for fd in (progress_w, status_w):
            if fd is not None:
                os.close(fd)

        def on_mark(name: str) -> None:  # the run's CPU-seconds as each phase ends (harness/run/phases.py)
            if name == "start":
                marks.cpu_start = reaper.cpu_seconds()
            elif name == "finish":
                marks.cpu_finish = reaper.cpu_seconds()

        # the parent decides and kills: nothing train.py does can make it stay or go (abandon.py)
        # in wall mode a slowed run trails the baseline for the load's sake: it ends noisy instead
        watcher = ab.Watcher(progress_r, ab.make_baseline(abandon) if abandon and probe_steps is None else None,
                             kill=lambda: child_process.signal_group(child, signal.SIGKILL),
                             hold=monitor.busy_so_far if budget_mode == "wall" else None, on_mark=on_mark).start()
        pumps = [threading.Thread(target=child_process.pump, args=(child.stdout, (log,), sys.stdout, quiet), daemon=True),
                 threading.Thread(target=child_process.pump, args=(child.stderr, (tail, log), sys.stderr, quiet), daemon=True)]
        for p in pumps:
            p.start()
        # work/matched mode: slow is fine, stuck is not (harness/run/limits.py)
        hung = None if budget_mode == "wall" or progress_r is None else (
            lambda: hang_reason(watcher.seen, time.monotonic(), budget_seconds))
        outcome, why = child_process.wait(child, limit, hung)
        marks.exited = time.monotonic()
        wall = time.time() - t_launch
        load = monitor.stop()
        child_process.kill_group(child)
        survivors = reaper.end()  # nothing train.py started outlives it (a daemon it left behind)
        marks.cpu_exit = _reaped_cpu_seconds() - cpu_before
        for p in pumps:
            p.join(timeout=5)
        watch = watcher.stop()
        marks.start, marks.done, marks.finish = (watch.marks.get(k) for k in ("start", "done", "finish"))
        marks.step_interval = watch.step_interval
        if watch.decision is not None and outcome == "exited":
            outcome = "abandoned"
        said = _read_json(report_path)
        report = ChildReport.from_json(said)  # train.py's own account: informative, never the score
        mfu_peak.forget_if_below(probe, plan, _rate(report))
        status, reason = _decide(outcome, child.returncode, report, "".join(tail), limit, budget_seconds, probe_steps)
        result = dict(report.metrics(), status=status, reason=why or reason, reported_by_train_py=sorted(said))
        result.update(code.to_dict(), wall_seconds=wall, exit_code=child.returncode, loss_trace=watch.trace,
                      abandon_watch=watch.to_dict(), log_tail="".join(log)[-4000:], phases=durations(marks),
                      confined=_read_status(status_r), processes_ended=survivors)
        if probe_steps is not None:  # `arp init`'s probe of the baseline: what each phase took here
            result["phase_baseline"] = measured_from(marks, float(report.training_seconds or 0.0), report.train_flops)
        if outcome == "abandoned":
            result.update(reason=ab.describe(watch.decision, budget_seconds),
                          abandon_saved_seconds=ab.saved_seconds(watch.decision, budget_seconds),
                          abandon_gap=watch.decision.gap, abandon_margin=watch.decision.margin,
                          abandon_progress=watch.decision.progress)
        if result["status"] == Status.HANDED_OVER and not evaluate:
            result["status"] = Status.TRAINED
        if result["status"] == Status.HANDED_OVER:
            usable = _dataset_problem(dataset)
            tampered = harness_digest() != harness_before
            score = None
            # the environment's digest (~1 s of stat calls) is taken while the evaluator scores: the
            # score stands only if the environment did not change during the run
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                digest = pool.submit(environment_digest)
                if not tampered and not usable:
                    counted = dict(num_params=report.num_params,
                                   matmul_flops_per_token=(report.flops_detail or {}).get("matmul_flops_per_token"))
                    rows = eval_rows or _default_eval_rows(dataset, report, budget_seconds)
                    score = _evaluate(evaluator, plan, dataset, handover, rows,
                                      (report.model_config or {}).get("device_batch_size"), quiet, counted)
                moved = changed_folders(environment_before, digest.result())
            if tampered:
                result.update(status=Status.INVALID, reason="the harness's own files changed during the run")
            elif moved:
                result.update(status=Status.INVALID, reason=f"the Python environment changed during the run ({', '.join(moved)})")
            elif usable:
                result.update(status=Status.CRASH, reason=usable)
            else:
                result.update(score.to_dict(), status=score.status, reason=score.reason)
        if evaluator is not None:
            evaluator.stop()  # not needed (no hand-over), or done
    if result["status"] == Status.HANDED_OVER:
        result["status"] = Status.CRASH
    if probe_steps is None and result["status"] in (Status.OK, Status.UNVERIFIED):
        _judge_phases(result, marks, phases, overhead_seconds, budget_seconds, budget_mode, flop_budget, plan, wall)
    if probe_steps is None:
        _judge_load(result, load, plan, budget_mode, expected_tokens_per_second)
    result["total_seconds"] = time.time() - t_launch
    # what the run is compared by (verdict.py) is the harness's to say, not train.py's report
    result.update(harness_version=HARNESS_VERSION, budget_seconds=budget_seconds, budget_mode=budget_mode,
                  backend=plan["backend"], dataset=dataset, seed=seed)
    return result


def _judge_phases(result: dict, marks: Marks, phases: dict | None, overhead_seconds: float | None, budget_seconds: float,
                  budget_mode: str, flop_budget: float | None, plan: dict, wall: float) -> None:
    """over_budget when a phase took longer than its limit (harness/run/phases.py): the parent's clock,
    whatever train.py's own clock said."""
    measured = Measured.from_dict(phases)
    lims = limits(measured, budget_seconds, budget_mode, flop_budget, plan.get("device") == "cpu") if measured else None
    why = judge_phases(marks, lims)
    if lims is not None:
        result["phase_limits"] = {lim.took: round(lim.limit, 2) for lim in lims}
    elif budget_mode == "wall":  # measured before phases were: the whole run against one allowance
        allowed = allowance(budget_seconds, overhead_seconds)
        result["allowance_seconds"] = allowed
        if why is None and wall > budget_seconds + allowed:
            why = (f"{wall:.1f}s from launch to hand-over, more than the budget {budget_seconds:g}s + allowance "
                   f"{allowed:.1f}s for start-up, warm-up and export: not comparable")
    if why:
        result.update(status=Status.OVER_BUDGET, reason=why)


def _confined_argv(train_py: Path, scratch: Path, dataset: str) -> tuple[list[str], int | None, int | None]:
    """The command that runs train.py confined (harness/run/confine.py), and the pipe on which the
    launcher says, before train.py's first line runs, what confinement applied. ARP_NO_CONFINE=1
    (benchmarks that measure what confinement costs) runs it unconfined, and the run says so."""
    if os.environ.get("ARP_NO_CONFINE") == "1" or os.name != "posix":
        return [sys.executable, str(train_py)], None, None
    policy = confine.policy_for_run(train_py, scratch, extra_read=[data_dir(dataset)])
    policy_path = scratch / "confine.json"
    atomic_write_json(policy_path, policy.to_dict())
    status_r, status_w = os.pipe()
    return confine.launch_argv(policy_path, status_w, [sys.executable, str(train_py)]), status_r, status_w


def _read_status(status_r: int | None) -> str:
    """What the launcher said it applied: `yes (...)` or `no (why)`."""
    if status_r is None:
        return "no (ARP_NO_CONFINE=1)" if os.environ.get("ARP_NO_CONFINE") == "1" else f"no (not supported on {sys.platform})"
    with os.fdopen(status_r, "rb") as f:
        line = f.readline(4096).decode("utf-8", "replace").strip()
    if not line:
        return "no (the launcher said nothing)"
    confined, detail = confine.parse_status(line)
    return f"{'yes' if confined else 'no'} ({detail})"


def _reaped_cpu_seconds() -> float:
    """CPU-seconds of this process's children that have ended and been waited for: train.py and
    everything it started (the reaper waits for what it ends)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _judge_load(result: dict, load, plan: dict, budget_mode: str, expected_tokens_per_second: float | None) -> None:
    """Was the run disturbed by other work on the machine? In wall mode the step count depends on
    it, so a disturbed ok run becomes `noisy` (not comparable); in the work modes the FLOP budget
    fixes the training whatever the load, so the figures are only recorded."""
    noisy, why, figures = judge_load(load, tokens_per_second=result.get("tokens_per_second"),
                                     first_steps_tokens_per_second=result.get("first_steps_tokens_per_second"),
                                     expected_tokens_per_second=expected_tokens_per_second,
                                     run_on_cpu=plan.get("device") == "cpu")
    result.update(load=load.to_dict(), load_figures=figures, load_noisy=noisy, load_summary=why)
    if not noisy:
        return
    if budget_mode == "wall" and result["status"] == Status.OK:
        result.update(status=Status.NOISY, reason=f"the machine was busy or slowed during the run ({why}): not comparable")
    elif result["status"] in (Status.OVER_BUDGET, Status.ABANDONED):
        result["reason"] += f"; the machine was busy or slowed ({why})"


def _decide(outcome: str, code: int | None, report: ChildReport, tail: str, limit: float, budget: float,
            probe_steps: int | None) -> tuple[Status, str | None]:
    """The status (and why) from what happened to the child and what it reported. The child's
    word is taken only for failures (it diverged, it failed its own in-process checks), for its
    hand-over and for unverified scores."""
    said = report.status
    if outcome == "timeout":
        return Status.TIMEOUT, f"still running after {limit:.0f}s (budget {budget:g}s); stopped"
    if outcome == "interrupted":
        return Status.INTERRUPTED, "interrupted by the user (Ctrl-C)"
    if outcome == "terminated":
        return Status.INTERRUPTED, "terminated by a signal (SIGTERM)"
    if outcome == "abandoned":  # the reason (gap, margin, time saved) is the watcher's
        return Status.ABANDONED, None
    if said == Status.DIVERGED:
        return Status.DIVERGED, report.reason
    if probe_steps is not None and said == Status.OK and code == 0:
        return Status.OK, report.reason
    if said in (Status.HANDED_OVER, Status.UNVERIFIED, Status.INVALID) and code == 0:
        return Status(said), report.reason
    if code == 0:
        return Status.CRASH, "train.py exited without handing over a model (rt.finish(model))"
    if OOM_PATTERN.search(tail):
        return Status.OOM, "out of memory: " + _last_line(tail)
    return Status.CRASH, f"exit code {code}: " + _last_line(tail)


class _Evaluator:
    """The evaluator process (harness/score/evaluator.py), started with `--wait` beside train.py:
    it imports its backend and opens the dataset while the run trains, then scores the job it is
    handed. Isolated as every evaluation is (`python -I`: no user site, no PYTHON* variables, no
    LD_PRELOAD), and started in / where nothing train.py left lying around can be imported; the job
    and its result live in a folder made after train.py's processes have ended."""

    def __init__(self, plan: dict, dataset: str):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LD_PRELOAD", "DYLD_"))}
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "autoresearch_portable.harness.score.evaluator", "--wait",
             json.dumps(dict(plan=plan, dataset=dataset))],
            cwd="/", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
            env=dict(env, **MALLOC_SETTINGS), start_new_session=True, preexec_fn=_lowest_priority)

    def score(self, job_path: Path, timeout: float) -> str:
        """Hand it the job; wait for it to end. Returns its stderr. Raises TimeoutExpired."""
        try:
            _, err = self.proc.communicate(f"{job_path}\n", timeout=timeout)
        except BrokenPipeError:  # it died before the job came: what it said is in its stderr
            _, err = self.proc.communicate(timeout=timeout)
        return err or ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            child_process.signal_group(self.proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
            self.proc.communicate(timeout=10)


def _lowest_priority() -> None:
    """The evaluator's process, before exec: it dies with the parent, and it runs at the lowest
    priority, so that its warm-up takes only CPU that train.py's start-up (or, on a cluster node,
    another slot's training) leaves idle."""
    child_process.die_with_parent()
    with contextlib.suppress(OSError):
        os.nice(19)


def _evaluate(evaluator: _Evaluator | None, plan: dict, dataset: str, handover: Path, eval_rows: int, batch_rows,
              quiet: bool, counted: dict | None = None) -> Score:
    """Score the hand-over in the evaluator's process (started at launch; here, if it was not),
    from a job folder made now. `counted`: what rt.start counted (parameters, matmul FLOPs per
    token); the evaluator checks the handed-over graph against it."""
    evaluator = evaluator or _Evaluator(plan, dataset)
    with tempfile.TemporaryDirectory(prefix="arp-eval-") as tmp:
        job_path, out = Path(tmp) / "job.json", Path(tmp) / "result.json"
        atomic_write_json(job_path, dict(plan=plan, dataset=dataset, handover=str(handover), eval_rows=int(eval_rows),
                                         batch_rows=batch_rows, result_path=str(out), counted=counted))
        try:
            stderr = evaluator.score(job_path, timeout=max(300.0, 20.0 * eval_rows))
        except subprocess.TimeoutExpired:
            evaluator.stop()
            return Score(status=Status.CRASH, reason="the evaluator did not finish in time")
        res = _read_json(out)
    if not res:
        return Score(status=Status.CRASH, reason="the evaluator failed: " + _last_line(stderr))
    if res.get("status") == "eval_error":
        if not quiet:
            sys.stderr.write(stderr[-3000:])
        return Score(status=Status.INVALID, reason=f"the exported model could not be evaluated ({res.get('reason')})")
    score = Score.from_json(res)
    score.status = Status(score.status)
    return score


def _dataset_problem(dataset: str) -> str | None:
    """Checked again right before evaluation: a cache deleted or damaged during the run is one
    clear line, not a traceback from the evaluator."""
    from autoresearch_portable import data

    try:
        data.check_usable(dataset)
    except data.DataError as e:
        return str(e)
    return None


def _default_eval_rows(dataset: str, report: ChildReport, budget_seconds: float) -> int:
    """Without a workspace setting, size the evaluation from the run's own speed (as reported)."""
    from autoresearch_portable import data

    return size_eval_rows(budget_seconds, float(report.tokens_per_second or 0), data.load(dataset).seq_len)


def _remove_stale_run_folders() -> None:
    """Temporary folders of runs whose `arp train` was killed (kill -9 leaves them behind)."""
    for folder in Path(tempfile.gettempdir()).glob("arp-run-*-*"):
        try:
            pid = int(folder.name.split("-")[2])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, IndexError, PermissionError, OSError):
            continue


def _rate(report: ChildReport) -> float | None:
    """FLOP/s over the timed steps, as train.py reported them (only ever used to re-measure a peak)."""
    try:
        return float(report.train_flops) / float(report.training_seconds)
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(Path(path).read_text())
        return obj if isinstance(obj, dict) else {}
    except (OSError, ValueError):
        return {}


def _last_line(text: str) -> str:
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return lines[-1][:300] if lines else "no output"


@contextlib.contextmanager
def exclusive_run(folder: Path):
    """One `arp train` at a time per workspace: two runs would share the cores and both measure
    noise. The lock is held by the open file, so a killed run never leaves it stuck."""
    with pid_lock(Path(folder) / ".train.lock") as holder:
        if holder is not None:
            raise UserError(f"another arp train is running in this workspace (pid {holder}); wait for it "
                            f"to finish: two runs at once slow each other down and both results would be noise")
        yield
