"""PyTorch-MPS backend (Apple GPU).

Peak memory: MPS keeps no high-water mark, so the backend samples one. What it samples is
torch.mps.current_allocated_memory(): the bytes held by live tensors, the quantity CUDA's
max_memory_allocated tracks, so peak_vram_mb means the same on both. (driver_allocated_memory
would add the allocator's cached pools and MPSGraph's own buffers: larger, and it varies with
allocation history rather than with the model.) Samples are taken at the end of every forward
pass run under `autocast()` (the template runs each forward so), when the activations kept for
backward are all alive, which is where a training step peaks, and at every synchronize. Tensors
are allocated when an op is dispatched, not when the GPU runs it, so no synchronize is needed
for a sample. A peak reached only inside backward (gradient buffers of the first layers, made
while the last activations are not freed yet) can be missed: the figure errs low by at most
that much."""

from __future__ import annotations

import contextlib

import torch

from autoresearch_portable.backends.torch_common import TorchBackend


class MPSBackend(TorchBackend):
    def __init__(self, plan):
        super().__init__(plan)
        self._peak = 0

    def _sample(self) -> None:
        self._peak = max(self._peak, int(torch.mps.current_allocated_memory()))

    @contextlib.contextmanager
    def autocast(self):
        with super().autocast():
            yield
        if not self.exporting:  # export traces with fake tensors: nothing was allocated
            self._sample()

    def synchronize(self):
        torch.mps.synchronize()
        self._sample()

    def reset_peak_memory(self):
        self._peak = int(torch.mps.current_allocated_memory())

    def peak_memory_bytes(self) -> int:
        self._sample()
        return self._peak
