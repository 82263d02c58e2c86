"""The `arp` command line. Thin: parses flags, calls the harness, prints. Nothing imports it."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Optional

import typer

from autoresearch_portable.data.common import DEFAULT_DATASET
from autoresearch_portable.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="autoresearch-portable: the autoresearch loop on any hardware, with comparable results.",
)

BackendOpt = typer.Option(
    None, "--backend", help="auto|cuda|mps|mlx|cpu (default: $ARP_BACKEND or auto)"
)

# the run options `arp train` and `arp submit` share
DatasetOpt = typer.Option(None, "--dataset", help=f"default: the workspace's (this folder's .arp.json), else {DEFAULT_DATASET}")
BudgetOpt = typer.Option(None, "--budget", help="budget in seconds (default: what the workspace was made for, else 300)")
BudgetModeOpt = typer.Option(None, "--budget-mode", help="wall | work | matched (default: the workspace's, else wall)")
SeedOpt = typer.Option(None, "--seed", help="data order seed (default: the first this code has not run with)")


@app.callback()
def _root() -> None:
    """autoresearch-portable: the autoresearch loop on any hardware, with comparable results."""
    # A callback keeps `arp doctor` a subcommand even while doctor is the only command.


@app.command()
def doctor(
    backend: Optional[str] = BackendOpt,
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    remeasure: bool = typer.Option(False, "--remeasure", help="forget cached measurements of this machine (matmul rates, throughput probes) and measure again"),
) -> None:
    """What hardware was found, which backend and kernels would be used and why."""
    from autoresearch_portable.detect import doctor_report, format_doctor

    if remeasure:
        from autoresearch_portable import paths

        for f in paths.probes_dir().glob("*.json"):
            f.unlink(missing_ok=True)
    report = doctor_report(backend)
    from autoresearch_portable.cluster.client import cluster_report

    cluster, text = cluster_report(report["probe"])
    report["cluster"] = cluster
    typer.echo(json.dumps(report, indent=2) if as_json else format_doctor(report) + "\n" + text)


def _click_errors() -> tuple[type, ...]:
    """Click's usage-error base class: vendored inside newer typer, the click package in older."""
    found = []
    for mod in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(__import__(mod, fromlist=["ClickException"]).ClickException)
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def _plan(backend: Optional[str]):
    from autoresearch_portable.detect import make_plan, probe_this_boot

    pr = probe_this_boot()
    return pr.to_dict(), make_plan(pr, backend).to_dict()


def _log(msg: str) -> None:
    typer.echo(msg, err=True)


@app.command()
def prepare(
    dataset: str = typer.Option(DEFAULT_DATASET, "--dataset", help="bundled-v2 (default) | bundled (corpus v1) | climbmix | tinystories | a .txt/.jsonl/.parquet file or folder"),
    num_shards: Optional[int] = typer.Option(None, "--num-shards", help="training shards to download (climbmix)"),
    force: bool = typer.Option(False, "--force", help="rebuild even if the dataset is already prepared"),
    train_tokens: Optional[int] = typer.Option(None, "--train-tokens", help="bundled-v2: training tokens to generate (default: what this device's baseline trains on in --budget, with margin)"),
    budget: float = typer.Option(300.0, "--budget", help="bundled-v2: the budget in seconds the training split is sized for"),
    backend: Optional[str] = BackendOpt,
) -> None:
    """Data and tokenizer into the user cache. Default: bundled corpus v2, offline, sized to this device."""
    from autoresearch_portable import data
    from autoresearch_portable.data.common import resolve

    kind = resolve(dataset)[1]
    if kind != "bundled-v2" and train_tokens is not None:
        raise UserError("--train-tokens applies to bundled-v2 only")
    if kind == "bundled-v2":
        from autoresearch_portable.harness.run.budget import check_budget
        from autoresearch_portable.harness.baseline.datasize import prepare_generated

        check_budget(budget)
        if num_shards is not None:
            raise UserError("--num-shards applies to climbmix only")
        sizes = {} if train_tokens is None else {"train_tokens": train_tokens}
        pr, plan = _plan(backend) if train_tokens is None else ({}, {})
        info = prepare_generated(dataset, pr, plan, budget, force=force, log=_log, **sizes)
    else:
        info = data.prepare(dataset, num_shards=num_shards, force=force, log=_log)
    state = "already prepared" if info.get("already_prepared") else "prepared"
    floor = info.get("floor_bpb")
    typer.echo(
        f"{info.get('dataset', dataset)}: {state} in {info.get('path', '')}; vocab {info.get('vocab_size')}, "
        f"seq_len {info.get('seq_len')}" + (f", floor_bpb {floor:.4f}" if floor else "")
        + f"; train {info['splits']['train']['n_tokens'] / 1e6:.1f}M tokens"
    )


@app.command()
def init(
    directory: str = typer.Argument(..., help="the workspace folder to create"),
    backend: Optional[str] = BackendOpt,
    dataset: str = typer.Option(DEFAULT_DATASET, "--dataset"),
    budget: float = typer.Option(300.0, "--budget", help="seconds the baseline is sized for"),
    force: bool = typer.Option(False, "--force", help="write into a non-empty folder"),
    depth: Optional[int] = typer.Option(None, "--depth", help="skip measuring: set all four sizes yourself"),
    dim: Optional[int] = typer.Option(None, "--dim"),
    device_batch: Optional[int] = typer.Option(None, "--device-batch"),
    total_batch: Optional[int] = typer.Option(None, "--total-batch", help="tokens per optimizer step"),
    parallel: bool = typer.Option(False, "--parallel", help="also write program_parallel.md: the loop with many experiments at once (arp submit)"),
) -> None:
    """A new research workspace: git repo with train.py sized for this device, program.md."""
    from pathlib import Path

    from autoresearch_portable.harness.baseline.datasize import ensure_prepared
    from autoresearch_portable.harness.run.budget import check_budget
    from autoresearch_portable.harness.workspace import check_target, init_workspace

    check_budget(budget)
    given = dict(DEPTH=depth, MODEL_DIM=dim, DEVICE_BATCH_SIZE=device_batch, TOTAL_BATCH_SIZE=total_batch)
    if any(given.values()) and not all(given.values()):
        raise UserError("give all of --depth, --dim, --device-batch, --total-batch, or none (measured)")
    if any(v is not None and v <= 0 for v in given.values()):
        raise UserError("sizes must be positive")
    check_target(Path(directory), force)
    pr, plan = _plan(backend)
    ensure_prepared(dataset, pr, plan, budget, log=_log)  # a generated corpus; others must be prepared
    sizes = init_workspace(Path(directory), pr, plan, dataset, budget, force=force, log=_log,
                           sizes=given if all(given.values()) else None, parallel=parallel)
    steps = f" (~{sizes['expected_steps']} steps in {budget:g}s)" if sizes.get("expected_steps") else ""
    typer.echo(
        f"workspace {directory}: {plan['backend']} baseline depth {sizes['DEPTH']}, width {sizes['MODEL_DIM']}, "
        f"{sizes['TOTAL_BATCH_SIZE']} tokens/step{steps}. Next: cd {directory} && arp train"
    )


@app.command()
def train(
    file: str = typer.Argument("train.py", help="the train.py to run"),
    backend: Optional[str] = BackendOpt,
    dataset: Optional[str] = DatasetOpt,
    budget: Optional[float] = BudgetOpt,
    budget_mode: Optional[str] = BudgetModeOpt,
    seed: Optional[int] = SeedOpt,
    timeout: Optional[float] = typer.Option(None, "--timeout", help="stop the run after this many seconds (default: 2x budget in wall mode, at least budget+60; work/matched mode: 30x, and a run with no training step for max(120 s, budget/2) stops sooner)"),
    repeat: int = typer.Option(1, "--repeat", help="run the same train.py N times, on data seeds it has not run with, and report the mean of all its runs"),
    again: bool = typer.Option(False, "--again", help="run a train.py that already ran (same code, same settings) once more"),
    no_abandon: bool = typer.Option(False, "--no-abandon", help="never stop the run early, even if its loss trails the calibrated baseline's"),
) -> None:
    """Run train.py under the harness for the budget; print the summary; append to the ledger."""
    from pathlib import Path

    from autoresearch_portable.harness import experiment

    from autoresearch_portable.harness.records import ledger
    from autoresearch_portable.harness.run.launch import exclusive_run
    from autoresearch_portable.harness.run.summary import format_summary

    if repeat < 1:
        raise UserError("--repeat must be at least 1")
    train_py = Path(file)
    options = experiment.Options(budget, budget_mode, dataset, backend, seed, timeout, abandon=not no_abandon)
    spec = experiment.plan(train_py, options, _log)
    folder = train_py.parent
    ledger.check_writable(experiment.ledger_path(folder))  # fail now, not after the whole budget
    # the same code already ran under these settings? say what came of it first
    experiment.check_new(experiment.ledger_path(folder), train_py.read_bytes(), spec.settings,
                         again=again or repeat > 1, log=_log)
    values = []
    with exclusive_run(folder / "results"):
        for i in range(repeat):
            if repeat > 1:
                _log(f"run {i + 1} of {repeat} (seed {spec.seed + i})")
            result = experiment.execute(spec, seed=spec.seed + i)
            try:
                note, verdict = experiment.record(folder, result, train_py, spec.probe, spec.plan)
            finally:
                # the harness's summary comes last, after everything train.py printed
                typer.echo(format_summary(result))
            if note:
                typer.echo(note, err=True)
            if verdict:
                typer.echo(verdict)
            if result.get("status") != "ok":
                break
            values.append(result.get("decision") or {})
    if repeat > 1 and values:
        # one number per commit: the mean of all its runs, as the verdict judges it
        d = values[-1]
        typer.echo(f"repeat: {len(values)} ok runs of {repeat}; this code now has {d.get('n')} ok runs, val_bpb mean "
                   f"{d.get('mean', float('nan')):.6f}; verdict: {d.get('word')}")
    status = result.get("status")
    if status != "ok":
        typer.echo(f"run {status}: {result.get('reason', '')}", err=True)
        raise typer.Exit(130 if status == "interrupted" else 1)


@app.command()
def calibrate(
    backend: Optional[str] = BackendOpt,
    dataset: Optional[str] = DatasetOpt,
    budget: Optional[float] = typer.Option(None, "--budget", help="T: the budget in seconds to calibrate (runs at T/4, T/2, T; default: this workspace's, else 300)"),
    repeats: int = typer.Option(4, "--repeats", help="extra runs at T with other seeds (noise band); at least 2"),
    force: bool = typer.Option(False, "--force", help="measure again even if a current profile exists"),
    verbose: bool = typer.Option(False, "--verbose", help="show the trainer's own output"),
    as_json: bool = typer.Option(False, "--json", help="print the profile as JSON"),
) -> None:
    """Measure this device: its baseline's compute curve and noise. Until then, runs are scored
    provisionally against the workspace's runs of its unmodified baseline at its budget; this adds
    runs at other budgets, work mode, early abandonment and a measured noise band."""
    from pathlib import Path

    from autoresearch_portable.harness.baseline import calibrate as cal
    from autoresearch_portable.harness.experiment import Options, setting
    from autoresearch_portable.harness.run.settings import Workspace

    if repeats < 2:
        raise UserError("--repeats must be at least 2 (the noise band needs repeats at T)")
    # what `arp train` here trains on, for as long, on the same backend
    t, dataset, pr, plan = setting(Options(budget, None, dataset, backend), Workspace.load(Path.cwd()), _log)
    profile = cal.calibrate(pr, plan, dataset, t.seconds, repeats, force=force, log=_log, quiet=not verbose)
    typer.echo(json.dumps(profile, indent=2) if as_json else cal.format_profile(profile))


@app.command()
def bench(
    backend: Optional[str] = BackendOpt,
    quick: bool = typer.Option(False, "--quick", help="a short version (a few minutes on a CPU) for CI"),
    export: Optional[str] = typer.Option(None, "--export", help="write this device's result as a bundle file"),
    force: bool = typer.Option(False, "--force", help="measure again even if a result is cached"),
    verbose: bool = typer.Option(False, "--verbose", help="show the trainer's own output"),
    matched: bool = typer.Option(False, "--matched", help="train the reference's own baseline for the reference's FLOPs at T and compare val_bpb directly (the first way to compare machines)"),
    runs: Optional[int] = typer.Option(None, "--runs", help="with --matched: how many runs (default: the benchmark's repeats + 1)"),
) -> None:
    """The standard benchmark on the bundled corpus, side by side with the bundled reference results."""
    from pathlib import Path

    from autoresearch_portable.harness.baseline import bench as b
    from autoresearch_portable.harness.experiment import Options, setting
    from autoresearch_portable.harness.run.settings import Workspace

    d = b.definition(quick)
    # the benchmark's own budget and dataset wherever it runs: no workspace's settings
    _, _, pr, plan = setting(Options(float(d["budget_seconds"]), "wall", d["dataset"], backend), Workspace(Path.cwd()), _log)
    if matched:
        from autoresearch_portable.harness.baseline import matched as mt

        m = mt.matched_bench(pr, plan, d["dataset"], runs=d["repeats"] + 1 if runs is None else runs, log=_log,
                             quiet=not verbose)
        typer.echo(mt.format_matched(m))
        return
    profile = b.run_bench(pr, plan, quick=quick, force=force, log=_log, quiet=not verbose)
    typer.echo(b.report(profile))
    if export:
        from autoresearch_portable.fsutil import atomic_write_json

        cmd = "arp bench" + (" --quick" if quick else "") + f" --backend {plan['backend']}"
        atomic_write_json(export, b.to_bundle(profile, bench_name=d["name"], command=cmd))
        typer.echo(f"exported: {export} (add it to benchmarks/results/ to bundle it)")


@app.command()
def results(
    file: str = typer.Argument("results/ledger.jsonl", help="a ledger file or a workspace folder"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output (stable keys, see README)"),
    last: Optional[int] = typer.Option(None, "--last", help="only the last N runs"),
    near: bool = typer.Option(False, "--near", help="near-misses: results within the noise band of the best"),
    plot: Optional[str] = typer.Option(None, "--plot", help="write the progress plot to FILE.png"),
) -> None:
    """The run ledger: every run with its hypothesis, status and score (run numbers for `arp show`)."""
    from autoresearch_portable.harness.records import history
    from autoresearch_portable.harness.records import memory
    from autoresearch_portable.harness.records import plot as plots
    from autoresearch_portable.harness.records import results as res
    from autoresearch_portable.harness.run.settings import Workspace

    records = res.load_ledger(file)
    folder = res.workspace_folder(file)
    kept = memory.kept_runs(folder, records)
    if Workspace.load(folder).found:  # results.tsv follows the branch: a commit reset away is no longer `keep`
        with contextlib.suppress(OSError):  # a read-only workspace can still be read
            memory.write_results_tsv(folder, records)
    if near:
        found = history.near_misses(records, memory.branch_commits(folder))
        typer.echo(json.dumps(found, indent=2) if as_json else history.format_near(found))
    else:
        rows = [history.run_row(n, r, kept) for n, r in history.numbered(records, last)]
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
        elif sys.stdout.isatty() and records:
            from rich.console import Console

            Console().print(history.rich_table(rows))
            typer.echo("\n" + "\n".join(history.notes(records, rows)))
        else:
            typer.echo(history.format_runs(records, rows))
    if plot:
        sigma = history.near_misses(records, memory.branch_commits(folder))["sigma"]
        typer.echo(plots.write_plot({"": plots.plot_data(records, kept, sigma)}, plot), err=as_json)


@app.command()
def show(
    run: str = typer.Argument(..., help="a run number from `arp results` (or last, -1, -2 ...) or a git revision (HEAD, HEAD~1, a commit prefix)"),
    file: str = typer.Option("results/ledger.jsonl", "--ledger", help="a ledger file or a workspace folder"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """One run: its hypothesis, the diff of train.py against its parent, metrics and the log tail."""
    from autoresearch_portable.harness.records import history
    from autoresearch_portable.harness.records import results as res

    found = history.show(res.load_ledger(file), history.revision(res.workspace_folder(file), run))
    typer.echo(json.dumps(found, indent=2, default=str) if as_json else history.format_show(found))


@app.command()
def compare(
    ledgers: list[str] = typer.Argument(..., help="ledger files or workspace folders (one per device)"),
    plot: Optional[str] = typer.Option(None, "--plot", help="write a progress plot PNG"),
) -> None:
    """Several ledgers (devices) in one table with the normalized columns."""
    from autoresearch_portable.harness.records import results as res

    loaded = {}
    for name in ledgers:
        label = name if name not in loaded else f"{name} ({len(loaded)})"
        loaded[label] = res.load_ledger(name)
    typer.echo(res.format_compare(loaded))
    if plot:
        typer.echo(res.plot_progress(loaded, plot))


@app.command()
def submit(
    commits: list[str] = typer.Argument(None, help="commits to run (default HEAD)"),
    backend: Optional[str] = BackendOpt,
    dataset: Optional[str] = DatasetOpt,
    budget: Optional[float] = BudgetOpt,
    budget_mode: Optional[str] = BudgetModeOpt,
    seed: Optional[int] = SeedOpt,
    timeout: Optional[float] = typer.Option(None, "--timeout", help="stop a run after this many seconds"),
    repeat: int = typer.Option(1, "--repeat", help="run each commit N times (on data seeds it has not run with, or --seed..--seed+N-1)"),
    again: bool = typer.Option(False, "--again", help="queue a commit whose train.py already ran (same code, same settings) once more"),
    no_abandon: bool = typer.Option(False, "--no-abandon", help="never stop a run early, even if its loss trails the calibrated baseline's"),
    address: Optional[str] = typer.Option(None, "--address", help="the Ray cluster to join (remembered for the workspace; default $RAY_ADDRESS, else a local cluster)"),
    cpus_per_slot: Optional[int] = typer.Option(None, "--cpus-per-slot", help="CPU-only clusters: cores per experiment (default: a whole node)"),
) -> None:
    """Queue commits as experiments on a Ray cluster; each runs like `arp train` in its own checkout."""
    from pathlib import Path

    from autoresearch_portable.cluster import client
    from autoresearch_portable.harness.experiment import Options

    options = Options(budget, budget_mode, dataset, backend, seed, timeout, abandon=not no_abandon)
    new = client.submit(Path("."), commits or [], options, repeat=repeat, again=again, address=address,
                        cpus_per_slot=cpus_per_slot, log=_log)
    for e in new:
        typer.echo(f"{e.id} {e.short}: queued")
    typer.echo("results land in results/ledger.jsonl; `arp wait --any` prints each as it lands, `arp queue` shows where they run")


@app.command("queue")
def queue_cmd(
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """The workspace's experiments: queued, running (node, slot, device), done."""
    from dataclasses import asdict
    from pathlib import Path

    from autoresearch_portable.cluster import client, queue

    if as_json:
        typer.echo(json.dumps([asdict(e) for e in queue.load(Path("."))], indent=2))
    else:
        typer.echo(client.show(Path(".")))


@app.command()
def wait(
    any_: bool = typer.Option(False, "--any", help="return after the first result not shown yet"),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="give up after this many seconds (exit 2)"),
) -> None:
    """Block until the submitted experiments' results land (all of them, or --any one) and print them."""
    from pathlib import Path

    from autoresearch_portable.cluster import client

    if not client.wait(Path("."), any_=any_, timeout=timeout, log=typer.echo):
        typer.echo("nothing pending and no new results (arp submit queues experiments)")


def main() -> None:
    try:
        # Without standalone mode click returns a typer.Exit's code instead of exiting.
        rc = app(standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except _click_errors() as e:  # a bad flag or a missing argument is a user error too
        typer.echo(f"error: {e.format_message()}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
