"""Load the model and optimizer of a trainer template without training.

A template (train_template.py, train_template_mlx.py, or a workspace's train.py) trains when it
runs. For weight conversion and the parity tests we need only its definitions, so the whole file
runs with a stand-in for the harness's Runtime that hands out the given backend and says the
budget is already spent: the template builds its model and optimizers, its training loop makes
no step, and `finish` does nothing. Constants (DEPTH, WINDOW_PATTERN, ...) can be rewritten
first, the way `arp init` rewrites them."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from autoresearch_portable.harness.run import runtime
from autoresearch_portable.harness.baseline.template import render_template


class _StubRuntime:
    """What a template reads from `Runtime()`: the backend and the data's shape, a loader of
    all-zero rows, and a budget that is already spent."""

    def __init__(self, backend: Any, seq_len: int, vocab_size: int):
        self.backend = backend
        self.seq_len = seq_len
        self.vocab_size = vocab_size
        self.progress = 1.0
        self.done = True

    def train_loader(self, batch_size: int):
        rows = np.zeros((batch_size, self.seq_len + 1), dtype=np.int32)
        while True:
            yield self.backend.to_device(rows)

    def start(self, model, config: dict | None = None) -> None:
        pass

    def step(self, loss: float) -> None:
        pass

    def fail(self, reason: str) -> None:
        raise RuntimeError(reason)

    def finish(self, model) -> dict:
        return {}


def load_template(
    path: str | Path, backend: Any, seq_len: int, vocab_size: int, constants: dict | None = None
) -> dict:
    """Run the template with no training; returns its namespace (GPT, build_optimizers, ...)."""
    path = Path(path)
    text = path.read_text()
    if constants:
        text = render_template(text, constants)
    stub = _StubRuntime(backend, seq_len, vocab_size)
    namespace: dict = {"__name__": f"arp_template_{path.stem}", "__file__": str(path)}
    with mock.patch.object(runtime, "Runtime", lambda: stub):
        exec(compile(text, str(path), "exec"), namespace)  # noqa: S102
    return namespace
