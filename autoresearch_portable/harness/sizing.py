"""Sizing the baseline for a device: pure functions from a measured throughput to the
hyperparameters `arp init` writes into train.py.

The rule: spend the budget's compute C = (effective FLOP/s) x (budget seconds) on the largest
model of a fixed ladder that still sees at least TOKENS_PER_PARAM tokens per parameter (the
original's H100 baseline sees about 10), then cut the tokens into about TARGET_STEPS optimizer
steps (a power of two, at least one row), and the largest device batch that fits memory."""

from __future__ import annotations

# (depth, model_dim): aspect ratio grows with depth as in the original (depth 8 -> 512 wide)
LADDER = [
    (2, 128), (3, 128), (4, 128), (4, 192), (4, 256), (6, 256), (6, 384), (8, 384), (8, 512),
    (10, 640), (12, 768), (16, 1024),
]
HEAD_DIM = 64
TOKENS_PER_PARAM = 10
TARGET_STEPS = 600
MEMORY_FRACTION = 0.6


def matmul_params(depth: int, dim: int, vocab_size: int) -> int:
    """Weights that take part in matmuls (blocks + output head); embeddings are lookups."""
    return 12 * dim * dim * depth + dim * vocab_size


def approx_flops_per_token(depth: int, dim: int, vocab_size: int, seq_len: int) -> float:
    """6 x matmul params, plus causal attention (half the sequence on average, S layers at half)."""
    attn = 12 * dim * (seq_len / 2) * depth * 0.75
    return 6 * matmul_params(depth, dim, vocab_size) + attn


def approx_memory_per_token(depth: int, dim: int, vocab_size: int, dtype_bytes: int) -> float:
    """Activation bytes kept for backward, per token (rough, errs high)."""
    return depth * dim * 12 * dtype_bytes + vocab_size * 10


def pow2_floor(x: float) -> int:
    p = 1
    while p * 2 <= x:
        p *= 2
    return p


def choose_baseline(
    effective_flops: float,
    budget_seconds: float,
    seq_len: int,
    vocab_size: int,
    memory_bytes: float | None,
    dtype_bytes: int = 2,
) -> dict:
    compute = effective_flops * budget_seconds
    depth, dim = LADDER[0]
    for d, w in LADDER:
        tokens = compute / approx_flops_per_token(d, w, vocab_size, seq_len)
        if tokens >= TOKENS_PER_PARAM * matmul_params(d, w, vocab_size):
            depth, dim = d, w
    tokens = compute / approx_flops_per_token(depth, dim, vocab_size, seq_len)
    total_batch = max(seq_len, pow2_floor(tokens / TARGET_STEPS))
    total_batch = max(seq_len, total_batch // seq_len * seq_len)
    rows = total_batch // seq_len
    device_batch = pow2_floor(rows) if rows & (rows - 1) == 0 else 1
    if memory_bytes:
        per_row = approx_memory_per_token(depth, dim, vocab_size, dtype_bytes) * seq_len
        while device_batch > 1 and device_batch * per_row > MEMORY_FRACTION * memory_bytes:
            device_batch //= 2
    return dict(
        DEPTH=depth,
        MODEL_DIM=dim,
        HEAD_DIM=HEAD_DIM,
        DEVICE_BATCH_SIZE=device_batch,
        TOTAL_BATCH_SIZE=device_batch * seq_len * (rows // device_batch),
        expected_steps=int(tokens / total_batch),
        expected_tokens=int(tokens),
    )
