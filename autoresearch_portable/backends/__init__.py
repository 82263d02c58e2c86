"""Backends: one folder each (cuda, mps, mlx, cpu), one interface (base.Backend).
`load_backend(plan)` imports only the one the plan selects."""

from __future__ import annotations

from autoresearch_portable.backends.base import Backend


def load_backend(plan) -> Backend:
    if plan.backend == "cuda":
        from autoresearch_portable.backends.cuda import CUDABackend

        return CUDABackend(plan)
    if plan.backend == "mps":
        from autoresearch_portable.backends.mps import MPSBackend

        return MPSBackend(plan)
    if plan.backend == "mlx":
        from autoresearch_portable.backends.mlx import MLXBackend

        return MLXBackend(plan)
    from autoresearch_portable.backends.cpu import CPUBackend

    return CPUBackend(plan)
