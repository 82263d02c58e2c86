"""The child process of a run, from the parent's side: waiting for it with a time limit and a hang
guard, stopping it on Ctrl-C or SIGTERM, ending its whole process group, and copying its output.
Used by harness/run/launch.py."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Callable


class Terminated(Exception):
    """SIGTERM reached the parent (e.g. `timeout`); handled like Ctrl-C."""


def wait(child: subprocess.Popen, limit: float, hung: Callable[[], str | None] | None = None) -> tuple[str, str | None]:
    """'exited', 'timeout', 'interrupted' (Ctrl-C) or 'terminated' (SIGTERM), and for a timeout
    the hang guard's reason when it (not the time limit) stopped the run."""
    restore = None
    if threading.current_thread() is threading.main_thread():
        def on_term(signum, frame):
            raise Terminated()
        restore = signal.signal(signal.SIGTERM, on_term)
    deadline = time.monotonic() + limit
    try:
        try:
            while True:
                try:
                    child.wait(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
                    return "exited", None
                except subprocess.TimeoutExpired:
                    why = hung() if hung is not None else None
                    if why or time.monotonic() >= deadline:
                        stop(child, signal.SIGTERM)
                        return "timeout", why
        except KeyboardInterrupt:
            stop(child, signal.SIGINT)
            return "interrupted", None
        except Terminated:
            stop(child, signal.SIGTERM)
            return "terminated", None
    finally:
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)


def die_with_parent() -> None:
    """In the child before exec: on Linux the kernel kills it when the parent dies (kill -9 of
    `arp train` must not leave train.py training with nobody listening). Elsewhere the runtime's
    watchdog thread does the same."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def pump(stream, tails, out, quiet: bool) -> None:
    for line in stream:
        for tail in tails:
            tail.append(line)
        if not quiet:
            out.write(line)
            out.flush()


def stop(child: subprocess.Popen, sig: int) -> None:
    """Ask the child's process group to stop, then make sure it does."""
    try:
        os.killpg(child.pid, sig)
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        kill_group(child)
        child.wait()
    except (ProcessLookupError, PermissionError):
        pass


def signal_group(child: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(child.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_group(child: subprocess.Popen) -> None:
    """Whatever train.py started and left running goes with it."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    child.wait()
