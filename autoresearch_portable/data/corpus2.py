"""Bundled corpus v2: chronicles (grammar2.py) over a large fixed knowledge base (kb.py), built so
that bigger models and more tokens keep lowering the loss, with an exact entropy floor.

What the floor means in v2. A document's `bits` is the information of the choices the Writer made
for it: structure, wording, numbers, which v1 documents to embed (exactly as in v1), which entity a
mention names (-log2 of its Zipf probability) and which attribute it states. The *value* of a fact
is not a choice: it is fixed by the knowledge base, the same in every document, so it adds 0 bits.
`bits` is therefore -log2 P(text | knowledge base), and floor_bpb = sum(bits) / sum(UTF-8 bytes) is
the lowest bits per byte that any model reaches in expectation *if it knows the whole knowledge
base*: a true lower bound for every model, reached only by one that has memorized all 1.15e9 bits of
it (kb.info_bits()). A model's excess over the floor is then what it has not learned yet, and most
of it, at scale, is the facts of rarer entities: exactly what should keep falling with more
parameters and more tokens. (The floor of v1 is the same definition with an empty knowledge base.)

Determinism: document `i` of stream `seed` comes from its own `random.Random`, seeded with
sha256("v2:<seed>:<i>"), through integer-only draws (corpus.Writer's rejection sampling, the Zipf
draw of kb.Zipf), no float formatting, no hash(), no set iteration: any range of indices can be
generated anywhere, independently and in any order, byte-identical on every machine.

Bump GENERATOR_VERSION_V2 (common.py) on any change to the output of grammar2.py, kb.py or the
v1 grammar it embeds.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from autoresearch_portable.data.common import GENERATOR_VERSION_V2, TRAIN_SEED, VAL_SEED
from autoresearch_portable.data import corpus
from autoresearch_portable.data.corpus import Writer
from autoresearch_portable.data.grammar2 import CLOSING, chronicle
from autoresearch_portable.data.kb import EntityKind, value_text
from autoresearch_portable.data.menus import log2

__all__ = ["CLOSING", "GENERATOR_VERSION_V2", "TRAIN_SEED", "VAL_SEED", "Writer2", "document_seed", "document_stats",
           "generate_document", "generate_range", "stream_digest"]


class Writer2(Writer):
    """corpus.Writer plus the draw of a knowledge-base entity and the lookup of its facts.
    `kb_bits` counts, for each fact the document states for the first time, log2 of the number of
    values its attribute has: what a model that knows nothing of the knowledge base pays at least
    on top of `bits` (statistics only; not part of the floor). `by_kind` splits it per entity kind
    (tag -> [bits, facts]), for benchmarks/capacity.py."""

    __slots__ = ("kb_bits", "by_kind", "_facts")

    def __init__(self, seed: int, record: bool = False):
        super().__init__(seed, record)
        self.kb_bits = 0.0
        self.by_kind: dict[int, list] = {}
        self._facts: list[tuple] = []

    def fact(self, kind: EntityKind, rank: int, attr: int) -> str:
        """The knowledge base's value of a fact, as text: fixed, so it costs no bits."""
        key = (kind.tag, rank, attr)
        if key not in self._facts:
            self._facts.append(key)
            bits = log2(kind.attrs[attr].n)
            self.kb_bits += bits
            tally = self.by_kind.setdefault(kind.tag, [0.0, 0])
            tally[0] += bits
            tally[1] += 1
        return value_text(kind, rank, attr)

    def entity(self, kind: EntityKind, used: Sequence[int] = ()) -> int:
        """Draw an entity of `kind` by popularity (Zipf), excluding the ranks in `used`, and write
        its name. Rejection keeps the probabilities exact: P(r) = w(r) / (total - w(used))."""
        z = kind.zipf
        rank = z.rank_of(self._below(z.total))
        while rank in used:
            rank = z.rank_of(self._below(z.total))
        self.bits += z.bits(rank, used)
        if self.choices is not None:
            self.choices.append(rank)
        self.out.append(kind.name(rank))
        return rank


def document_seed(seed: int, index: int) -> int:
    """The PRNG seed of one v2 document (a different stream from v1's for the same seed)."""
    return corpus.document_seed(seed, index, stream="v2:")


def generate_document(seed: int, index: int, record: bool = False):
    """Document `index` of stream `seed`: (text, bits), or (text, bits, choices) with record."""
    return corpus.write(Writer2(document_seed(seed, index), record), chronicle, record)


def document_stats(seed: int, index: int) -> dict:
    """UTF-8 bytes, floor bits and knowledge-base bits (Writer2.kb_bits, .by_kind) of one document."""
    doc = Writer2(document_seed(seed, index))
    chronicle(doc)
    return {"bytes": len("".join(doc.out).encode("utf-8")), "bits": doc.bits, "kb_bits": doc.kb_bits,
            "kb_by_kind": doc.by_kind}


def generate_range(seed: int, start: int, stop: int) -> tuple[list[str], list[float]]:
    """Documents [start, stop) of a stream: texts and bits (what a worker process generates)."""
    texts, bits = [], []
    for i in range(start, stop):
        t, b = generate_document(seed, i)
        texts.append(t)
        bits.append(b)
    return texts, bits


def stream_digest(seed: int, n_docs: int) -> str:
    """sha256 over the UTF-8 bytes of the first n_docs documents of a stream, each followed by NUL."""
    h = hashlib.sha256()
    for i in range(n_docs):
        h.update(generate_document(seed, i)[0].encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()
