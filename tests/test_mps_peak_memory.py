"""MPS peak memory, with torch.mps's counters replaced by a fake allocator (no Mac here): the
peak is the tensors' memory at its highest point of a step, the end of the forward pass, not the
driver's total with cached pools, and not only what is alive at start and finish."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autoresearch_portable.detect.plan import make_plan
from autoresearch_portable.detect.probe import DeviceProbe

PROBES = Path(__file__).parent / "probes"
MiB = 2**20


class FakeMPS:
    """Tensor bytes as a training step moves them; the driver also holds 3 GiB of cached pools."""

    def __init__(self):
        self.tensors = 100 * MiB  # weights and optimizer state
        self.synchronized = 0

    def current_allocated_memory(self):
        return self.tensors

    def driver_allocated_memory(self):
        return self.tensors + 3072 * MiB

    def synchronize(self):
        self.synchronized += 1


@pytest.fixture
def fake(monkeypatch):
    fake = FakeMPS()
    for name in ("current_allocated_memory", "driver_allocated_memory", "synchronize"):
        monkeypatch.setattr(torch.mps, name, getattr(fake, name))
    return fake


def mps_backend():
    from autoresearch_portable.backends.mps import MPSBackend

    probe = DeviceProbe.from_dict(json.loads((PROBES / "m1_nomlx.json").read_text()))
    return MPSBackend(make_plan(probe, "mps", {}))


def test_peak_is_tensor_memory_at_the_end_of_forward(fake):
    backend = mps_backend()
    backend.reset_peak_memory()
    backend.synchronize()  # rt.start
    for _ in range(3):  # three steps, each: forward, backward, optimizer step, loss.item()
        with backend.autocast():
            fake.tensors += 900 * MiB  # activations kept for backward
        fake.tensors -= 850 * MiB  # backward frees them and leaves the gradients
        fake.tensors -= 50 * MiB  # zero_grad(set_to_none=True)
    backend.synchronize()  # rt.finish
    assert backend.peak_memory_bytes() == 1000 * MiB  # weights + activations, no cached pools


def test_an_unsynchronized_run_still_sees_its_forward_peak(fake):
    backend = mps_backend()
    backend.reset_peak_memory()
    with backend.autocast():
        fake.tensors += 900 * MiB
    fake.tensors -= 900 * MiB
    assert backend.peak_memory_bytes() == 1000 * MiB
    assert fake.synchronized == 0  # sampling costs no device synchronization
