"""One experiment, from the command line to the ledger. The only path a run takes: `arp train`
(and its `--repeat`), `arp submit` (checked here at submit time) and the cluster's workers and
driver all go through these steps.

    workspace (.arp.json) + Options --plan--> Spec --execute--> result --record--> ledger, results.tsv

* plan: the workspace's settings with the command line's flags over them (harness/run/settings.py),
  the device, the dataset (prepared if generated), the budget (harness/run/budget.py Budget: seconds,
  mode and, in the work modes, FLOPs from the device's profile), the scored rows, the phase
  limits and the early-abandonment trace;
* execute: the parent side of a run (harness/run/launch.py: confined launch, the parent's clock, the
  separate evaluator), then the normalized metrics from this device's calibration;
* record: the decision (keep, discard or repeat N against the bar on this branch), the signed
  ledger line, results.tsv.

The duplicate check (`check_new`) sits between plan and execute, or at submit time for a cluster.
`arp calibrate` and `arp bench` take plan's first step (`setting`: the same budget, dataset and
device as `arp train` there) and train the baseline through harness/baseline/calibrate.py."""

from __future__ import annotations

import os
import statistics
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

from autoresearch_portable.data.common import DEFAULT_DATASET
from autoresearch_portable.harness.records import ledger
from autoresearch_portable.harness.run.budget import Budget, check_budget
from autoresearch_portable.harness.run.settings import DEFAULT_BUDGET_SECONDS, Workspace

Log = Callable[[str], None]


@dataclass
class Options:
    """What the command line says about a run; None: the workspace's setting. Also the form an
    experiment waits in the cluster's queue (to_dict/from_dict)."""
    budget: float | None = None
    budget_mode: str | None = None
    dataset: str | None = None
    backend: str | None = None
    seed: int | None = None     # None: the first seed this code has not run with (unused_seed)
    timeout: float | None = None
    abandon: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Options":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def resolve(options: Options, ws: Workspace) -> tuple[Budget, str]:
    """(budget, dataset) of a run: the flags, else the workspace's, else the defaults. The one
    place a budget is made from what the user typed (Budget.checked validates it)."""
    budget = Budget.checked(options.budget if options.budget is not None else ws.budget_seconds or DEFAULT_BUDGET_SECONDS,
                            options.budget_mode or ws.budget_mode or "wall")
    return budget, options.dataset or ws.dataset or DEFAULT_DATASET


@dataclass
class Spec:
    """One run, fully decided before it starts."""
    train_py: Path
    workspace: Workspace
    probe: dict
    plan: dict
    dataset: str
    dataset_id: dict
    budget: Budget
    seed: int
    timeout: float | None
    eval_rows: int | None
    abandon_trace: list | None
    expected_tokens_per_second: float | None = None  # expected_rate: only for the unmodified baseline

    @property
    def settings(self) -> dict:
        """What makes two runs of the same code the same experiment (the duplicate check)."""
        return dict(dataset=self.dataset_id["name"], budget_seconds=self.budget.seconds, budget_mode=self.budget.mode,
                    backend=self.plan["backend"])


def setting(options: Options, ws: Workspace, log: Log, on_device: Callable[[dict, dict], None] | None = None
            ) -> tuple[Budget, str, dict, dict]:
    """Where a command stands in the workspace `ws` (plan's first step, and all of `arp calibrate`'s
    and `arp bench`'s): the budget and dataset (resolve), this machine's probe and plan (the flag's
    backend, else $ARP_BACKEND, else the workspace's), the dataset prepared when it is generated
    (others must be: DataError)."""
    from autoresearch_portable.detect import make_plan, probe_this_boot
    from autoresearch_portable.harness.baseline.datasize import ensure_prepared

    budget, dataset = resolve(options, ws)
    note = ws.budget_note(budget.seconds)
    if note:
        log(note)
    found = probe_this_boot()
    backend = options.backend or (None if os.environ.get("ARP_BACKEND") else ws.backend)
    pr, pl = found.to_dict(), make_plan(found, backend).to_dict()
    if on_device is not None:
        on_device(pr, pl)
    ensure_prepared(dataset, pr, pl, budget.seconds, log=log)
    return budget, dataset, pr, pl


def plan(train_py: Path, options: Options, log: Log, on_device: Callable[[dict, dict], None] | None = None) -> Spec:
    """Decide the run. Raises UserError (one line) for anything the user can fix before training:
    a bad budget, the other framework's train.py, a dataset missing here, work mode without a
    calibration."""
    from autoresearch_portable import data
    from autoresearch_portable.errors import UserError
    from autoresearch_portable.harness.run import abandon
    from autoresearch_portable.harness.baseline.calibrate import dataset_identity, find_profile
    from autoresearch_portable.harness.baseline.matched import flop_budget_for
    from autoresearch_portable.harness.run.provenance import normalized_sha256
    from autoresearch_portable.harness.workspace import check_backend

    train_py = Path(train_py)
    if not train_py.is_file():
        raise UserError(f"{train_py} not found (run `arp init DIR` to create a workspace)")
    if options.timeout is not None:
        check_budget(options.timeout, "--timeout")
    ws = Workspace.load(train_py.parent)
    budget, dataset, pr, pl = setting(options, ws, log, on_device)
    check_backend(train_py, pl["backend"])  # an MLX train.py on torch (or the reverse): say so now
    data.check_usable(dataset)
    ds_id = dataset_identity(data.load(dataset))
    flops, how = flop_budget_for(budget.mode, budget.seconds, pr, pl, ds_id)  # one line without a profile
    if flops:
        log(f"budget {how} = {flops:.4g} FLOPs")
        budget = Budget(budget.seconds, budget.mode, flops)
    trace, why = (None, "off (--no-abandon)") if not options.abandon else abandon.trace_for(
        find_profile(pr, pl, ds_id)[0], budget.seconds, budget.mode, ws.sizing)
    log(f"early abandonment: {why}")
    spec = Spec(train_py, ws, pr, pl, dataset, ds_id, budget, 0, options.timeout, ws.eval_rows_for(dataset, budget.seconds),
                trace)
    path = ledger_path(train_py.parent)
    spec.seed = int(options.seed) if options.seed is not None else unused_seed(path, train_py.read_bytes(), spec.settings)
    spec.expected_tokens_per_second = expected_rate(
        ledger.read(path), baseline_hash(ws), normalized_sha256(train_py.read_text(encoding="utf-8", errors="replace")),
        pr, pl, ds_id, budget.seconds)
    return spec


def expected_rate(records: list[dict], baseline_sha256: str | None, code_sha256: str | None, probe: dict, plan: dict,
                  dataset_id: dict, budget_seconds: float) -> float | None:
    """The steady tokens/s a run should reach if the machine is as fast as it was: the median of the
    ledger's earlier ok runs of the workspace's unmodified baseline on this device, dataset and
    budget (results.baseline_runs), when this run is that baseline; else None (an edit changes the
    rate). A wall-mode run below 3/4 of it is `noisy` (detect/load.py judge): the machine was slower
    than before, whatever load this system could see (benchmarks/README.md: on a VM the same
    baseline ran 462-552 steps in 120 s against 552-632 hours before, others using 1-4 % of the
    CPU). Pure."""
    from autoresearch_portable.harness.records.results import baseline_runs

    if not baseline_sha256 or code_sha256 != baseline_sha256:
        return None
    runs = baseline_runs(records, baseline_sha256, probe, plan, dataset_id, budget_seconds)
    rates = [float(m["tokens_per_second"]) for m in runs if isinstance(m.get("tokens_per_second"), (int, float))]
    return statistics.median(rates) if rates else None


def check_new(ledger_path: Path, code: bytes, settings: dict, *, again: bool, log: Log) -> None:
    """Before training (or queueing): if this code already ran under these settings, say what came
    of it, and unless `again`, stop with one line (harness/records/memory.py)."""
    from autoresearch_portable.harness.records import memory

    memory.check_duplicate(ledger_path, code, settings, again=again, log=log)


def unused_seed(ledger_path: Path, code: bytes, settings: dict) -> int:
    """The first data seed no earlier run of this code under these settings used: a repeat
    measures new data orders, not ones already in its mean."""
    import hashlib

    from autoresearch_portable.harness.records.memory import duplicates

    path = Path(ledger_path)
    records = ledger.parse_ledger(path.read_bytes()) if path.exists() else []
    used = [(rec.get("metrics") or {}).get("seed") for _, rec in duplicates(records, hashlib.sha256(code).hexdigest(), None,
                                                                              settings)]
    used = [int(s) for s in used if isinstance(s, int)]
    return max(used) + 1 if used else 0


def execute(spec: Spec, seed: int | None = None, quiet: bool = False) -> dict:
    """Run it (harness/run/launch.py) and add the normalized metrics: against this device's
    calibration, else (provisional) against the workspace's runs of its unmodified baseline."""
    from autoresearch_portable.harness.records.results import annotate, baseline_runs
    from autoresearch_portable.harness.run.launch import run_training

    ws = spec.workspace
    result = run_training(spec.train_py, probe=spec.probe, plan=spec.plan, dataset=spec.dataset,
                          budget_seconds=spec.budget.seconds, budget_mode=spec.budget.mode, flop_budget=spec.budget.flops,
                          seed=spec.seed if seed is None else seed, timeout=spec.timeout, eval_rows=spec.eval_rows,
                          overhead_seconds=ws.overhead_seconds, phases=ws.phases, abandon=spec.abandon_trace, quiet=quiet,
                          expected_tokens_per_second=spec.expected_tokens_per_second)
    path, base = ledger_path(spec.train_py.parent), baseline_hash(ws)
    runs = baseline_runs(ledger.read(path) if path.exists() else [], base, spec.probe, spec.plan, spec.dataset_id,
                         spec.budget.seconds)
    annotate(result, spec.probe, spec.plan, spec.dataset_id, baseline=runs)
    if not runs and base and result.get("train_py_norm_sha256") == base and result.get("normalization_note"):
        result["normalization_note"] = (f"this is the unmodified baseline: the runs after it at {spec.budget.seconds:g}s "
                                        f"are scored against it (provisional), or run `arp calibrate`")
    return result


def baseline_hash(ws: Workspace) -> str | None:
    """The normalized hash of the workspace's unmodified baseline: what `arp init` recorded, else
    (a workspace made before it did) that of the train.py of the repository's first commit."""
    if ws.baseline_sha256 or not ws.found:
        return ws.baseline_sha256
    from autoresearch_portable.harness.run.provenance import git_output, normalized_sha256

    roots = (git_output(ws.folder, "rev-list", "--max-parents=0", "HEAD") or "").split()
    text = git_output(ws.folder, "show", f"{roots[-1]}:train.py") if roots else None
    return normalized_sha256(text) if text else None


def ledger_path(folder: Path) -> Path:
    return Path(folder) / "results" / "ledger.jsonl"


def record(folder: Path, result: dict, train_py: Path, probe: dict, plan: dict, extra: dict | None = None
           ) -> tuple[str | None, str | None]:
    """The decision against the runs already in the ledger (harness/records/verdict.py: keep, discard or
    repeat N, against the bar on this branch; stored with the result), the signed ledger line
    (with `extra`: the cluster's queue and node), and results.tsv in an `arp init` workspace.
    Returns (a note about the ledger, the verdict's lines)."""
    from autoresearch_portable.harness.records import memory
    from autoresearch_portable.harness.records import verdict

    path = ledger_path(folder)
    decision = verdict.decide(ledger.read(path), result, verdict.calibrated_noise(result),
                              memory.branch_commits(Path(folder)))
    if decision is not None:
        result.update(verdict=verdict.describe(decision), decision=decision.to_dict())
    note = ledger.append(path, dict(ledger.line(result, train_py, probe, plan), **(extra or {})))
    if Workspace.load(folder).found:  # an `arp init` workspace: results.tsv in the original's format
        memory.write_results_tsv(Path(folder), ledger.parse_ledger(path.read_bytes()))
    return note, result.get("verdict")
