"""Load the model and optimizer half of a trainer template without training.

A template (train_template.py, train_template_mlx.py, or a workspace's train.py) runs its training
loop at import. For weight conversion and the parity tests we need only its definitions: the
source up to the "# Training loop" banner, executed with a stand-in for the harness's Runtime
that hands out the given backend. Constants (DEPTH, WINDOW_PATTERN, ...) can be rewritten first,
the way `arp init` rewrites them."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

TRAINING_BANNER = "# Training loop"


class _StubRuntime:
    """What the top of a template reads from `Runtime()`."""

    def __init__(self, backend: Any, seq_len: int, vocab_size: int):
        self.backend = backend
        self.seq_len = seq_len
        self.vocab_size = vocab_size
        self.progress = 0.0
        self.done = True


def load_template(
    path: str | Path, backend: Any, seq_len: int, vocab_size: int, constants: dict | None = None
) -> dict:
    """Execute the template's definitions; returns its namespace (GPT, build_optimizers, ...)."""
    from autoresearch_portable.harness import runtime  # noqa: PLC0415
    from autoresearch_portable.harness.workspace import render_template  # noqa: PLC0415

    path = Path(path)
    text = path.read_text()
    if constants:
        text = render_template(text, constants)
    cut = text.find(TRAINING_BANNER)
    if cut < 0:
        raise ValueError(f"{path} has no {TRAINING_BANNER!r} banner")
    head = text[: text.rfind("\n", 0, cut) + 1]
    stub = _StubRuntime(backend, seq_len, vocab_size)
    namespace: dict = {"__name__": f"arp_template_{path.stem}", "__file__": str(path)}
    with mock.patch.object(runtime, "Runtime", lambda: stub):
        exec(compile(head, str(path), "exec"), namespace)  # noqa: S102
    return namespace
