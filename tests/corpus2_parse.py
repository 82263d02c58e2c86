"""Bundled corpus v2 run backwards, for the tests: corpus_parse's exhaustive search over the
choices, with an oracle that also knows the knowledge base. An entity's name in the text is read
back into its rank (kb.EntityKind.read_name), so the search never enumerates millions of names;
a fact's value is not a choice (it is the knowledge base's), so the oracle only checks that the
text says it. Finding exactly one parse, with the recorded bits, shows that the text determines
every choice given the knowledge base: the v2 floor (corpus2.py) is exact."""

from __future__ import annotations

from typing import Sequence

import corpus_parse
from corpus_parse import _Mismatch, _Oracle
from autoresearch_portable.data.grammar2 import chronicle
from autoresearch_portable.data.kb import EntityKind, value_text


class _Oracle2(_Oracle):
    __slots__ = ()

    def entity(self, kind: EntityKind, used: Sequence[int] = ()) -> int:
        def candidates() -> list[int]:
            found = kind.read_name(self.t, self.pos)
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
