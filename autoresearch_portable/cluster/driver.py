"""The workspace's driver: one detached process per workspace that feeds Ray from the queue and is
the only writer of the ledger for the experiments it ran.

`arp submit` (and `arp wait` when experiments are pending) start it when it is not running; a lock
file held while it lives keeps it to one. It joins the configured cluster or starts a local one,
submits every queued entry as a Ray task, records each result as it lands (the same signed
ledger line, statuses and verdict as `arp train`), and exits after `ARP_DRIVER_IDLE` seconds
(default 300) with nothing left to do. Killed or restarted, the next driver resumes the queue
from the file: what already has its ledger line is done, what was running runs again (its Ray
task belonged to the old driver), nothing is run twice or dropped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autoresearch_portable.cluster import engine, queue
from autoresearch_portable.fsutil import atomic_write_text, pid_lock
from autoresearch_portable.harness.records import ledger
from autoresearch_portable.harness.experiment import ledger_path

try:
    import fcntl
except ImportError:
    fcntl = None

POLL_SECONDS = 1.0


def log_path(workspace: Path, entry_id: str) -> Path:
    return queue.cluster_dir(workspace) / "logs" / f"{entry_id}.log"


# --- one driver per workspace --------------------------------------------------------------------

@contextlib.contextmanager
def driver_lock(workspace: Path):
    """Yields True while this process holds the workspace's driver lock, False if another does."""
    with pid_lock(queue.cluster_dir(workspace) / "driver.lock") as holder:
        yield holder is None


def running_pid(workspace: Path) -> int | None:
    """The pid of the workspace's live driver, None when there is none."""
    path = queue.cluster_dir(workspace) / "driver.lock"
    if not path.exists() or fcntl is None:
        return None
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None  # nobody holds it (closing releases it again)
        except BlockingIOError:
            f.seek(0)
            text = f.read().strip()
            return int(text) if text.isdigit() else -1


def start(workspace: Path) -> int:
    """Start a detached driver for the workspace (it exits at once if one is already running)."""
    folder = queue.cluster_dir(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "driver.log", "ab") as log:
        child = subprocess.Popen([sys.executable, "-m", "autoresearch_portable.cluster.driver", str(Path(workspace).resolve())],
                                 cwd=workspace, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    return child.pid


# --- the results --------------------------------------------------------------------------------

def landed(workspace: Path) -> dict[str, dict]:
    """Queue entries (by id) whose line is in the ledger; only the harness's signed lines count,
    matched on the id and the submission time (a queue started afresh reuses ids)."""
    out = {}
    for rec in ledger.read(ledger_path(workspace)):
        q = rec.get("queue")
        if isinstance(q, dict) and not rec.get(ledger.UNTRUSTED) and isinstance(q.get("id"), str):
            out[f"{q['id']}@{q.get('submitted')!r}"] = rec
    return out


def record(workspace: Path, e: queue.Entry, out: dict | None, lost_reason: str | None = None) -> tuple[dict, str | None]:
    """Record the experiment as `arp train` does (harness/experiment.py record: verdict, signed
    ledger line with where it ran, results.tsv), and write its log; returns (result, verdict)."""
    from autoresearch_portable.harness import experiment
    from autoresearch_portable.harness.run.summary import format_summary

    out = out or {}
    result = dict(out.get("result") or {})
    if lost_reason is not None:
        result = dict(status="lost", reason=lost_reason)
    result.setdefault("git_commit", e.short)
    result.setdefault("budget_seconds", float(e.options["budget"]))
    result.setdefault("budget_mode", e.options.get("budget_mode", "wall"))
    where = dict(queue=dict(id=e.id, submitted=e.submitted, commit=e.commit, attempts=e.attempts),
                 cluster=dict(node=out.get("node") or e.node, slot=out.get("slot") or e.slot,
                              device_key=out.get("device") or e.device, node_ip=out.get("node_ip"),
                              node_id=out.get("node_id"), threads=out.get("threads"), worker_pid=out.get("worker_pid"),
                              started=out.get("started") or e.started, finished=out.get("finished"),
                              checkout_seconds=out.get("checkout_seconds")))
    _, verdict = experiment.record(workspace, result, Path(out.get("train_py") or f"{e.commit}/train.py"),
                                   out.get("probe") or {}, out.get("plan") or {}, extra=where)
    text = (out.get("output") or "") + "\n" + format_summary(result) + "\n" + (verdict or "") + "\n"
    atomic_write_text(log_path(workspace, e.id), text)
    return result, verdict


def spec_for(workspace: Path, e: queue.Entry) -> dict:
    """What the task needs: the commit as a git bundle (so any node can check it out)."""
    with tempfile.TemporaryDirectory(prefix="arp-bundle-") as tmp:
        bundle = Path(tmp) / "commit.bundle"
        subprocess.run(["git", "bundle", "create", str(bundle), e.ref], cwd=workspace, check=True,
                       capture_output=True, text=True)
        data = bundle.read_bytes()
    return dict(id=e.id, commit=e.commit, ref=e.ref, bundle=data, options=e.options)


# --- the loop -------------------------------------------------------------------------------------

class Driver:
    def __init__(self, workspace: Path, idle_seconds: float):
        self.ws = Path(workspace)
        self.idle_seconds = idle_seconds
        self.stopping = False
        self.inflight: dict = {}  # Ray ObjectRef -> queue key
        self.submitted: set[str] = set()

    def run(self) -> None:
        settings = engine.load_settings(self.ws)
        t0 = time.time()
        ray = engine.connect(engine.address_for(settings))
        _say(f"connected to Ray in {time.time() - t0:.1f}s ({engine.address_for(settings) or 'a local cluster'})")
        try:
            self.loop(ray)
        finally:
            ray.shutdown()

    def loop(self, ray) -> None:
        inbox = engine.make_inbox(ray)
        done = landed(self.ws)
        with queue.locked(self.ws) as entries:
            again = queue.resume(entries, done)
        if again:
            _say(f"resuming: {', '.join(again)} queued again")
        idle_since = time.time()
        while not self.stopping:
            per_slot = engine.load_settings(self.ws).get("cpus_per_slot")  # a later `arp submit --cpus-per-slot` applies
            slot = engine.slot_options(ray.cluster_resources(), engine.alive_node_cpus(ray), per_slot)
            self.submit_queued(ray, slot, inbox)
            self.apply_starts(ray.get(inbox.drain.remote()))
            ready = []
            if self.inflight:
                ready, _ = ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=POLL_SECONDS)
            else:
                time.sleep(POLL_SECONDS)
            self.apply_starts(ray.get(inbox.drain.remote()))  # a start is applied before its result
            for ref in ready:
                self.finish(ray, ref)
            if self.inflight or queue.pending(queue.load(self.ws)):
                idle_since = time.time()
            elif time.time() - idle_since > self.idle_seconds:
                _say(f"nothing to do for {self.idle_seconds:g}s: stopping")
                break

    def submit_queued(self, ray, slot: dict, inbox) -> None:
        with queue.locked(self.ws) as entries:
            for e in entries:
                if e.state == "queued" and e.key not in self.submitted:
                    ref = engine.submit(ray, spec_for(self.ws, e), slot, inbox)
                    self.inflight[ref] = e.key
                    self.submitted.add(e.key)
                    _say(f"{e.id} {e.short}: submitted ({slot})")

    def apply_starts(self, messages: list) -> None:
        if not messages:
            return
        with queue.locked(self.ws) as entries:
            by_id = {e.id: e for e in entries}
            for msg in messages:
                e = by_id.get(msg.get("id"))
                if e is not None and msg.get("event") == "device" and e.state == "running":
                    e.device = msg.get("device")
                elif e is not None and e.state in queue.PENDING:
                    queue.start(e, msg)
                    _say(f"{e.id} {e.short}: running on {e.node} ({e.slot}), attempt {e.attempts}")

    def finish(self, ray, ref) -> None:
        key = self.inflight.pop(ref)
        try:
            out, lost = ray.get(ref), None
        except ray.exceptions.RayTaskError as err:  # the harness itself failed in the worker
            out, lost = None, f"the worker failed: {str(err).strip().splitlines()[-1][:300]}"
        except ray.exceptions.RayError as err:  # its worker or node died, and again on the retry
            out, lost = None, f"lost: the worker or its node died twice (Ray: {type(err).__name__})"
        with queue.locked(self.ws) as entries:
            e = next((x for x in entries if x.key == key), None)
            if e is None or e.state not in queue.PENDING:
                return
            if out is not None:
                e.device = out.get("device") or e.device
            result, verdict = record(self.ws, e, out, lost)
            queue.finish(e, result.get("status"), result.get("val_bpb"), result.get("reason"), verdict, time.time())
            _say(f"{e.id} {e.short}: {e.status} {result.get('val_bpb')}")


def _say(msg: str) -> None:
    print(time.strftime("%Y-%m-%d %H:%M:%S"), msg, flush=True)


def main(argv: list[str]) -> int:
    workspace = Path(argv[0])
    idle = float(os.environ.get("ARP_DRIVER_IDLE", "300"))
    with driver_lock(workspace) as mine:
        if not mine:
            return 0
        driver = Driver(workspace, idle)

        def stop(signum, frame):
            driver.stopping = True
        signal.signal(signal.SIGTERM, stop)
        _say(f"driver {os.getpid()} for {workspace}")
        driver.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
