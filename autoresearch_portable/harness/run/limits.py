"""When the parent stops a run for taking too long, and how much time past its budget a wall-mode
run may take. Pure functions: the runner (harness/run/launch.py) asks them, nothing here waits.

Wall mode fixes the seconds, so a run that goes far past them is stopped by the clock. Work and
matched mode fix the FLOPs, not the seconds: a machine busy with other work slows the run (a busy
loop on every core of a 2-core CPU was measured to slow torch 3-20x), and the run must still be
able to finish the same work. There the clock alone cannot tell a slow run from a hung one, so
the guard watches progress: the training steps the runtime reports to the parent (the same pipe
early abandonment reads, harness/run/abandon.py). A run that stops making progress is hung; a run
that keeps making progress is only slow, up to a far backstop."""

from __future__ import annotations

from dataclasses import dataclass

WORK_BACKSTOP = 30  # x the budget: even a progressing work-mode run is stopped past this


def time_limit(budget_seconds: float, budget_mode: str = "wall") -> float:
    """When a run is stopped as 'timeout' whatever it reports. Wall mode: past twice its budget,
    with at least a minute for start-up and evaluation on top (tiny budgets would otherwise be all
    start-up). Work and matched modes: the backstop, WORK_BACKSTOP x the budget; before it, the
    stall guard (`stall_seconds`) stops a run that stopped making progress."""
    factor = 2 if budget_mode == "wall" else WORK_BACKSTOP
    return max(factor * budget_seconds, budget_seconds + 60)


def stall_seconds(budget_seconds: float) -> float:
    """Work and matched mode: how long a run may go without training progress (from launch to its
    first step, between steps, from its last step to its exit with the model exported) before it
    is taken for hung. Half the budget, at least two minutes: start-up and export on a busy machine
    fit, a hang is found well before the backstop."""
    return max(120.0, 0.5 * budget_seconds)


@dataclass
class Progress:
    """What the parent has seen of a run's training steps (monotonic clock seconds)."""
    launched: float
    last_advance: float | None = None   # when a report last moved the run forward
    progress: float = 0.0               # the furthest progress reported (share of the budget)


def advanced(seen: Progress, progress: float, now: float) -> bool:
    """Record one step report; True if it counts as progress. A step in warm-up (progress still 0)
    counts, and so does any report that moves progress forward; repeating the same progress (a
    train.py stepping on after its budget ran out) does not."""
    if progress > seen.progress or progress == 0.0 == seen.progress:
        seen.progress = max(seen.progress, progress)
        seen.last_advance = now
        return True
    return False


def hang_reason(seen: Progress, now: float, budget_seconds: float) -> str | None:
    """Pure: why a work/matched-mode run counts as hung at `now`, or None while it does not."""
    since = seen.last_advance if seen.last_advance is not None else seen.launched
    quiet = now - since
    limit = stall_seconds(budget_seconds)
    if quiet <= limit:
        return None
    if seen.last_advance is None:
        return f"no training step within {quiet:.0f}s of launch (stall limit {limit:.0f}s, budget {budget_seconds:g}s); stopped"
    if seen.progress >= 1.0:
        return (f"still running {quiet:.0f}s after its last training step, at the end of the budget "
                f"(stall limit {limit:.0f}s); stopped")
    return (f"no training progress for {quiet:.0f}s at {100 * seen.progress:.0f}% of the budget "
            f"(stall limit {limit:.0f}s, budget {budget_seconds:g}s); stopped")


def allowance(budget_seconds: float, overhead_seconds: float | None) -> float:
    """Seconds a wall-mode run may take beyond its budget from launch to hand-over (start-up,
    warm-up steps, export). From the overhead measured for the workspace's baseline at `arp init`,
    with room for a slower start; without a measurement a default that is generous at short budgets."""
    if overhead_seconds is None:
        return 30.0 + 0.2 * budget_seconds
    return 2.0 * overhead_seconds + 10.0 + 0.05 * budget_seconds
