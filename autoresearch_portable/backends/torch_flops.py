"""Training FLOPs of a torch model, counted from the real operations of a step.

One forward+backward of one full-length row runs under torch's FlopCounterMode, which counts
every matmul the model really performs. Attention is the exception: what a kernel computes
depends on the kernel (a dense mask computes every pair, a block-sparse kernel skips most of a
window, CPU SDPA reports nothing), so during the count every call of
`torch.nn.functional.scaled_dot_product_attention` is intercepted, however train.py reached it
(through the backend's attention, or directly under any name it imported it by): the pairs its
mask allows are counted with base.attention_flops and a stand-in output of the same shape, still
linked to q, k and v for autograd, replaces the kernel, so nothing of it is counted twice."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from autoresearch_portable.backends.base import attention_flops, causal_pairs


def mask_pairs(queries: int, keys: int, attn_mask=None, is_causal: bool = False) -> float:
    """(query, key) pairs per sequence and head that scaled_dot_product_attention's arguments
    allow: a boolean mask's True entries, a float mask's finite ones (averaged over any batch
    and head axes it has), causal, or all of them."""
    if attn_mask is not None:
        allowed = attn_mask if attn_mask.dtype == torch.bool else torch.isfinite(attn_mask)
        allowed = allowed.expand(*allowed.shape[:-2], queries, keys)
        per = allowed.numel() // (queries * keys)
        return float(allowed.sum().item()) / max(1, per)
    if is_causal:
        return float(causal_pairs(queries, keys))
    return float(queries * keys)


# the Python function train.py calls, and the operator an exported graph calls
SDPA = (F.scaled_dot_product_attention, torch.ops.aten.scaled_dot_product_attention.default)


class _CountAttention(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.flops = 0.0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in SDPA:
            return func(*args, **kwargs)
        return self._stand_in(*args, **kwargs)

    def _stand_in(self, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **_):
        L, S, D = q.size(-2), k.size(-2), q.size(-1)
        pairs = mask_pairs(L, S, attn_mask, is_causal)
        self.flops += attention_flops(q.numel() // (L * D), (D + v.size(-1)) / 2, pairs)
        # the output's shape, linked to q, k and v so that everything before it is counted backward
        return q.new_zeros(*q.shape[:-1], v.size(-1)) + 0 * (q.sum(-1, keepdim=True) + k.sum() + v.sum())


def train_flops_per_token(model, device, seq_len: int, vocab_size: int) -> dict:
    x = torch.randint(0, vocab_size, (1, seq_len), device=device)
    y = torch.randint(0, vocab_size, (1, seq_len), device=device)
    attention = _CountAttention()
    counter = FlopCounterMode(display=False)
    try:
        with counter, attention:
            loss = model(x, y)
            loss.backward()
    finally:
        model.zero_grad(set_to_none=True)
    counts = counter.get_flop_counts().get("Global", {})
    matmul = float(sum(v for op, v in counts.items() if "attention" not in str(op)))
    attn = attention.flops
    return dict(
        flops_per_token=(matmul + attn) / seq_len,
        matmul_flops_per_token=matmul / seq_len,
        attention_flops_per_token=attn / seq_len,
    )


@torch.no_grad()
def forward_matmul_flops_per_token(forward, device, seq_len: int, vocab_size: int, rows: int = 1) -> float:
    """Matmul FLOPs per token of one forward of `forward` (an exported graph) on `rows` random
    full-length rows, attention left out as above. FlopCounterMode counts operators, not
    values, so random tokens cost what real ones do in a graph without control flow."""
    x = torch.randint(0, vocab_size, (rows, seq_len), device=device)
    counter = FlopCounterMode(display=False)
    with counter, _CountAttention():
        forward(x)
    counts = counter.get_flop_counts().get("Global", {})
    return float(sum(v for op, v in counts.items() if "attention" not in str(op))) / (rows * seq_len)
