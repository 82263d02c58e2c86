"""A workspace's settings: `.arp.json`, written by `arp init` and read by every command run inside
the workspace. This module is the only code that reads or writes it.

What `arp init` measured there was measured for one budget: the baseline's size, the number of
scored rows (about 10 % of that budget) and each phase's limit (harness/run/phases.py). A run takes its
budget, mode, dataset and backend from here unless a flag says otherwise (harness/experiment.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from autoresearch_portable.fsutil import atomic_write_json, read_json

FILE = ".arp.json"
DEFAULT_BUDGET_SECONDS = 300.0  # outside a workspace (the original autoresearch's 5 minutes)


@dataclass
class Workspace:
    folder: Path
    found: bool = False                    # there is a readable .arp.json
    backend: str | None = None
    dataset: str | None = None
    budget_seconds: float | None = None    # what the baseline, the scored rows and the limits were sized for
    budget_mode: str | None = None
    eval_rows: int | None = None           # rows every run at budget_seconds scores
    overhead_seconds: float | None = None  # start-up + warm-up + export of the baseline (older workspaces' allowance)
    phases: dict | None = None             # each phase of the baseline as the parent saw it (harness/run/phases.py)
    sizing: dict | None = None             # the baseline's sizes and how they were chosen
    baseline_sha256: str | None = None     # arp init's train.py, normalized hash: its runs calibrate provisionally
    other: dict = field(default_factory=dict)  # keys this version does not know, kept as they were

    @classmethod
    def load(cls, folder: str | Path) -> "Workspace":
        """The settings of the workspace at `folder`; found=False (and nothing set) when there is
        no readable .arp.json there (a train.py outside any workspace)."""
        folder = Path(folder)
        raw = read_json(folder / FILE)
        if raw is None:
            return cls(folder)
        known = {f.name for f in fields(cls)} - {"folder", "found", "other"}
        ws = cls(folder, True, **{k: raw[k] for k in known if k in raw},
                 other={k: v for k, v in raw.items() if k not in known})
        ws.budget_seconds = _number(ws.budget_seconds)
        ws.overhead_seconds = _number(ws.overhead_seconds)
        ws.eval_rows = int(ws.eval_rows) if _number(ws.eval_rows) else None
        return ws

    def save(self) -> None:
        data = {k: v for k, v in asdict(self).items() if k not in ("folder", "found", "other") and v is not None}
        atomic_write_json(self.folder / FILE, dict(self.other, **data))

    def eval_rows_for(self, dataset: str, budget_seconds: float) -> int | None:
        """Rows a run of `dataset` at `budget_seconds` scores: the workspace's, scaled to the budget
        when it differs from the one they were sized for (so evaluation stays ~10 % of it), and
        the same for every run at that budget. None for another dataset (the run sizes them)."""
        if not self.eval_rows or (self.dataset and dataset != self.dataset):
            return None
        if not self.budget_seconds or budget_seconds == self.budget_seconds:
            return self.eval_rows
        return max(4, round(self.eval_rows * budget_seconds / self.budget_seconds))

    def budget_note(self, budget_seconds: float) -> str | None:
        """One line when a run's budget is not the one the workspace was sized for."""
        if not self.found or not self.budget_seconds or budget_seconds == self.budget_seconds:
            return None
        return (f"budget {budget_seconds:g}s: this workspace was sized for {self.budget_seconds:g}s (the baseline's size "
                f"and phase limits); scored rows scaled to {budget_seconds:g}s; verdicts compare runs at the same budget only")


def _number(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
