"""Tests that need an NVIDIA GPU; skipped elsewhere. benchmarks/gpu_check.sh runs them on a lent
GPU machine."""

import math

import pytest
import torch

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def live_plan():
    from autoresearch_portable.detect import make_plan, probe

    return make_plan(probe(), "cuda")


def reference(q, k, v, window):
    T = q.size(-2)
    i = torch.arange(T, device=q.device)[:, None]
    j = torch.arange(T, device=q.device)[None, :]
    allowed = (j <= i) if window is None else (j <= i) & (i - j <= window)
    s = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(q.size(-1))
    return torch.softmax(s.masked_fill(~allowed, float("-inf")), -1) @ v.float()


def test_live_plan_uses_the_gpu():
    plan = live_plan()
    assert plan.backend == "cuda" and plan.device.startswith("cuda")
    if torch.cuda.get_device_capability() >= (8, 0):
        assert plan.dtype == "bfloat16" and plan.attention == "flex"


@pytest.mark.parametrize("window", [None, 127, 1000])
def test_attention_kernels_match_reference_values_and_grads(window):
    from autoresearch_portable.backends import load_backend

    be = load_backend(live_plan())
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = [torch.randn(2, 4, 2048, 64, device="cuda", generator=g, dtype=torch.bfloat16, requires_grad=True) for _ in range(3)]
    out = be.attention(q, k, v, window)
    grads = torch.autograd.grad(out.float().square().sum(), (q, k, v))
    q2, k2, v2 = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    ref = reference(q2, k2, v2, window)
    rgrads = torch.autograd.grad(ref.square().sum(), (q2, k2, v2))
    torch.testing.assert_close(out.float(), ref, atol=3e-2, rtol=3e-2)
    for a, b in zip(grads, rgrads):
        torch.testing.assert_close(a.float(), b.float(), atol=1e-1, rtol=5e-2)


def test_peak_memory_is_measured():
    from autoresearch_portable.backends import load_backend

    be = load_backend(live_plan())
    be.reset_peak_memory()
    x = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
    be.synchronize()
    assert be.peak_memory_bytes() >= x.numel()
