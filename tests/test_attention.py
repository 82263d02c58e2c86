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


class _Tiny(torch.nn.Module):
    """One attention layer and a head; `attend(q, k, v, window)` is how it calls attention."""

    def __init__(self, attend, vocab=32, dim=32, heads=2, window=None):
        super().__init__()
        self.attend, self.heads, self.window = attend, heads, window
        self.emb = torch.nn.Embedding(vocab, dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim, bias=False)
        self.head = torch.nn.Linear(dim, vocab, bias=False)

    def forward(self, idx, targets):
        B, T = idx.shape
        q, k, v = self.qkv(self.emb(idx)).view(B, T, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        y = self.attend(q, k, v, self.window).transpose(1, 2).reshape(B, T, -1)
        return torch.nn.functional.cross_entropy(self.head(y).flatten(0, 1), targets.flatten())


@pytest.mark.parametrize("window", [None, 3])
def test_attention_flops_count_however_train_py_calls_attention(window):
    """A train.py that calls scaled_dot_product_attention itself (under any name) is counted like
    one that calls K.attention: the pairs its mask allows, with the one formula."""
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    from autoresearch_portable.backends.base import attention_flops

    T, heads, dim = 16, 2, 32
    be = TorchBackend(cpu_plan(attention="flex"))  # a block-sparse plan counts the same pairs

    def direct(q, k, v, w):
        if w is None:
            return sdpa(q, k, v, is_causal=True)
        return sdpa(q, k, v, attn_mask=window_mask(T, w))

    def additive(q, k, v, w):  # a float mask: -inf where a pair is not attended
        mask = torch.zeros(T, T).masked_fill(~window_mask(T, w), float("-inf"))
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    counts = [be.train_flops_per_token(_Tiny(f, dim=dim, heads=heads, window=window), T, 32)
              for f in (be.attention, direct, additive)]
    want = attention_flops(heads, dim // heads, attended_pairs(T, window)) / T
    for c in counts:
        assert c["attention_flops_per_token"] == pytest.approx(want)
        assert c["matmul_flops_per_token"] == pytest.approx(counts[0]["matmul_flops_per_token"])
    assert counts[0]["matmul_flops_per_token"] > 0


def test_rotary_matches_the_templates_formula():
    be = TorchBackend(cpu_plan())
    x = torch.randn(2, 3, 10, 8)
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, 8, 2, dtype=torch.float32) / 8))
    angles = torch.outer(torch.arange(10, dtype=torch.float32), inv_freq)
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., :4], x[..., 4:]
    want = torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)
    torch.testing.assert_close(be.rotary(x, 10000.0), want)


def test_grad_scaler_is_a_pass_through_unless_float16():
    be = TorchBackend(cpu_plan())
    scaler = be.grad_scaler()
    assert not scaler.is_enabled()
    loss = torch.tensor(2.0)
    assert scaler.scale(loss) is loss
    fp16 = Plan(**{**cpu_plan().__dict__, "dtype": "float16", "dtype_mode": "autocast", "grad_scaler": True})
    assert TorchBackend(fp16).grad_scaler().is_enabled()
