"""PyTorch-MPS backend (Apple GPU). MPS has no peak-memory counter, so the peak is the highest
driver allocation seen at each synchronize (the harness synchronizes every step)."""

import torch

from autoresearch_portable.backends.torch_common import TorchBackend


class MPSBackend(TorchBackend):
    def __init__(self, plan):
        super().__init__(plan)
        self._peak = 0

    def synchronize(self):
        torch.mps.synchronize()
        self._peak = max(self._peak, int(torch.mps.driver_allocated_memory()))

    def reset_peak_memory(self):
        self._peak = int(torch.mps.driver_allocated_memory())

    def peak_memory_bytes(self) -> int:
        return max(self._peak, int(torch.mps.driver_allocated_memory()))
