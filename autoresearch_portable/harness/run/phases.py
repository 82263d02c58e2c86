"""The parent's clock, phase by phase, and the resource cap of the work modes. Pure functions: the
runner (harness/run/launch.py) collects the marks, nothing here waits or reads a process.

A run has three phases, each observed by the parent from when the runtime's messages arrive on the
progress pipe (harness/run/abandon.py's Watcher timestamps them), never from what train.py reports:

    launch --start-up--> `event start` (rt.start) --training--> `event finish` (rt.finish) --hand-over--> exit

and one mark inside training: `done`, the first step report at 100 % of the budget (rt.done turned
true). Each phase gets its own limit, made from what `arp init` measured for the workspace's
baseline on this machine, so no phase's allowance can be spent on another's work:

* start-up: launch to rt.start (imports, data, model, FLOP count);
* training, wall mode: rt.start to rt.finish may exceed the budget only by the baseline's warm-up
  (steps the clock leaves out: compile, first steps) and a small slack;
* overrun, every mode: from the first report at 100 % to rt.finish there is nothing left to do but
  call rt.finish; a run that goes on (training without reporting, or reporting the same 100 %) is
  training past the clock;
* hand-over: rt.finish to exit (export and its self-check).

Work and matched mode fix FLOPs, not seconds, so the training phase is capped by resources instead:
CPU-seconds on CPU backends (CPU time, not wall time, so a busy machine does not count against the
run), wall time on accelerators, against what the baseline needs for the same FLOPs (RESOURCE_SLACK).
FLOPs are counted inside train.py's process; this cap is what keeps uncounted work (a private data
loader, a clock that under-counts) from being free."""

from __future__ import annotations

from dataclasses import asdict, dataclass

RESOURCE_SLACK = 2.0   # work modes: a run may use up to 2x the baseline's resources for its FLOPs
OVERRUN_SLACK = 1.0    # seconds after the last step at 100 % (or 2 step intervals, if longer)


@dataclass
class Marks:
    """Monotonic seconds at which the parent saw each point of a run (None: never seen), and the
    run's CPU-seconds (train.py's process and everything it started) at start, finish and exit."""
    launched: float
    start: float | None = None
    done: float | None = None
    finish: float | None = None
    exited: float | None = None
    cpu_start: float | None = None
    cpu_finish: float | None = None
    cpu_exit: float | None = None
    step_interval: float | None = None   # median seconds between step reports


@dataclass
class Measured:
    """The workspace baseline's phases as the parent saw them at `arp init` (this machine)."""
    startup_seconds: float
    warmup_seconds: float
    handover_seconds: float
    startup_cpu_seconds: float | None = None
    handover_cpu_seconds: float | None = None
    cpu_per_second: float | None = None      # CPU-seconds per second of training (threads busy)
    flops_per_second: float | None = None    # the baseline's training throughput

    @classmethod
    def from_dict(cls, d: dict | None) -> "Measured | None":
        if not d:
            return None
        try:
            return cls(**{k: (None if d.get(k) is None else float(d[k])) for k in cls.__dataclass_fields__})
        except (TypeError, ValueError):
            return None


def durations(m: Marks) -> dict:
    """Seconds (and CPU-seconds) of each phase; None where a mark is missing."""
    def gap(a, b):
        return None if a is None or b is None else max(0.0, b - a)

    return dict(startup_seconds=gap(m.launched, m.start), training_wall_seconds=gap(m.start, m.finish),
                overrun_seconds=gap(m.done, m.finish), handover_seconds=gap(m.finish, m.exited),
                startup_cpu_seconds=m.cpu_start, training_cpu_seconds=gap(m.cpu_start, m.cpu_finish),
                handover_cpu_seconds=gap(m.cpu_finish, m.cpu_exit))


def measured_from(m: Marks, training_seconds: float, train_flops: float | None) -> dict:
    """What `arp init` keeps of its baseline probe run: its phases as the parent saw them, the
    warm-up being the training phase's wall time minus the timed steps."""
    d = durations(m)
    wall = d["training_wall_seconds"]
    if d["startup_seconds"] is None or wall is None or d["handover_seconds"] is None:
        return {}
    cpu = d["training_cpu_seconds"]
    return asdict(Measured(
        startup_seconds=round(d["startup_seconds"], 3),
        warmup_seconds=round(max(0.0, wall - training_seconds), 3),
        handover_seconds=round(d["handover_seconds"], 3),
        startup_cpu_seconds=d["startup_cpu_seconds"],
        handover_cpu_seconds=d["handover_cpu_seconds"],
        cpu_per_second=None if cpu is None or wall <= 0 else round(cpu / wall, 3),
        flops_per_second=None if not train_flops or wall <= 0 else train_flops / wall,
    ))


@dataclass
class Limit:
    phase: str
    took: str       # the key of durations() it limits
    limit: float
    unit: str       # "s" or " CPU-s"
    why: str


def limits(measured: Measured, budget_seconds: float, mode: str, flop_budget: float | None, on_cpu: bool) -> list[Limit]:
    """Each phase's limit: the baseline's with room for a slower start (1.5x + 5 s) and a share of
    the budget (2 %, so that long budgets tolerate more jitter). On CPU backends start-up and
    hand-over are limited in CPU-seconds in every mode: work done there (training before rt.start or
    after rt.finish) costs CPU whatever the clock says, while waiting for a core does not (on one
    core the evaluator's own start-up shares it, and halves the wall-clock pace). The count covers
    the run's process tree (confine.Reaper): on Linux every descendant, zombies included; on macOS a
    double-forked daemon escapes it, as it escapes the reaper. On accelerators
    they are limited in wall time. Training is limited in wall time in wall mode (the budget is
    wall time), in CPU-seconds on CPU backends in the work modes."""
    slack = 5.0 + 0.02 * budget_seconds
    base = "the workspace baseline's at arp init, with slack"
    if on_cpu:
        rate = measured.cpu_per_second or 1.0
        out = [Limit("start-up (launch to rt.start)", "startup_cpu_seconds",
                     1.5 * (measured.startup_cpu_seconds or measured.startup_seconds) + slack * rate, " CPU-s", base),
               Limit("hand-over (rt.finish to exit)", "handover_cpu_seconds",
                     1.5 * (measured.handover_cpu_seconds or measured.handover_seconds) + slack * rate, " CPU-s", base)]
    else:
        out = [Limit("start-up (launch to rt.start)", "startup_seconds", 1.5 * measured.startup_seconds + slack, "s", base),
               Limit("hand-over (rt.finish to exit)", "handover_seconds", 1.5 * measured.handover_seconds + slack, "s", base)]
    if mode == "wall":
        out.append(Limit("training (rt.start to rt.finish)", "training_wall_seconds",
                         budget_seconds + 2.0 * measured.warmup_seconds + slack, "s",
                         "the budget + the baseline's warm-up, with slack"))
    elif flop_budget and measured.flops_per_second:
        seconds = RESOURCE_SLACK * flop_budget / measured.flops_per_second + 2.0 * measured.warmup_seconds + slack
        why = f"{RESOURCE_SLACK:g}x what the baseline needs for this FLOP budget"
        if not on_cpu:
            out.append(Limit("training (rt.start to rt.finish)", "training_wall_seconds", seconds, "s", why))
        elif measured.cpu_per_second:
            out.append(Limit("training", "training_cpu_seconds", seconds * measured.cpu_per_second, " CPU-s", why))
    return out


def judge(m: Marks, lims: list[Limit] | None) -> str | None:
    """Why the run is over budget by its phases, or None. `lims` None (a workspace measured before
    phases were): only the overrun after 100 % is judged, which needs no measurement."""
    d = durations(m)
    overrun_limit = max(OVERRUN_SLACK, 2.0 * (m.step_interval or 0.0))
    if d["overrun_seconds"] is not None and d["overrun_seconds"] > overrun_limit:
        return (f"went on {d['overrun_seconds']:.1f}s after its budget was used up (rt.done) before handing "
                f"over (limit {overrun_limit:.1f}s): training past the clock")
    for lim in lims or []:
        took = d[lim.took]
        if took is not None and took > lim.limit:
            return f"{lim.phase} took {took:.1f}{lim.unit}, more than its limit {lim.limit:.1f}{lim.unit} ({lim.why}): not comparable"
    return None
