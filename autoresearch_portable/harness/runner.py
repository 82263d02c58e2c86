"""Runs an agent's train.py in a child process under the harness and turns whatever happens to
it into one result with a status: ok, diverged (NaN/exploding loss), invalid (failed the
causality probe), oom, crash, timeout (past its time limit) or interrupted (Ctrl-C)."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from autoresearch_portable import HARNESS_VERSION, __version__
from autoresearch_portable.fsutil import atomic_write_json
from autoresearch_portable.harness import ledger

OOM_PATTERN = re.compile(
    r"out of memory|OutOfMemoryError|MemoryError|Cannot allocate memory|\[METAL\].*memory|\[metal::malloc\]"
    r"|maximum allowed buffer size",
    re.I,
)


def time_limit(budget_seconds: float) -> float:
    """When a run is stopped as 'timeout': past twice its budget, with at least a minute for
    start-up and evaluation on top of the budget (tiny budgets would otherwise be all start-up)."""
    return max(2 * budget_seconds, budget_seconds + 60)


def run_training(
    train_py: Path,
    *,
    probe: dict,
    plan: dict,
    dataset: str,
    budget_seconds: float,
    budget_mode: str = "wall",
    flop_budget: float | None = None,
    seed: int = 0,
    timeout: float | None = None,
    probe_steps: int | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    train_py = Path(train_py).resolve()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="arp-run-") as tmp:
        result_path = Path(tmp) / "result.json"
        config = dict(
            probe=probe, plan=plan, dataset=dataset, budget_seconds=budget_seconds,
            budget_mode=budget_mode, flop_budget=flop_budget, result_path=str(result_path),
            seed=seed, probe_steps=probe_steps, eval_fraction=0.1, t0=t0,
        )
        config_path = Path(tmp) / "config.json"
        atomic_write_json(config_path, config)
        env = dict(os.environ, ARP_RUN_CONFIG=str(config_path), PYTHONUNBUFFERED="1")
        limit = timeout if timeout is not None else time_limit(budget_seconds)
        tail: collections.deque[str] = collections.deque(maxlen=60)
        child = subprocess.Popen(
            [sys.executable, str(train_py)], cwd=train_py.parent, env=env,
            stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.PIPE,
            text=True, errors="replace",
        )
        pump = threading.Thread(target=_pump, args=(child.stderr, tail, quiet), daemon=True)
        pump.start()
        timed_out = interrupted = False
        try:
            try:
                child.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                timed_out = True
                _stop(child, signal.SIGTERM)
        except KeyboardInterrupt:
            interrupted = True
            _stop(child, signal.SIGINT)
        pump.join(timeout=5)
        result: dict[str, Any] = {}
        if result_path.exists():
            try:
                result = json.loads(result_path.read_text())
            except ValueError:
                result = {}
    tail_text = "".join(tail)
    if timed_out:
        result.update(status="timeout", reason=f"still running after {limit:.0f}s (budget {budget_seconds:g}s); stopped")
    elif interrupted:
        result.update(status="interrupted", reason="interrupted by the user (Ctrl-C)")
    elif not result:
        if child.returncode == 0:
            result.update(status="crash", reason="train.py exited without calling rt.finish(model)")
        elif OOM_PATTERN.search(tail_text):
            result.update(status="oom", reason="out of memory: " + _last_line(tail_text))
        else:
            result.update(status="crash", reason=f"exit code {child.returncode}: " + _last_line(tail_text))
    result.setdefault("status", "crash")
    result["exit_code"] = child.returncode
    result["total_seconds"] = result.get("total_seconds") or time.time() - t0
    result.setdefault("budget_seconds", budget_seconds)
    result.setdefault("budget_mode", budget_mode)
    result.setdefault("backend", plan["backend"])
    result.setdefault("dataset", dataset)
    return result


def _pump(stream, tail, quiet: bool) -> None:
    for line in stream:
        tail.append(line)
        if not quiet:
            sys.stderr.write(line)
            sys.stderr.flush()


def _stop(child: subprocess.Popen, sig: int) -> None:
    """Ask the child to stop, then make sure it does."""
    try:
        child.send_signal(sig)
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    except ProcessLookupError:
        pass


def _last_line(text: str) -> str:
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return lines[-1][:300] if lines else "no output"


def ledger_record(result: dict, train_py: Path, probe: dict, plan: dict) -> dict:
    """The ledger line for one run: when, what code, which device, what came out."""
    train_py = Path(train_py)
    return dict(
        time=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        arp_version=__version__,
        harness_version=HARNESS_VERSION,
        train_py=str(train_py.resolve()),
        train_py_sha256=hashlib.sha256(train_py.read_bytes()).hexdigest() if train_py.exists() else None,
        git_commit=_git_commit(train_py.parent),
        device=probe,
        plan=plan,
        status=result.get("status"),
        reason=result.get("reason"),
        metrics={k: v for k, v in result.items() if k not in ("status", "reason")},
    )


def _git_commit(folder: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def record(ledger_path: Path, result: dict, train_py: Path, probe: dict, plan: dict) -> dict:
    rec = ledger_record(result, train_py, probe, plan)
    ledger.append(ledger_path, rec)
    return rec
