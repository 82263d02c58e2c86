"""CUDA backend (NVIDIA, and AMD through ROCm's cuda API): real synchronisation and the caching
allocator's peak statistics on top of the shared torch backend."""

import torch

from autoresearch_portable.backends.torch_common import TorchBackend


class CUDABackend(TorchBackend):
    def __init__(self, plan):
        super().__init__(plan)
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls (optimizer, eval) on tensor cores
        torch.backends.cudnn.allow_tf32 = True

    def synchronize(self):
        torch.cuda.synchronize(self.device)

    def reset_peak_memory(self):
        torch.cuda.reset_peak_memory_stats(self.device)

    def peak_memory_bytes(self) -> int:
        return int(torch.cuda.max_memory_allocated(self.device))
