"""Bundled corpus v2 run backwards, for the tests: corpus_parse's exhaustive search over the
choices, with an oracle that also knows the knowledge base. An entity's name in the text is read
back into its rank (read_name), so the search never enumerates millions of names;
a fact's value is not a choice (it is the knowledge base's), so the oracle only checks that the
text says it. Finding exactly one parse, with the recorded bits, shows that the text determines
every choice given the knowledge base: the v2 floor (corpus2.py) is exact."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

import corpus_parse
from corpus_parse import _Mismatch, _Oracle
from autoresearch_portable.data import corpus2
from autoresearch_portable.data.grammar2 import chronicle
from autoresearch_portable.data.kb import KINDS, EntityKind, value_text


# a kind's name read back (the other way of kb.EntityKind's spell), by the kind's tag
_NAME = {1: re.compile(r"(\w+) (\w+) of (\w+)"), 2: re.compile(r"the (\w+) (\w+) of (\w+)")}


@lru_cache(maxsize=None)
def _part_index(tag: int) -> list[dict[str, int]]:
    kind = next(k for k in KINDS if k.tag == tag)
    return [{w: i for i, w in enumerate(p)} for p in kind.parts]


def rank_of_parts(kind: EntityKind, idx: Sequence[int]) -> int | None:
    """The rank whose name is made of the parts `idx`: the name is an affine bijection of the rank
    onto the product of the part lists, so it inverts. None beyond the population."""
    code = 0
    for p, i in zip(kind.parts, idx):
        code = code * len(p) + i
    rank = ((code - kind.add) * pow(kind.mul, -1, kind.space)) % kind.space
    return rank if rank < kind.count else None


def read_name(kind: EntityKind, text: str, pos: int) -> tuple[int, int] | None:
    """(rank, end) of the entity of `kind` whose name starts text[pos:], or None if none does."""
    m = _NAME[kind.tag].match(text, pos)
    if m is None:
        return None
    idx = [ix.get(g) for ix, g in zip(_part_index(kind.tag), m.groups())]
    if None in idx:
        return None
    rank = rank_of_parts(kind, idx)
    return None if rank is None else (rank, m.end())


class _Recording2(corpus_parse.Recording, corpus2.Writer2):
    pass


def recorded(seed: int, index: int):
    """Document `index` of stream `seed` as corpus2.generate_document writes it, with its choices:
    (text, bits, choices)."""
    return corpus_parse.recorded(seed, index, _Recording2, corpus2.document_seed, chronicle)


class _Oracle2(_Oracle):
    __slots__ = ()

    def entity(self, kind: EntityKind, used: Sequence[int] = ()) -> int:
        def candidates() -> list[int]:
            found = read_name(kind, self.t, self.pos)
            return [found[0]] if found is not None and found[0] not in used else []

        rank = self._take(candidates)
        if rank in used:
            raise _Mismatch
        self.bits += kind.zipf.bits(rank, used)
        self.emit(kind.name(rank))
        return rank

    def fact(self, kind: EntityKind, rank: int, attr: int) -> str:
        return value_text(kind, rank, attr)


def replay(text: str, script: list[int]) -> float:
    """The bits of `text` under the given choices (ValueError if they do not write exactly it)."""
    return corpus_parse.replay(text, script, grammar=chronicle, oracle=_Oracle2)


def parse_document(text: str, max_parses: int = 2, max_runs: int = 400_000) -> list[tuple[list[int], float]]:
    """Every choice sequence (up to `max_parses`) under which grammar2 writes exactly `text`."""
    return corpus_parse.parse_document(text, max_parses, max_runs, grammar=chronicle, oracle=_Oracle2)
