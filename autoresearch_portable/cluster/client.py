"""What `arp submit`, `arp queue` and `arp wait` do, from inside the workspace. They change only
the queue (under its lock) and start the driver; the driver alone runs experiments and writes
their ledger lines."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from autoresearch_portable.cluster import driver, engine, queue
from autoresearch_portable.errors import UserError
from autoresearch_portable.harness.run.budget import check_budget
from autoresearch_portable.harness.experiment import Options, resolve
from autoresearch_portable.harness.run.settings import Workspace


def _git(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=workspace, capture_output=True, text=True)
    except FileNotFoundError:
        raise UserError("git is not installed; arp submit needs it") from None


def resolve_commits(workspace: Path, names: list[str]) -> list[str]:
    """Full hashes of the named commits, each of which must hold a train.py."""
    if not (workspace / ".git").exists():
        raise UserError(f"{workspace} is not a workspace (no git repository; create one with `arp init DIR`)")
    out = []
    for name in names or ["HEAD"]:
        got = _git(workspace, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
        if got.returncode != 0:
            raise UserError(f"{name!r} is not a commit of {workspace}")
        sha = got.stdout.strip()
        if _git(workspace, "cat-file", "-e", f"{sha}:train.py").returncode != 0:
            raise UserError(f"commit {sha[:7]} ({name}) has no train.py")
        out.append(sha)
    return out


def options_for(workspace: Path, options: Options) -> dict:
    """The queue's form of an experiment's options: budget, mode and dataset decided now, from the
    flags and the workspace (harness/experiment.py resolve), so `arp queue` shows what will run
    and a workspace made for N s runs N s. The backend: --backend, else $ARP_BACKEND here, else
    each node takes the workspace's."""
    budget, dataset = resolve(options, Workspace.load(workspace))
    if options.timeout is not None:
        check_budget(options.timeout, "--timeout")
    from autoresearch_portable.detect.plan import resolve_backend

    chosen, _ = resolve_backend(options.backend)
    backend = None if chosen == "auto" and not options.backend else chosen
    return dict(Options(budget.seconds, budget.mode, dataset, backend, options.seed, options.timeout,
                        options.abandon).to_dict())


def _settings(workspace: Path, options: dict) -> dict:
    """What makes two runs of the same code the same experiment (experiment.Spec.settings), as
    far as the submitting machine can tell: the node decides the backend only when neither the
    flag nor the workspace does."""
    from autoresearch_portable import data
    from autoresearch_portable.harness.baseline.calibrate import dataset_identity

    try:
        name = dataset_identity(data.load(options["dataset"]))["name"]
    except data.DataError:
        name = options["dataset"]  # not prepared here (it may be on the nodes): the name it was given
    backend = options["backend"] or Workspace.load(workspace).backend
    return dict(dataset=name, budget_seconds=options["budget"], budget_mode=options["budget_mode"], backend=backend)


def _code(workspace: Path, sha: str) -> bytes:
    return _git(workspace, "show", f"{sha}:train.py").stdout.encode()


def check_new(workspace: Path, commits: list[str], options: dict, log=print, settings: dict | None = None) -> None:
    """The duplicate check of `arp train`, at submit time: a commit whose train.py already ran
    with these settings is refused (one line) unless --again."""
    from autoresearch_portable.harness import experiment

    settings = settings or _settings(workspace, options)
    waiting = {e.commit for e in queue.pending(queue.load(workspace))
               if all(e.options.get(k) == options[k] for k in ("budget", "budget_mode", "dataset"))}
    for sha in dict.fromkeys(commits):
        if sha in waiting:
            raise UserError(f"{sha[:7]} is already queued with these settings (arp queue); pass --again to queue it once more")
        experiment.check_new(driver.ledger_path(workspace), _code(workspace, sha), settings, again=False,
                             log=lambda m, c=sha[:7]: log(f"{c}: {m}"))


def submit(workspace: Path, names: list[str], options: Options, repeat: int = 1, again: bool = False,
           address: str | None = None, cpus_per_slot: int | None = None, log=print) -> list[queue.Entry]:
    """Queue the commits (each `repeat` times, data seeds seed, seed+1, ...) and make sure the
    driver runs. Fails (one line) before anything is queued."""
    engine.require_ray()
    workspace = Path(workspace).resolve()
    if repeat < 1:
        raise UserError("--repeat must be at least 1")
    commits = resolve_commits(workspace, names)
    from autoresearch_portable.harness.records import ledger

    ledger.check_writable(driver.ledger_path(workspace))
    settled = options_for(workspace, options)
    note = Workspace.load(workspace).budget_note(settled["budget"])
    if note:
        log(note)
    settings = _settings(workspace, settled)
    if not (again or repeat > 1):
        check_new(workspace, commits, settled, log=log, settings=settings)
    if address is not None or cpus_per_slot is not None:
        engine.save_settings(workspace, address, cpus_per_slot)
    if _git(workspace, "status", "--porcelain", "--", "train.py").stdout.strip():
        log("note: train.py has uncommitted changes; the committed version runs (commit to submit them)")
    first = {c: _first_seed(workspace, c, settled, settings) for c in dict.fromkeys(commits)}  # once per commit
    runs = [(c, dict(settled, seed=first[c] + i)) for c in commits for i in range(repeat)]
    with queue.locked(workspace) as entries:
        new = queue.add(entries, [c for c, _ in runs], [o for _, o in runs], time.time())
        for e in new:  # keeps the commit alive even if the branch is reset before it runs
            if _git(workspace, "update-ref", e.ref, e.commit).returncode != 0:
                raise UserError(f"could not create the ref {e.ref} in {workspace}")
        entries.extend(new)
    ensure_driver(workspace)
    return new


def _first_seed(workspace: Path, sha: str, options: dict, settings: dict) -> int:
    """--seed, else the first data seed this commit's code has not run with (experiment.unused_seed)."""
    from autoresearch_portable.harness import experiment

    if options["seed"] is not None:
        return int(options["seed"])
    ran = experiment.unused_seed(driver.ledger_path(workspace), _code(workspace, sha), settings)
    queued = [int(e.options["seed"]) + 1 for e in queue.pending(queue.load(workspace))
              if e.commit == sha and isinstance(e.options.get("seed"), int)]
    return max([ran, *queued])


def ensure_driver(workspace: Path) -> bool:
    """Start the workspace's driver if none runs. True when one was started."""
    if driver.running_pid(workspace) is not None:
        return False
    driver.start(workspace)
    return True


def wait(workspace: Path, any_: bool = False, timeout: float | None = None, log=print) -> list[queue.Entry]:
    """Print results not shown yet as they land. `any_`: return after the first (at once when some
    landed since the last wait); else when nothing is pending. A driver that is not running while
    experiments are pending is started again (it resumes the queue)."""
    workspace = Path(workspace).resolve()
    if not queue.queue_path(workspace).exists():
        return []  # nothing was ever submitted here
    deadline = time.time() + timeout if timeout is not None else None
    shown: list[queue.Entry] = []
    starts = 0
    while True:
        with queue.locked(workspace) as entries:
            new = [e for e in entries if e.state not in queue.PENDING and not e.reported]
            for e in new:
                e.reported = True
            left = queue.pending(entries)
        for e in new:
            log(queue.result_line(e))
        shown += new
        if not left or (any_ and shown):
            return shown
        if driver.running_pid(workspace) is None:
            starts += 1
            if starts > 3:
                raise UserError("the driver keeps stopping with experiments pending; see results/cluster/driver.log")
            engine.require_ray()
            driver.start(workspace)
            for _ in range(30):  # until it holds its lock
                time.sleep(0.5)
                if driver.running_pid(workspace) is not None:
                    break
        if deadline is not None and time.time() > deadline:
            raise UserError(f"still {len(left)} experiment(s) pending after {timeout:g}s (arp queue shows them)")
        time.sleep(1.0)


def show(workspace: Path) -> str:
    workspace = Path(workspace).resolve()
    text = queue.format_queue(queue.load(workspace))
    pid = driver.running_pid(workspace)
    pending = queue.pending(queue.load(workspace))
    if pid is not None:
        text += f"\ndriver: running (pid {pid})"
    elif pending:
        text += "\ndriver: not running; `arp wait` starts it again and resumes the queue"
    return text


def cluster_report(probe: dict, folder: Path = Path(".")) -> tuple[dict, str]:
    """`arp doctor`'s cluster section: the configured cluster's nodes, GPUs and free slots (asked
    in a child process with a deadline), or what a local one would offer. Starts nothing."""
    import importlib.util

    installed = importlib.util.find_spec("ray") is not None
    settings = engine.load_settings(folder) if (Path(folder) / ".git").exists() else {}
    address = engine.address_for(settings) if installed else None
    info = engine.status(address) if address else None
    local = engine.local_plan(probe)
    data = dict(ray_installed=installed, address=address, settings=settings, status=info, local=local)
    return data, engine.format_status(info, settings, local, installed)

