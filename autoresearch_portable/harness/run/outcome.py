"""The records of one run where trust changes hands: what train.py's process reported (a
ChildReport: informative, never the score), what the separate evaluator scored (a Score), and the
code the parent hashed before launch (a Code). The parent's own judgement is the Status it
settles on. Each type has exactly the fields its side may set: a key train.py writes that is not
a field of ChildReport does not reach the result, whatever it is called."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any


class Status(str, Enum):
    """How a run ended. A str, so it compares with, prints and serializes as its value."""

    OK = "ok"                    # scored by the evaluator, within the budget
    UNVERIFIED = "unverified"    # scored inside train.py's process (not exported, or run directly)
    INVALID = "invalid"          # the score cannot be real, or the harness or environment changed
    OVER_BUDGET = "over_budget"  # a phase ran past its limit on the parent's clock
    NOISY = "noisy"              # wall mode on a busy machine: not comparable
    ABANDONED = "abandoned"      # stopped early: its loss trailed the calibrated baseline's
    DIVERGED = "diverged"
    CRASH = "crash"
    OOM = "oom"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    TRAINED = "trained"          # handed over, not scored (throughput benchmarks)
    HANDED_OVER = "handed_over"  # in flight: the model waits for the evaluator

    def __str__(self) -> str:
        return self.value


def _known(cls, d: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass
class Score:
    """What the evaluator measured on the handed-over model (harness/score/)."""

    status: str = Status.CRASH
    reason: str | None = None
    val_bpb: float | None = None
    val_bpb_stderr: float | None = None
    rejected_val_bpb: float | None = None  # an invalid run's number, kept for diagnosis only
    floor_bpb: float | None = None
    excess_bpb: float | None = None
    excess_stderr: float | None = None
    causality: dict | None = None
    batch_check: dict | None = None
    eval_rows: int | None = None
    eval_rows_per_pass: int | None = None
    eval_tokens: int | None = None
    eval_bytes: int | None = None
    eval_seconds: float | None = None
    eval_wall_seconds: float | None = None
    eval_source: str | None = None
    eval_seed: int | None = None
    verified: bool | None = None
    num_params: int | None = None
    graph_num_params: int | None = None
    graph_matmul_flops_per_token: float | None = None

    @classmethod
    def from_json(cls, d: dict) -> Score:
        return cls(**_known(cls, d))

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class ChildReport:
    """What train.py's process may say about its run: how training went. Its status is taken
    only for its own failures (diverged) and hand-over; its own Score only when it could not hand
    over (unverified) or failed its own checks (invalid)."""

    status: str | None = None
    reason: str | None = None
    device: str | None = None
    dtype: str | None = None
    flop_budget: float | None = None
    training_seconds: float | None = None
    warmup_seconds: float | None = None
    warmup_steps: int | None = None
    startup_seconds: float | None = None
    export_seconds: float | None = None
    num_steps: int | None = None
    total_tokens: int | None = None
    tokens_per_second: float | None = None
    first_steps_tokens_per_second: float | None = None
    forward_tokens_per_second: float | None = None  # `arp init`'s probe only: sizes the evaluation
    train_flops: float | None = None
    flops_per_token: float | None = None
    flops_detail: dict | None = None
    mfu_percent: float | None = None
    peak_flops: float | None = None
    peak_flops_source: str | None = None
    peak_memory_mb: float | None = None
    num_params: int | None = None
    depth: int | None = None
    model_config: dict | None = None
    final_train_loss: float | None = None
    epoch: int | None = None
    dataset_floor_bpb: float | None = None
    handover: Any = None
    own_score: Score | None = None
    unknown: list[str] = field(default_factory=list)  # keys it wrote that are not its to write

    @classmethod
    def from_json(cls, d: dict) -> ChildReport:
        report = cls(**_known(cls, {k: v for k, v in d.items() if k not in ("own_score", "unknown")}))
        if d.get("status") in (Status.UNVERIFIED, Status.INVALID):
            report.own_score = Score.from_json(dict(d, verified=False))
        report.unknown = sorted(set(d) - {f.name for f in fields(cls)} - {f.name for f in fields(Score)})
        return report

    def metrics(self) -> dict:
        """What goes into the result: the training figures (status and reason are the parent's
        to settle), its own score where it may give one."""
        out = {k: v for k, v in asdict(self).items()
               if v is not None and k not in ("status", "reason", "own_score", "unknown")}
        if self.own_score is not None:
            out.update({k: v for k, v in self.own_score.to_dict().items() if k not in ("status", "reason")})
        return out


@dataclass
class Code:
    """What ran, taken by the parent before launch: train.py's hashes (exact, and with comments
    and layout ignored) and its place in git: the parent commit, the message (the hypothesis), the
    diff against `diff_base` and its one-line summary."""

    train_py_sha256: str | None = None
    train_py_norm_sha256: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    git_parent: str | None = None
    diff_base: str | None = None
    commit_message: str | None = None
    diff_summary: str | None = None
    diff: str | None = None

    @classmethod
    def from_json(cls, d: dict) -> Code:
        return cls(**_known(cls, d))

    def to_dict(self) -> dict:
        return asdict(self)
