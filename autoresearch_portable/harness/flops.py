"""Training FLOPs counted from the real operations of a step (torch).

One forward+backward of one full-length row runs under torch's FlopCounterMode, which counts
every matmul the model really performs. Attention is the exception: its cost depends on the
kernel (a dense mask computes every pair, a block-sparse kernel skips most of a window, CPU SDPA
reports nothing), so for comparability the backend logs each attention call during the count and
the harness adds the FLOPs of the pairs the causal window actually needs:
4 FLOPs per (query, key) pair and channel forward (QK^T and PV), twice that backward."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def attention_flops(batch_heads: int, head_dim: int, pairs: int) -> float:
    return 3 * 4 * batch_heads * head_dim * pairs


def train_flops_per_token(model, backend, seq_len: int, vocab_size: int) -> dict:
    device = backend.device
    x = torch.randint(0, vocab_size, (1, seq_len), device=device)
    y = torch.randint(0, vocab_size, (1, seq_len), device=device)
    backend.attention_log = []
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            loss = model(x, y)
            loss.backward()
        log = backend.attention_log
    finally:
        backend.attention_log = None
        model.zero_grad(set_to_none=True)
    counts = counter.get_flop_counts().get("Global", {})
    matmul = float(sum(v for op, v in counts.items() if "attention" not in str(op)))
    attn = float(sum(attention_flops(bh, d, pairs) for bh, d, pairs in log))
    return dict(
        flops_per_token=(matmul + attn) / seq_len,
        matmul_flops_per_token=matmul / seq_len,
        attention_flops_per_token=attn / seq_len,
    )
