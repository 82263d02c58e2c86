"""Training FLOPs of an mlx model, counted the way backends/torch_flops.py counts torch models.

mlx has no FLOP counter, so the count comes from the model's shapes: every dense projection (a
module with a 2D weight that is not an embedding) costs 2 FLOPs per weight per token forward and
twice that backward (6 in all). Attention is counted from one forward pass on a full-length row:
while it runs, `mx.fast.scaled_dot_product_attention` is replaced by a wrapper that adds
base.attention_flops for the pairs each call's mask allows ("causal", a boolean mask's True
entries, an additive mask's finite ones, or all pairs) and then calls the real function. So
attention counts alike whether train.py calls it through the backend or through mx.fast itself.
The forward pass only builds mlx's lazy graph: nothing of the model is computed."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn

from autoresearch_portable.backends.base import attention_flops, causal_pairs


def _matmul_weight(module) -> Any:
    """The weight a module multiplies its input by, if it is a dense projection (nn.Linear or
    any non-embedding module with a 2D `weight`); None otherwise. Embeddings are lookups."""
    if isinstance(module, nn.Embedding):
        return None
    w = module.get("weight") if isinstance(module, dict) else None
    if isinstance(w, mx.array) and w.ndim == 2:
        return w
    return None


def mask_pairs(queries: int, keys: int, mask=None) -> float:
    """(query, key) pairs per sequence and head that a scaled_dot_product_attention mask allows."""
    if mask is None:
        return float(queries * keys)
    if isinstance(mask, str):  # "causal"
        return float(causal_pairs(queries, keys))
    allowed = mask if mask.dtype == mx.bool_ else mx.isfinite(mask)
    allowed = mx.broadcast_to(allowed, (*allowed.shape[:-2], queries, keys))
    per = allowed.size // (queries * keys)
    return float(allowed.sum().item()) / max(1, per)


def train_flops_per_token(model, seq_len: int) -> dict:
    matmul = 0.0
    for _, module in model.named_modules():
        w = _matmul_weight(module)
        if w is not None:
            matmul += 6.0 * w.size * seq_len
    real = mx.fast.scaled_dot_product_attention
    attn = 0.0

    def counted(q, k, v, *args, **kwargs):
        nonlocal attn
        mask = kwargs.get("mask", args[1] if len(args) > 1 else None)
        L, S, D = q.shape[-2], k.shape[-2], q.shape[-1]
        attn += attention_flops(q.size // (L * D), (D + v.shape[-1]) / 2, mask_pairs(L, S, mask))
        return real(q, k, v, *args, **kwargs)

    mx.fast.scaled_dot_product_attention = counted
    try:
        model(mx.zeros((1, seq_len), dtype=mx.int32))  # lazy: the graph is built, never evaluated
    finally:
        mx.fast.scaled_dot_product_attention = real
    return dict(
        flops_per_token=(matmul + attn) / seq_len,
        matmul_flops_per_token=matmul / seq_len,
        attention_flops_per_token=attn / seq_len,
    )
