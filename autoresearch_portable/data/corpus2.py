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

from typing import Sequence

from autoresearch_portable.data.common import GENERATOR_VERSION_V2, TRAIN_SEED, VAL_SEED
from autoresearch_portable.data import corpus
from autoresearch_portable.data.corpus import Writer
from autoresearch_portable.data.grammar2 import CLOSING, chronicle
from autoresearch_portable.data.kb import EntityKind, value_text

__all__ = ["CLOSING", "GENERATOR_VERSION_V2", "TRAIN_SEED", "VAL_SEED", "Writer2", "document_seed", "generate_document"]


class Writer2(Writer):
    """corpus.Writer plus the draw of a knowledge-base entity and the lookup of its facts."""

    __slots__ = ()

    def fact(self, kind: EntityKind, rank: int, attr: int) -> str:
        """The knowledge base's value of a fact, as text: fixed, so it costs no bits."""
        return value_text(kind, rank, attr)

    def entity(self, kind: EntityKind, used: Sequence[int] = ()) -> int:
        """Draw an entity of `kind` by popularity (Zipf), excluding the ranks in `used`, and write
        its name. Rejection keeps the probabilities exact: P(r) = w(r) / (total - w(used))."""
        z = kind.zipf
        rank = z.rank_of(self._below(z.total))
        while rank in used:
            rank = z.rank_of(self._below(z.total))
        self.bits += z.bits(rank, used)
        self.out.append(kind.name(rank))
        return rank


def document_seed(seed: int, index: int) -> int:
    """The PRNG seed of one v2 document (a different stream from v1's for the same seed)."""
    return corpus.document_seed(seed, index, stream="v2:")


def generate_document(seed: int, index: int) -> tuple[str, float]:
    """Document `index` of stream `seed`: (text, bits)."""
    doc = Writer2(document_seed(seed, index))
    chronicle(doc)
    return "".join(doc.out), doc.bits
