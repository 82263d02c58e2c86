"""Sizing the baseline for a device: pure functions from a measured throughput to the
hyperparameters `arp init` writes into train.py.

The rule: spend the budget's compute C = (effective FLOP/s) x (budget seconds) on the largest
model of a fixed ladder that still sees at least TOKENS_PER_PARAM tokens per parameter (the
original's H100 baseline sees about 10), then cut the tokens into about TARGET_STEPS optimizer
steps (a power of two, at least one row), and the largest device batch that fits memory.

Memory is what the device may use without trouble (`memory_cap`): a GPU's own memory; on a Mac,
Metal's recommended working set, not the RAM, because past it a unified-memory Mac swaps instead
of failing and a too-large batch looks like it fits, only slowly. Where training builds the full
(batch, heads, T, T) attention scores (MPS, MLX) they count too, and no single scores array may
exceed the largest buffer the device allows (MPS aborts past 4 GiB)."""

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


def attention_scores_bytes(dim: int, seq_len: int, dtype_bytes: int) -> float:
    """Bytes of one layer's (heads, T, T) attention scores for one row."""
    return max(1, dim // HEAD_DIM) * seq_len**2 * dtype_bytes


def approx_memory_per_row(depth: int, dim: int, vocab_size: int, seq_len: int, dtype_bytes: int,
                          materialized_attention: bool = False) -> float:
    """Bytes one row of the device batch needs in training. Where attention is not fused, every
    layer keeps its scores and their softmax for backward, and backward builds two more (T, T)
    arrays for the layer it is in: this term grows with T^2 and dominates at long sequences."""
    per_row = approx_memory_per_token(depth, dim, vocab_size, dtype_bytes) * seq_len
    if materialized_attention:
        per_row += 2 * (depth + 1) * attention_scores_bytes(dim, seq_len, dtype_bytes)
    return per_row


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
    materialized_attention: bool = False,
    max_array_bytes: float | None = None,
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
        per_row = approx_memory_per_row(depth, dim, vocab_size, seq_len, dtype_bytes, materialized_attention)
        while device_batch > 1 and device_batch * per_row > MEMORY_FRACTION * memory_bytes:
            device_batch //= 2
    if materialized_attention and max_array_bytes:
        # one layer's scores for the whole device batch are a single array
        while device_batch > 1 and device_batch * attention_scores_bytes(dim, seq_len, dtype_bytes) >= max_array_bytes:
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


# The training split of a generated corpus sized to the device (bundled-v2; `arp prepare`):
TRAIN_TOKENS_MARGIN = 1.5
MAX_SIZED_TRAIN_TOKENS = 1 << 30  # ~2 GiB of uint16 tokens; more only when asked (--train-tokens)


def pow2_ceil(x: float) -> int:
    p = 1
    while p < x:
        p *= 2
    return p


def train_tokens_needed(consumed_tokens: float, at_least: int, margin: float = TRAIN_TOKENS_MARGIN,
                        cap: int = MAX_SIZED_TRAIN_TOKENS) -> int:
    """Training tokens to generate for a baseline that consumes `consumed_tokens` in the budget:
    with `margin`, rounded up to a power of two (so devices of one kind, whose measured rates
    differ a little, get the same split), at least `at_least` (the dataset's default), at most
    `cap`."""
    return int(min(max(cap, at_least), max(at_least, pow2_ceil(consumed_tokens * margin))))
