"""A stand-in dataset of random tokens with any vocab and sequence length, for throughput
benchmarks at configurations no prepared dataset has (e.g. the original's vocab 8192, seq 2048 on
a machine that cannot download climbmix). Speed does not depend on what the tokens say; val_bpb on
it means nothing and is not reported as a result."""

from __future__ import annotations

import numpy as np


class SyntheticDataset:
    def __init__(self, vocab_size: int, seq_len: int, val_rows: int = 256):
        self.name = f"synthetic-v{vocab_size}-t{seq_len}"
        self.meta = {"dataset": self.name}
        self.vocab_size, self.seq_len = vocab_size, seq_len
        self.bos_id = 0
        self.floor_bpb = None
        self.max_val_rows = val_rows
        self.token_bytes = np.full(vocab_size, 3, dtype=np.int32)
        self.token_bytes[0] = 0

    def train_batches(self, batch_size: int, seed: int = 0):
        return _Batches(self.vocab_size, self.seq_len, batch_size, seed)

    def val_rows(self, n_rows: int) -> np.ndarray:
        rng = np.random.default_rng(12345)
        rows = rng.integers(1, self.vocab_size, size=(self.max_val_rows, self.seq_len + 1), dtype=np.int32)
        rows[:, 0] = 0
        return rows[:n_rows]


class _Batches:
    def __init__(self, vocab, seq_len, batch, seed):
        self.rng = np.random.default_rng(seed)
        self.shape = (batch, seq_len + 1)
        self.vocab = vocab
        self.epoch = 0
        self.tokens_served = 0

    def __iter__(self):
        return self

    def __next__(self):
        rows = self.rng.integers(1, self.vocab, size=self.shape, dtype=np.int32)
        rows[:, 0] = 0
        self.tokens_served += rows.shape[0] * (rows.shape[1] - 1)
        return rows
