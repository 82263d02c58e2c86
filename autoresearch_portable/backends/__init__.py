"""Backends: one folder each (cuda, mps, mlx, cpu), one interface (base.Backend).
`load_backend(plan)` imports only the one the plan selects."""

from __future__ import annotations

from autoresearch_portable.backends.base import Backend


def backend_class(name: str) -> type[Backend]:
    """The class of backend `name`, its module imported (and its framework with it)."""
    if name == "cuda":
        from autoresearch_portable.backends.cuda import CUDABackend

        return CUDABackend
    if name == "mps":
        from autoresearch_portable.backends.mps import MPSBackend

        return MPSBackend
    if name == "mlx":
        from autoresearch_portable.backends.mlx import MLXBackend

        return MLXBackend
    from autoresearch_portable.backends.cpu import CPUBackend

    return CPUBackend


def load_backend(plan) -> Backend:
    return backend_class(plan.backend)(plan)
