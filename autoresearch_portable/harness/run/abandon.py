"""Early abandonment: stop a run whose training loss clearly trails the calibrated baseline's.

How it is measured. train.py's process reports `progress loss` after every optimizer step through
the runtime the harness owns (`rt.step`, harness/run/runtime.py), on a pipe of its own (not stdout, so
nothing train.py prints is read as a report). The parent (harness/run/launch.py) reads the pipe in a
`Watcher` thread, bins the reports by progress (share of the budget), and asks the pure `decide`
below after every completed bin; when it says so, the parent kills the child's process group. The
child has no say in the decision and cannot delay it.

Why a train.py cannot gain by lying: abandonment only ever takes a result away (an abandoned run
is never ok, never scored, never a best); the score still comes only from the separate evaluator
of a run that went the whole budget. A train.py that reports a loss higher than its true one gets
itself abandoned; one that reports lower (or nothing) is simply not abandoned and is scored like
any other run. Lying can make a run look worse or escape abandonment, never score better.

The baseline trace comes from `arp calibrate`: every run of the baseline at the budget T records its
binned loss trace; the profile keeps them all (`loss_trace.runs`). A run is compared with their
mean, smoothed over a window of bins, and the margin is `k` times their spread (the across-seed
standard deviation of the smoothed loss, pooled over the part of the run where decisions are made,
never below the spread at the point itself) plus a floor (a share of the baseline's loss). The run
must trail by more than the margin at `patience` consecutive bins after `min_progress` of the
budget, and not after `max_progress` (too little left to save)."""

from __future__ import annotations

import math
import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from autoresearch_portable.harness.run.limits import Progress, advanced

BINS = 50  # progress bins of a trace: 2 % of the budget each


@dataclass
class Rule:
    min_progress: float = 0.3    # no decision before this share of the budget
    max_progress: float = 0.9    # nor after it (too little left to save)
    window: int = 5              # bins averaged into the smoothed loss (5 x 2 % = 10 % of the budget)
    k: float = 4.0               # margin: k x the baseline's spread ...
    floor: float = 0.03          # ... plus this share of the baseline's loss
    patience: int = 3            # consecutive trailing bins needed


@dataclass
class Baseline:
    """The calibrated baseline's smoothed loss at each bin (mean over its runs) and the spread
    used for the margin there. None where the baseline has too little data."""
    mean: list[float | None]
    spread: list[float | None]
    runs: int
    window: int


@dataclass
class Decision:
    abandon: bool
    progress: float              # right edge of the bin the decision was made at
    run_loss: float              # the run's smoothed training loss there
    baseline_loss: float
    gap: float                   # run_loss - baseline_loss (positive: the run trails)
    margin: float                # k x spread + floor x baseline_loss
    spread: float
    trailing_bins: int           # consecutive bins, up to here, where gap > margin

    @property
    def ratio(self) -> float:
        return self.gap / self.margin if self.margin > 0 else math.inf

    def to_dict(self) -> dict:
        return dict(asdict(self), ratio=self.ratio)


def _window_mean(trace: list, end: int, window: int, least: float = 0.5) -> float | None:
    """Mean of the bins end-window+1 .. end, if at least `least` of them have data."""
    vals = [v for v in trace[max(0, end - window + 1):end + 1] if v is not None]
    return sum(vals) / len(vals) if vals and len(vals) >= least * window else None


def make_baseline(traces: list[list[float | None]], rule: Rule = Rule()) -> Baseline | None:
    """The baseline from the calibration runs' binned traces (at least 2 runs of BINS bins)."""
    traces = [t for t in traces if isinstance(t, list) and len(t) == BINS]
    if len(traces) < 2:
        return None
    mean: list[float | None] = []
    local: list[float | None] = []
    for b in range(BINS):
        vals = [v for t in traces if (v := _window_mean(t, b, rule.window)) is not None]
        if len(vals) < 2:
            mean.append(None)
            local.append(None)
        else:
            mean.append(statistics.fmean(vals))
            local.append(statistics.stdev(vals))
    # three runs give a poor spread at any one point: pool it over where decisions are made
    first = int(rule.min_progress * BINS) - 1
    pooled = [s for s in local[first:] if s is not None]
    typical = statistics.median(pooled) if pooled else None
    spread = [None if s is None else max(s, typical or 0.0) for s in local]
    if all(m is None for m in mean[first:]):
        return None
    return Baseline(mean=mean, spread=spread, runs=len(traces), window=rule.window)


def decide(run_bins: list[float | None], complete: int, baseline: Baseline, rule: Rule = Rule()) -> Decision | None:
    """Pure: whether to abandon a run whose first `complete` bins are complete (`run_bins` its
    binned losses). None while there is nothing to decide yet (before min_progress, after
    max_progress, or no data at this point)."""
    last = complete - 1
    if last < 0 or (last + 1) / BINS < rule.min_progress - 1e-9 or (last + 1) / BINS > rule.max_progress + 1e-9:
        return None
    trailing = 0
    found = None
    first = max(0, int(round(rule.min_progress * BINS)) - 1)
    for b in range(first, last + 1):
        # a run slower than a bin per step leaves gaps: those bins neither count nor reset
        run = _window_mean(run_bins, b, rule.window, least=0.0)
        base, spread = baseline.mean[b], baseline.spread[b]
        if run is None or base is None or spread is None:
            continue
        margin = rule.k * spread + rule.floor * abs(base)
        gap = run - base
        trailing = trailing + 1 if gap > margin else 0
        found = Decision(abandon=trailing >= rule.patience, progress=(b + 1) / BINS, run_loss=run,
                         baseline_loss=base, gap=gap, margin=margin, spread=spread, trailing_bins=trailing)
    return found


def describe(d: Decision, budget_seconds: float) -> str:
    """The reason line of an abandoned run: the gap, the margin, where, and the time saved."""
    return (f"training loss {d.run_loss:.4f} trailed the calibrated baseline's {d.baseline_loss:.4f} by "
            f"{d.gap:.4f} (margin {d.margin:.4f}) at {100 * d.progress:.0f}% of the budget; stopped, "
            f"~{saved_seconds(d, budget_seconds):.0f}s of training saved (and the evaluation)")


def saved_seconds(d: Decision, budget_seconds: float) -> float:
    return max(0.0, (1.0 - d.progress) * budget_seconds)


def profile_trace(points: list[dict]) -> dict | None:
    """What the calibration profile keeps: every run's binned trace at T."""
    runs = [p["loss_trace"] for p in points if isinstance(p.get("loss_trace"), list) and len(p["loss_trace"]) == BINS]
    return dict(bins=BINS, runs=runs) if len(runs) >= 2 else None


# the sizes that shape the loss curve (the device batch does not: accumulation makes up the rest)
CURVE_SIZE_KEYS = ("DEPTH", "MODEL_DIM", "TOTAL_BATCH_SIZE")


def trace_for(profile: dict | None, budget_seconds: float, budget_mode: str,
              workspace_sizes: dict | None) -> tuple[list | None, str]:
    """The baseline traces to watch a run with, or None and why not. Pure. The trace is a
    function of progress at the calibrated budget T, so it applies to runs at T in wall or work
    mode, in a workspace whose baseline is the calibrated one."""
    if profile is None:
        return None, "no calibration of this device (`arp calibrate` records the baseline's loss trace)"
    trace = profile.get("loss_trace") or {}
    if trace.get("bins") != BINS or len(trace.get("runs") or []) < 2:
        return None, "the calibration has no loss trace (from an older version): `arp calibrate --force` records one"
    if budget_mode not in ("wall", "work"):
        return None, f"no trace for --budget-mode {budget_mode}"
    if abs(float(profile.get("budget_seconds", -1)) - float(budget_seconds)) > 1e-6:
        return None, (f"the baseline was calibrated at {float(profile['budget_seconds']):g}s, this run's budget is "
                      f"{budget_seconds:g}s")
    base = profile.get("baseline_sizes") or {}
    if workspace_sizes and any(k in base and workspace_sizes.get(k) not in (None, base[k]) for k in CURVE_SIZE_KEYS):
        return None, "this workspace's baseline is not the calibrated one (other sizes)"
    return trace["runs"], f"on (baseline trace of {len(trace['runs'])} calibration runs at {budget_seconds:g}s)"


@dataclass
class Watch:
    """What the watcher saw: the run's binned trace, and the decision if it abandoned the run."""
    trace: list[float | None]
    decision: Decision | None = None
    worst: Decision | None = None          # the closest the run came (highest gap / margin)
    active: bool = False
    reports: int = 0
    held: str | None = None                # why a decision to abandon was not carried out
    marks: dict = field(default_factory=dict)      # phase marks (Watcher.marks)
    step_interval: float | None = None             # median seconds between step reports

    def to_dict(self) -> dict:
        return dict(active=self.active, reports=self.reports, held=self.held,
                    worst=self.worst.to_dict() if self.worst else None,
                    decision=self.decision.to_dict() if self.decision else None)


@dataclass
class Watcher:
    """Reads the child's progress reports (`progress loss` lines) from `fd` in a thread; with a
    baseline, calls `kill` once when `decide` says abandon, unless `hold` gives a reason not to:
    in wall mode a run on a busy machine trails because it was slowed, not because its code is
    worse, so it goes on and ends `noisy` instead. Every report is also recorded in `seen`, which
    the hang guard reads (harness/run/limits.py). Used by the parent only."""
    fd: int | None
    baseline: Baseline | None
    kill: Callable[[], None]
    rule: Rule = field(default_factory=Rule)
    hold: Callable[[], str | None] | None = None
    on_mark: Callable[[str], None] | None = None   # called as each phase mark arrives (harness/run/phases.py)
    seen: Progress = field(default_factory=lambda: Progress(launched=time.monotonic()))
    _sums: list = field(default_factory=lambda: [0.0] * BINS)
    _counts: list = field(default_factory=lambda: [0] * BINS)
    _complete: int = 0
    _reports: int = 0
    _decision: Decision | None = None
    _worst: Decision | None = None
    _held: str | None = None
    _thread: threading.Thread | None = None
    marks: dict = field(default_factory=dict)     # "start", "done", "finish": monotonic time first seen
    _last_report: float | None = None
    _intervals: list = field(default_factory=list)

    def start(self) -> "Watcher":
        if self.fd is not None:
            self._thread = threading.Thread(target=self._read, name="arp-abandon-watch", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> Watch:
        if self._thread is not None:
            self._thread.join(timeout)
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
        trace = [s / c if c else None for s, c in zip(self._sums, self._counts)]
        steps = sorted(self._intervals)
        return Watch(trace=trace, decision=self._decision, worst=self._worst, active=self.baseline is not None,
                     reports=self._reports, held=self._held, marks=dict(self.marks),
                     step_interval=steps[len(steps) // 2] if steps else None)

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            buf = buf[-256:]  # a line longer than any report is garbage
            for line in lines:
                self._report(line)

    def _mark(self, name: str, now: float) -> None:
        """The first time each phase mark is seen counts (a later copy, forged or not, changes nothing)."""
        if name not in self.marks:
            self.marks[name] = now
            if self.on_mark is not None:
                self.on_mark(name)

    def _report(self, line: bytes) -> None:
        now = time.monotonic()
        if line.startswith(b"event "):
            name = line[6:].strip().decode("ascii", "replace")
            if name in ("start", "finish"):
                self._mark(name, now)
            return
        try:
            p_text, loss_text = line.split()
            p, loss = float(p_text), float(loss_text)
        except ValueError:
            return
        if not (math.isfinite(p) and math.isfinite(loss)) or not 0.0 <= p <= 1.0:
            return
        self._reports += 1
        advanced(self.seen, p, now)
        if self._last_report is not None and len(self._intervals) < 100_000:
            self._intervals.append(now - self._last_report)
        self._last_report = now
        if p >= 1.0:
            self._mark("done", now)
        i = min(BINS - 1, int(p * BINS))
        self._sums[i] += loss
        self._counts[i] += 1
        complete = min(BINS, int(p * BINS))  # bins strictly before the one p falls into
        if complete <= self._complete:
            return
        self._complete = complete
        if self.baseline is None or self._decision is not None:
            return
        trace = [s / c if c else None for s, c in zip(self._sums, self._counts)]
        d = decide(trace, complete, self.baseline, self.rule)
        if d is None:
            return
        if self._worst is None or d.ratio > self._worst.ratio:
            self._worst = d
        if d.abandon:
            held = self.hold() if self.hold is not None else None
            if held:
                if self._held is None:  # the first time it would have
                    self._held = f"would have abandoned at {100 * d.progress:.0f}% of the budget, but {held}"
                return
            self._decision = d
            self.kill()
