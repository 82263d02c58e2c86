"""Every torch attention path against a plain masked softmax reference, values and gradients,
in the project's one window convention: window w = the query itself and the w keys before it."""

import math

import pytest
import torch

from autoresearch_portable.backends.base import attended_pairs
from autoresearch_portable.backends.torch_common import TorchBackend, window_mask
from autoresearch_portable.detect.plan import Plan


def cpu_plan(attention="sdpa_mask", dtype="float32"):
    return Plan(backend="cpu", device="cpu", dtype=dtype, dtype_mode="none" if dtype == "float32" else "autocast",
                grad_scaler=False, attention=attention, compile=False, pin_memory=False, peak_flops=None,
                peak_flops_source="measure", reasons={})


def reference(q, k, v, window):
    T = q.size(-2)
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    allowed = (j <= i) if window is None else (j <= i) & (i - j <= window)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.size(-1))
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def qkv(T=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, T, 16, generator=g, requires_grad=True) for _ in range(3)]


@pytest.mark.parametrize("window", [None, 0, 1, 7, 16, 46, 47, 100])
def test_sdpa_paths_match_reference_values_and_gradients(window):
    be = TorchBackend(cpu_plan())
    q, k, v = qkv()
    out = be.attention(q, k, v, window)
    gq, gk, gv = torch.autograd.grad(out.square().sum(), (q, k, v))
    q2, k2, v2 = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    ref = reference(q2, k2, v2, window)
    rq, rk, rv = torch.autograd.grad(ref.square().sum(), (q2, k2, v2))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    for a, b in ((gq, rq), (gk, rk), (gv, rv)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_window_convention_counts_w_plus_one_keys():
    m = window_mask(10, 3)
    assert m[9].sum() == 4 and m[9, 6:].all() and not m[9, 5]  # itself + 3 before
    assert m[2].sum() == 3  # near the start: only what exists
    assert int(m.sum()) == attended_pairs(10, 3)
    assert int(window_mask(10, None).sum()) == attended_pairs(10, None) == 55
    assert attended_pairs(10, 9) == 55  # a window covering everything is full causal


def test_window_zero_attends_only_to_itself():
    be = TorchBackend(cpu_plan())
    q, k, v = qkv(T=8)
    out = be.attention(q, k, v, 0)
    torch.testing.assert_close(out, v, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("window", [5, 31])
def test_flex_attention_forward_matches_reference_on_cpu(window):
    # torch's flex_attention runs forward on CPU (no backward there); CUDA is tested on the GPU box
    pytest.importorskip("torch.nn.attention.flex_attention")
    be = TorchBackend(cpu_plan(attention="flex"))
    q, k, v = [t.detach() for t in qkv(T=128)]
    try:
        out = be.attention(q, k, v, window)
    except Exception as e:  # pragma: no cover - depends on the torch build
        pytest.skip(f"flex_attention unavailable on this CPU build: {e}")
    torch.testing.assert_close(out, reference(q, k, v, window), atol=1e-5, rtol=1e-4)


def test_flop_logging_pass_skips_the_kernel_but_keeps_shapes_and_grads():
    be = TorchBackend(cpu_plan())
    be.attention_log = []
    q, k, v = qkv(T=16)
    out = be.attention(q, k, v, 3)
    assert out.shape == v.shape
    out.sum().backward()
    assert q.grad is not None
    assert be.attention_log == [(6, 16, attended_pairs(16, 3))]
