"""The MLX backend's kernels and services against the torch backend's (the reference), on mlx's
CPU device. The window convention (w = the query and the w keys before it) must be the same."""

from __future__ import annotations

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")
torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from autoresearch_portable.backends import load_backend  # noqa: E402
from autoresearch_portable.backends.base import attended_pairs  # noqa: E402
from autoresearch_portable.backends.mlx import MLXBackend, window_mask  # noqa: E402
from autoresearch_portable.backends.torch_common import TorchBackend  # noqa: E402
from autoresearch_portable.backends.torch_common import window_mask as torch_window_mask  # noqa: E402
from autoresearch_portable.detect.plan import Plan  # noqa: E402


def make_plan(backend="mlx", dtype="float32", compile=False) -> Plan:
    return Plan(
        backend=backend, device="cpu", dtype=dtype, dtype_mode="none" if dtype == "float32" else "explicit",
        grad_scaler=False, attention="mlx_fast" if backend == "mlx" else "sdpa_mask", compile=compile,
        pin_memory=False, peak_flops=None, peak_flops_source="test",
    )


@pytest.fixture(scope="module")
def K():
    return MLXBackend(make_plan())


@pytest.fixture(scope="module")
def KT():
    return TorchBackend(make_plan("cpu"))


def test_load_backend_selects_mlx_on_its_cpu_device():
    k = load_backend(make_plan())
    assert isinstance(k, MLXBackend) and k.name == "mlx"
    assert k.device == mx.cpu and mx.default_device() == mx.cpu
    assert k.dtype == mx.float32


@pytest.mark.parametrize("T", [1, 7, 16])
@pytest.mark.parametrize("window", [None, 0, 1, 3, 5, 14, 15, 16, 40])
def test_window_mask_matches_torch_and_attended_pairs(T, window):
    m = np.array(window_mask(T, window))
    np.testing.assert_array_equal(m, torch_window_mask(T, window).numpy())
    assert int(m.sum()) == attended_pairs(T, window)


@pytest.mark.parametrize("window", [None, 0, 1, 5, 30, 31, 64])
def test_attention_matches_torch_backend(K, KT, window):
    B, H, T, D = 2, 2, 32, 16
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((B, H, T, D)).astype(np.float32) for _ in range(3))
    out_t = KT.attention(*(torch.from_numpy(a) for a in (q, k, v)), window).numpy()
    out_m = np.array(K.attention(*(mx.array(a) for a in (q, k, v)), window))
    np.testing.assert_allclose(out_m, out_t, rtol=1e-4, atol=1e-5)


def test_attention_never_sees_later_keys(K):
    B, H, T, D = 1, 1, 16, 8
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((B, H, T, D)).astype(np.float32) for _ in range(3))
    for window in (None, 3):
        base = np.array(K.attention(mx.array(q), mx.array(k), mx.array(v), window))
        k2, v2 = k.copy(), v.copy()
        k2[..., 10:, :] += 5.0
        v2[..., 10:, :] -= 5.0
        moved = np.array(K.attention(mx.array(q), mx.array(k2), mx.array(v2), window))
        np.testing.assert_allclose(moved[..., :10, :], base[..., :10, :], rtol=1e-6, atol=1e-6)
        assert np.abs(moved[..., 10:, :] - base[..., 10:, :]).max() > 0.1


def test_window_masks_are_cached(K):
    q = mx.zeros((1, 1, 12, 4))
    K.attention(q, q, q, 3)
    first = K._masks[(12, 3)]
    K.attention(q, q, q, 3)
    assert K._masks[(12, 3)] is first


def test_rms_norm_matches_torch(K):
    x = np.random.default_rng(2).standard_normal((3, 5, 64)).astype(np.float32) * 3
    np.testing.assert_allclose(np.array(K.rms_norm(mx.array(x))), F.rms_norm(torch.from_numpy(x), (64,)).numpy(),
                               rtol=1e-5, atol=1e-6)
    xb = mx.array(x).astype(mx.bfloat16)
    assert K.rms_norm(xb).dtype == mx.bfloat16


def test_rotary_matches_torch_template_formula(K):
    """train_template.py: angles = pos * base^(-2i/D) in fp32; (x1*cos + x2*sin, x2*cos - x1*sin)."""
    B, H, T, D, base = 2, 3, 20, 32, 10000.0
    x = np.random.default_rng(3).standard_normal((B, H, T, D)).astype(np.float32)
    inv_freq = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
    angles = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)
    cos, sin = angles.cos()[None, None], angles.sin()[None, None]
    xt = torch.from_numpy(x)
    x1, x2 = xt[..., : D // 2], xt[..., D // 2 :]
    ref = torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1).numpy()
    np.testing.assert_allclose(np.array(K.rotary(mx.array(x), base)), ref, rtol=1e-4, atol=2e-5)


def test_rotary_is_the_same_on_both_backends(K, KT):
    x = np.random.default_rng(4).standard_normal((1, 2, 12, 16)).astype(np.float32)
    np.testing.assert_allclose(np.array(K.rotary(mx.array(x), 500.0)), KT.rotary(torch.from_numpy(x), 500.0).numpy(),
                               rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("window", [None, 3])
def test_attention_flops_count_however_train_py_calls_attention(K, window):
    """mx.fast.scaled_dot_product_attention called directly counts like K.attention: the pairs
    its mask allows ("causal", a boolean mask, an additive one), with the one formula."""
    import mlx.nn as nn

    from autoresearch_portable.backends.base import attention_flops

    T, heads, dim = 16, 2, 32

    class Tiny(nn.Module):
        def __init__(self, how):
            super().__init__()
            self.how = how
            self.qkv = nn.Linear(dim, 3 * dim, bias=False)

        def __call__(self, idx):
            x = mx.zeros((idx.shape[0], T, dim))
            q, k, v = self.qkv(x).reshape(1, T, 3, heads, -1).transpose(2, 0, 3, 1, 4)
            scale = (dim // heads) ** -0.5
            if self.how == "backend":
                return K.attention(q, k, v, window)
            mask = "causal" if window is None else window_mask(T, window)
            if self.how == "additive" and window is not None:
                mask = mx.where(mask, 0.0, float("-inf"))
            return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=mask)

    want = attention_flops(heads, dim // heads, attended_pairs(T, window)) / T
    for how in ("backend", "direct", "additive"):
        c = K.train_flops_per_token(Tiny(how), T, 32)
        assert c["attention_flops_per_token"] == pytest.approx(want), how
        assert c["matmul_flops_per_token"] == pytest.approx(6 * 3 * dim * dim), how


def test_to_device_and_forward_logits(K):
    rows = np.arange(2 * 9, dtype=np.uint16).reshape(2, 9)
    x, y = K.to_device(rows)
    assert x.dtype == mx.int32 and x.shape == (2, 8) and y.shape == (2, 8)
    np.testing.assert_array_equal(np.array(y), rows[:, 1:])

    class Bigram:
        def __call__(self, idx):
            return (idx[..., None] == mx.arange(5)).astype(mx.bfloat16) * 2  # (B, T, 5) one-hot, bf16

    logits = K.forward_logits(Bigram(), rows[:, :-1] % 5)
    assert isinstance(logits, np.ndarray) and logits.dtype == np.float32 and logits.shape == (2, 8, 5)


class TinyLM:
    """A deterministic causal 'model': logits from a fixed table of (previous, current) token."""

    def __init__(self, vocab, seed=0):
        self.table = mx.array(np.random.default_rng(seed).standard_normal((vocab, vocab)).astype(np.float32))
        self.calls = []

    def __call__(self, idx):
        self.calls.append(idx.shape)
        return self.table[idx] * 2.0


def test_row_scores_chunked_equal_unchunked_and_skip_zero_byte_targets(K):
    vocab, B, T = 50, 7, 12
    rng = np.random.default_rng(5)
    rows = rng.integers(0, vocab, size=(B, T + 1))
    token_bytes = rng.integers(1, 4, size=vocab)
    token_bytes[[0, 3, 7]] = 0  # specials: skipped
    model = TinyLM(vocab)
    nats_all, bytes_all = K.score_rows(model, rows, token_bytes, max_logit_bytes=2**30)[:2]
    assert model.calls == [(B, T)]
    # a bound of two rows of fp32 logits: four chunks, never a bigger logits buffer
    model.calls.clear()
    nats_c, bytes_c = K.score_rows(model, rows, token_bytes, max_logit_bytes=2 * T * vocab * 4)[:2]
    assert model.calls == [(2, T)] * 3 + [(1, T)]
    np.testing.assert_allclose(nats_c, nats_all, rtol=1e-6)
    np.testing.assert_array_equal(bytes_c, bytes_all)
    # the same numbers computed directly in numpy
    logits = np.array(model.table)[rows[:, :-1]] * 2.0
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    targets = rows[:, 1:]
    nll = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
    keep = token_bytes[targets] > 0
    np.testing.assert_allclose(nats_all, (nll * keep).sum(1), rtol=1e-5)
    np.testing.assert_array_equal(bytes_all, token_bytes[targets].sum(1))


def test_row_scores_match_torch_backend(K, KT):
    vocab, B, T = 30, 4, 10
    rng = np.random.default_rng(6)
    rows = rng.integers(0, vocab, size=(B, T + 1))
    token_bytes = rng.integers(0, 3, size=vocab)
    table = rng.standard_normal((vocab, vocab)).astype(np.float32)
    m_nats, m_bytes = K.score_rows(lambda idx: mx.array(table)[idx], rows, token_bytes, 10**9)[:2]
    t_nats, t_bytes = KT.score_rows(lambda idx: torch.from_numpy(table)[idx], rows, token_bytes, 10**9)[:2]
    np.testing.assert_allclose(m_nats, t_nats, rtol=1e-5)
    np.testing.assert_array_equal(m_bytes, t_bytes)


def test_compile_follows_plan():
    def f(a):
        return a * 2 + 1

    assert MLXBackend(make_plan(compile=False)).compile(f) is f
    compiled = MLXBackend(make_plan(compile=True)).compile(f)
    assert compiled is not f
    assert np.array(compiled(mx.array([1.0, 2.0]))).tolist() == [3.0, 5.0]
    mx.set_default_device(mx.cpu)


def test_device_services(K):
    with K.autocast():
        pass
    assert K.grad_scaler() is None
    K.reset_peak_memory()
    a = mx.ones((256, 256))
    mx.eval(a @ a)
    K.synchronize()
    assert K.peak_memory_bytes() > 0
    assert K.matmul_flops(64, "float32") > 0
