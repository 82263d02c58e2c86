"""The budget clock and eval sizing: pure logic, no device, so every rule is testable.

Warm-up is excluded by what it is, not by a step count: the first step (compile, allocator and
thread-pool start-up) is always warm-up, and so is every following step that ran clearly faster
than the one before it (timings still settling). The first step whose time did not drop by more
than `settle_ratio` starts the timed part. At most `max_warmup_steps` steps are excluded. Warm-up
steps still train the model, so their tokens and FLOPs count towards the totals (and towards the
FLOP budget in the work modes); only their seconds are left out of the wall budget."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from autoresearch_portable.errors import UserError

BUDGET_MODES = ("wall", "work", "matched")
# The longest budget a command accepts: a week. Anything longer is a typo (1e9 s is 31 years),
# and inf or nan would leave a run with no time limit or crash the eval sizing.
MAX_BUDGET_SECONDS = 7 * 24 * 3600


def check_budget(seconds: float, flag: str = "--budget") -> float:
    """`seconds` if it is a usable budget (finite, > 0, at most a week), else UserError (one
    line, exit 2). For every command-line option that is a duration in seconds."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_BUDGET_SECONDS):
        raise UserError(f"{flag} must be a number of seconds above 0 and at most {MAX_BUDGET_SECONDS} "
                        f"(a week); got {seconds}")
    return value


@dataclass(frozen=True)
class Budget:
    """What a run may spend: `seconds` of training in wall mode; in work and matched mode the
    FLOPs a baseline does in that many seconds (`flops`, known once the device's profile is:
    harness/experiment.py). Built through `checked`, the one place a budget is validated."""
    seconds: float
    mode: str = "wall"
    flops: float | None = None

    @classmethod
    def checked(cls, seconds: float, mode: str = "wall") -> "Budget":
        if mode not in BUDGET_MODES:
            raise UserError(f"unknown --budget-mode {mode!r} (choose {', '.join(BUDGET_MODES)})")
        return cls(check_budget(seconds), mode)


@dataclass
class BudgetClock:
    budget_seconds: float
    mode: str = "wall"
    flop_budget: float | None = None      # work and matched modes: stop when the FLOPs reach it
    settle_ratio: float = 1.3
    max_warmup_steps: int = 10
    steps: int = 0
    warmup_steps: int = 0
    warmup_seconds: float = 0.0
    training_seconds: float = 0.0          # timed (post warm-up) seconds
    timed_tokens: int = 0
    timed_flops: float = 0.0
    total_tokens: int = 0
    total_flops: float = 0.0
    in_warmup: bool = True
    first_timed_steps: int = 5             # the run's own reference speed: its first timed steps
    first_tokens: int = 0
    first_seconds: float = 0.0
    _last_step_seconds: float | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.mode not in BUDGET_MODES:
            raise ValueError(f"unknown budget mode {self.mode!r}")
        if self.mode != "wall" and not self.flop_budget:
            raise ValueError(f"budget mode {self.mode!r} needs a FLOP budget")

    def step(self, seconds: float, tokens: int, flops: float) -> None:
        self.steps += 1
        self.total_tokens += tokens
        self.total_flops += flops
        if self.in_warmup:
            prev = self._last_step_seconds
            settled = prev is not None and seconds * self.settle_ratio >= prev
            if not settled and self.warmup_steps < self.max_warmup_steps:
                self.warmup_steps += 1
                self.warmup_seconds += seconds
                self._last_step_seconds = seconds
                return
            self.in_warmup = False
        self.training_seconds += seconds
        self.timed_tokens += tokens
        self.timed_flops += flops
        if self.steps - self.warmup_steps <= self.first_timed_steps:
            self.first_tokens += tokens
            self.first_seconds += seconds

    @property
    def progress(self) -> float:
        """Fraction of the budget used: time in wall mode, FLOPs in the work modes."""
        if self.mode == "wall":
            return min(1.0, self.training_seconds / self.budget_seconds)
        return min(1.0, self.total_flops / self.flop_budget)

    @property
    def done(self) -> bool:
        return self.progress >= 1.0

    @property
    def tokens_per_second(self) -> float:
        return self.timed_tokens / self.training_seconds if self.training_seconds > 0 else 0.0

    @property
    def first_tokens_per_second(self) -> float | None:
        """Speed of the first timed steps: what the rest of the run should keep up on a machine
        whose load did not change (a drop later is load or throttling, not the code)."""
        return self.first_tokens / self.first_seconds if self.first_seconds > 0 else None

    @property
    def flops_per_second(self) -> float:
        return self.timed_flops / self.training_seconds if self.training_seconds > 0 else 0.0


MAX_EVAL_ROWS = 4096


def eval_rows(
    budget_seconds: float,
    train_tokens_per_second: float,
    seq_len: int,
    max_rows: int = MAX_EVAL_ROWS,
    fraction: float = 0.1,
    min_rows: int = 4,
    forward_tokens_per_second: float | None = None,
) -> int:
    """How many rows to score so the evaluation costs at most ~`fraction` of the budget. Every
    scored row goes through three forward passes (its own, its perturbed copy's for the causality
    check, and once more among other rows for the batch check: harness/score/passes.py score), at
    the forward rate `arp init` measured (runtime._forward_rate); a row has cost 2.25 passes'
    time on a 2-core CPU (the copies are cut short), the rest is margin. Without a measured rate,
    a forward pass is taken to cost a third of a training step (no backward), with half as
    margin: on that CPU the estimate used 1.0-1.9 s of a 30 s budget's 3 (benchmarks/README.md,
    "Scored rows")."""
    if forward_tokens_per_second:
        eval_tokens_per_second = forward_tokens_per_second / 3
    else:
        eval_tokens_per_second = 3.0 * train_tokens_per_second * 0.5 / 3
    rows = int(fraction * budget_seconds * eval_tokens_per_second // seq_len)
    return max(min(min_rows, max_rows), min(rows, max_rows))
