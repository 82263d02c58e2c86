"""What corpus v2's knowledge base leaves unlearned at a given compute: a lower bound on the excess
over the entropy floor that no model trained with C FLOPs can go below (issue 12, item 2).

Why a bound and not only a fit. The excess of a real training run is the sum of parts learned at
very different speeds: the short-range grammar is mostly learned within a CPU's budget, the facts of
rare entities are not learned at any budget a CPU reaches. A power law fitted over a CPU sweep
extrapolates the fast part; the slow part is known exactly from the generator. The argument:

* a model stores at most BITS_PER_PARAM = 2 bits of knowledge per parameter (Allen-Zhu & Li,
  "Physics of Language Models, Part 3.3", 2024: ~2 bits/param across architectures after ~1000
  exposures per fact, less with fewer), and it can only know an entity it has read about: one
  whose expected number of fact statements in its D training tokens is at least 1;
* with N parameters and C FLOPs it reads D = C / (6 N) tokens; the best it can do is to know the
  entities with the most stated bits per bit of storage (popularity x share / information), until
  its 2N bits are full or the entities it has read about run out;
* each fact it does not know costs it at least log2(number of values) bits (a uniform guess: the
  values are uniform draws); so the excess per byte is at least the sum over kinds of (the kind's
  knowledge-base bits per byte) x (the popularity mass of the entities it does not know);
* the bound is the minimum of that over all N: no split of C into parameters and tokens does better.

Generous to the model everywhere (perfect popularity order, one reading suffices, no capacity spent
on grammar), so the real excess is higher. Pure functions; `shares()` measures the per-kind rates
from documents of the generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autoresearch_portable.data import corpus2, kb

BITS_PER_PARAM = 2.0
FLOPS_PER_PARAM_TOKEN = 6.0


@dataclass(frozen=True)
class Share:
    """One entity kind's part of the text: knowledge-base bits and first fact statements per byte."""

    tag: int
    bits_per_byte: float
    facts_per_byte: float


class StatsWriter(corpus2.Writer2):
    """corpus2.Writer2 that also counts, for each fact a document states for the first time, log2 of
    the number of values its attribute has (`kb_bits`): what a model that knows nothing of the
    knowledge base pays at least on top of `bits` (statistics only; not part of the floor).
    `by_kind` splits it per entity kind (tag -> [bits, facts])."""

    def __init__(self, seed: int):
        super().__init__(seed)
        self.kb_bits = 0.0
        self.by_kind: dict[int, list] = {}
        self._facts: set[tuple] = set()

    def fact(self, kind: kb.EntityKind, rank: int, attr: int) -> str:
        if (kind.tag, rank, attr) not in self._facts:
            self._facts.add((kind.tag, rank, attr))
            bits = math.log2(kind.attrs[attr].n)
            self.kb_bits += bits
            tally = self.by_kind.setdefault(kind.tag, [0.0, 0])
            tally[0] += bits
            tally[1] += 1
        return super().fact(kind, rank, attr)


def document_stats(seed: int, index: int) -> dict:
    """UTF-8 bytes, floor bits and knowledge-base bits (StatsWriter.kb_bits, .by_kind) of one document."""
    doc = StatsWriter(corpus2.document_seed(seed, index))
    corpus2.chronicle(doc)
    return {"bytes": len("".join(doc.out).encode("utf-8")), "bits": doc.bits, "kb_bits": doc.kb_bits,
            "kb_by_kind": doc.by_kind}


def shares(seed: int = corpus2.VAL_SEED, n_docs: int = 2000) -> list[Share]:
    """Per-kind rates over the first n_docs documents of a stream (deterministic)."""
    nbytes, tally = 0, {k.tag: [0.0, 0] for k in kb.KINDS}
    for i in range(n_docs):
        st = document_stats(seed, i)
        nbytes += st["bytes"]
        for tag, (bits, facts) in st["kb_by_kind"].items():
            tally[tag][0] += bits
            tally[tag][1] += facts
    return [Share(tag, b / nbytes, f / nbytes) for tag, (b, f) in tally.items()]


def _kind(tag: int) -> kb.EntityKind:
    return next(k for k in kb.KINDS if k.tag == tag)


def unknown_excess(shares_: list[Share], capacity_bits: float, seen_bytes: float) -> float:
    """The knowledge-base excess (bits per byte) of the best model with `capacity_bits` of storage
    that has read `seen_bytes` bytes of training text: it stores whole entities, the most stated
    bits per stored bit first (a fractional knapsack over the popularity bins, so greedy is optimal),
    and only entities it has read about (expected fact statements >= 1)."""
    bins = []  # (excess bits per byte saved per stored bit, entities, bits per entity, saved per entity)
    for s in shares_:
        kind = _kind(s.tag)
        z, info = kind.zipf, kind.info_bits() / kind.count
        for size, q in zip(z.size, z.q):
            p = q / z.total  # one entity's share of its kind's mentions
            if s.facts_per_byte * seen_bytes * p < 1:
                break  # this bin and all rarer ones were never read about
            bins.append((s.bits_per_byte * p / info, size, info, s.bits_per_byte * p))
    excess, left = sum(s.bits_per_byte for s in shares_), capacity_bits
    for _, size, info, saved in sorted(bins, reverse=True):
        if left <= 0:
            break
        n = min(size, left / info)
        excess -= n * saved
        left -= n * info
    return max(excess, 0.0)


def excess_bound(flops: float, shares_: list[Share], bytes_per_token: float) -> tuple[float, float]:
    """(the lowest knowledge-base excess any model trained with `flops` reaches, its parameters)."""
    best = (math.inf, 0.0)
    for i in range(121):  # N from 1e4 to 1e10 parameters, 20 per decade
        n = 10 ** (4 + i / 20)
        tokens = flops / (FLOPS_PER_PARAM_TOKEN * n)
        if tokens < 1:
            break
        e = unknown_excess(shares_, BITS_PER_PARAM * n, tokens * bytes_per_token)
        best = min(best, (e, n))
    return best
