"""BPE tokenizer: trained with rustbpe, served by a tiktoken `Encoding`.

The vocabulary is the trained byte-level merges (ids 0..n-1, by merge rank) plus one special token,
`<|bos|>`, with id n. On disk it is one JSON file: the split pattern and the token bytes in rank
order, base64-encoded (so any byte string survives, including tokens that are not valid UTF-8 on
their own).

Token byte lengths (`token_bytes`), which turn a loss in nats per token into bits per byte, come
from each token's raw bytes (`Encoding.decode_single_token_bytes`), never from decoding it to text:
a token holding part of a multi-byte character would decode to U+FFFD (3 bytes) and miscount.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

BOS_TOKEN = "<|bos|>"
TOKENIZER_FORMAT = 1
# GPT-4 style pre-tokenization, with numbers split into runs of at most two digits.
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s+"""
)
MIN_VOCAB = 257  # 256 byte tokens + BOS


class Tokenizer:
    """tiktoken-backed tokenizer with a BOS token. `vocab_size` counts BOS."""

    def __init__(self, ranks: list[bytes], pattern: str, name: str = "arp"):
        import tiktoken

        if len(ranks) < 256:
            raise ValueError("a byte-level BPE vocabulary has at least 256 tokens")
        self.ranks = list(ranks)
        self.pattern = pattern
        self.bos_id = len(self.ranks)
        self.vocab_size = self.bos_id + 1
        self.encoding = tiktoken.Encoding(
            name=name,
            pat_str=pattern,
            mergeable_ranks={b: i for i, b in enumerate(self.ranks)},
            special_tokens={BOS_TOKEN: self.bos_id},
            explicit_n_vocab=self.vocab_size,
        )

    # -- encoding --------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no BOS; special-token text is encoded as ordinary text)."""
        return self.encoding.encode_ordinary(text)

    def encode_batch(self, texts: list[str], num_threads: int | None = None) -> list[list[int]]:
        return self.encoding.encode_ordinary_batch(texts, num_threads=num_threads or _threads())

    def decode(self, ids: Iterable[int]) -> str:
        return self.encoding.decode(list(int(i) for i in ids))

    def token_bytes(self) -> np.ndarray:
        """int32[vocab_size]: the raw byte length of every token; 0 for BOS."""
        out = np.zeros(self.vocab_size, dtype=np.int32)
        dec = self.encoding.decode_single_token_bytes
        for i in range(self.bos_id):
            out[i] = len(dec(i))
        return out

    # -- persistence -----------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "format": TOKENIZER_FORMAT,
            "pattern": self.pattern,
            "bos_token": BOS_TOKEN,
            "ranks": [base64.b64encode(b).decode("ascii") for b in self.ranks],
        }

    @classmethod
    def from_json(cls, obj: dict, name: str = "arp") -> "Tokenizer":
        if obj.get("format") != TOKENIZER_FORMAT or obj.get("bos_token") != BOS_TOKEN:
            raise ValueError("unsupported tokenizer file")
        return cls([base64.b64decode(s) for s in obj["ranks"]], obj["pattern"], name=name)

    @classmethod
    def load(cls, path: str | os.PathLike, name: str = "arp") -> "Tokenizer":
        with open(path, "r", encoding="utf-8") as f:
            return cls.from_json(json.load(f), name=name)


def _threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def train_tokenizer(
    texts: Iterator[str] | Iterable[str], vocab_size: int, pattern: str = SPLIT_PATTERN, name: str = "arp"
) -> Tokenizer:
    """Train byte-level BPE with rustbpe on `texts` to `vocab_size` tokens including BOS (fewer if
    the text runs out of pairs to merge)."""
    import rustbpe

    if vocab_size < MIN_VOCAB:
        raise ValueError(f"vocab_size must be at least {MIN_VOCAB}")
    bpe = rustbpe.Tokenizer()
    bpe.train_from_iterator(iter(texts), vocab_size - 1, pattern=pattern)
    pairs = sorted(((int(r), bytes(b)) for b, r in bpe.get_mergeable_ranks()))
    if [r for r, _ in pairs] != list(range(len(pairs))):
        raise RuntimeError("rustbpe returned non-contiguous merge ranks")
    return Tokenizer([b for _, b in pairs], bpe.get_pattern(), name=name)


def save_tokenizer(tok: Tokenizer, path: str | os.PathLike) -> None:
    from autoresearch_portable.fsutil import atomic_write_text

    atomic_write_text(Path(path), json.dumps(tok.to_json()) + "\n")
