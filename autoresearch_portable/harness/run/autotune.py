"""OOM-safe choice of the device batch: try a batch size in a child process (where running out
of memory is a status, not a crash of ours), halve it on OOM, keep the first that runs. The
gradient accumulation in train.py keeps the tokens per optimizer step unchanged."""

from __future__ import annotations

from typing import Callable

from autoresearch_portable.errors import UserError


def largest_fitting_batch(trial: Callable[[int], str], start: int) -> int:
    """`trial(batch)` runs a few real steps and returns the run's status ("ok", "oom", ...).
    Returns the largest power-of-two halving of `start` whose trial is not an OOM."""
    batch = max(1, start)
    while True:
        status = trial(batch)
        if status != "oom":
            if status != "ok":
                raise UserError(f"trial run at device batch {batch} failed: {status}")
            return batch
        if batch == 1:
            raise UserError("out of memory even at device batch 1: choose a smaller model (DEPTH/MODEL_DIM)")
        batch //= 2
