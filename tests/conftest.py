"""Shared fixtures. Keep this file small: one fresh cache folder per test session, and a small
bundled dataset that any test may use."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

SMALL_TRAIN_BYTES = 2_000_000
SMALL_VAL_BYTES = 200_000


def pytest_configure(config):
    """Under pytest-xdist (scripts/test.sh), each worker gets cores of its own: a run then shares
    no core with another worker's run, and its load watch, which counts only the cores the run may
    use, sees a quiet machine."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if worker and count and hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cores[int(worker.removeprefix("gw")) :: int(count)] or cores)


@pytest.fixture(scope="session", autouse=True)
def arp_cache_dir():
    """Point ARP_CACHE_DIR at a fresh temporary folder for the whole session."""
    old = os.environ.get("ARP_CACHE_DIR")
    path = Path(tempfile.mkdtemp(prefix="arp-test-cache-"))
    os.environ["ARP_CACHE_DIR"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("ARP_CACHE_DIR", None)
        else:
            os.environ["ARP_CACHE_DIR"] = old
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def small_bundled(arp_cache_dir):
    """A ~2 MB bundled corpus (vocab 4096, seq_len 1024, ~50 validation rows), loaded."""
    from autoresearch_portable.data import load, prepare

    prepare("bundled", train_bytes=SMALL_TRAIN_BYTES, val_bytes=SMALL_VAL_BYTES, log=lambda m: None)
    return load("bundled")


@pytest.fixture(scope="session")
def small_bundled_v2(arp_cache_dir):
    """A small bundled-v2 corpus (200k training tokens, ~50 validation rows), loaded."""
    from autoresearch_portable.data import load, prepare

    prepare("bundled-v2", train_tokens=200_000, val_bytes=SMALL_VAL_BYTES, tokenizer_train_bytes=1_000_000,
            log=lambda m: None)
    return load("bundled-v2")


# A run that trained and was scored, whatever the machine's load: `ok`, or `noisy` when other
# programs (another test session, a build) used the machine meanwhile. Tests that are not about
# load accept both; tests/test_noise.py is about load and asserts each exactly.
SCORED = ("ok", "noisy")


def scored(r, status: str) -> bool:
    """`arp train` finished a scored run: exit 0 with ok, or exit 1 with noisy."""
    return (r.returncode, status) in ((0, "ok"), (1, "noisy"))
