"""The corpus grammar run backwards, for the tests: `parse_document` finds every choice sequence
under which the grammar writes a given text, `replay` checks one. Nothing outside the tests needs
it; it shows that the text determines every choice, which is what makes the entropy floor exact.

The oracle stands in for corpus.Writer: it replays a script of choices against the target text,
and at the first choice past the script it stops with the outcomes still consistent with the
text, so a depth-first search over those outcomes visits every parse."""

from __future__ import annotations

import hashlib
import math
from typing import Callable, Sequence

from autoresearch_portable.data import corpus
from autoresearch_portable.data.grammar import document
from autoresearch_portable.data.menus import Menu, log2, num_menu


class Recording:
    """Mixed into a corpus writer (corpus.Writer, corpus2.Writer2): it also keeps the outcome of
    every choice that cost bits, in order: what a parse must find."""

    def __init__(self, seed: int):
        super().__init__(seed)
        self.choices: list[int] = []

    def _keep(self, i: int, drawn: bool) -> int:
        if drawn:
            self.choices.append(i)
        return i

    def pick(self, n):
        return self._keep(super().pick(n), n >= 2)

    def pick_weighted(self, weights):
        return self._keep(super().pick_weighted(weights), len(weights) >= 2)

    def word(self, menu):
        return self._keep(super().word(menu), menu.n >= 2)

    def word_ex(self, menu, used):
        return self._keep(super().word_ex(menu, used), menu.n - len(used) >= 2)

    def entity(self, kind, used=()):
        return self._keep(super().entity(kind, used), True)


class _Recording1(Recording, corpus.Writer):
    pass


def recorded(seed: int, index: int, writer: type = _Recording1, seed_of=corpus.document_seed, grammar=document):
    """Document `index` of stream `seed` as corpus.generate_document writes it, with its choices:
    (text, bits, choices)."""
    doc = writer(seed_of(seed, index))
    grammar(doc)
    return "".join(doc.out), doc.bits, doc.choices


def stream_digest(generate, seed: int, n_docs: int) -> str:
    """sha256 over the UTF-8 bytes of the first n_docs documents of a stream, each followed by NUL."""
    h = hashlib.sha256()
    for i in range(n_docs):
        h.update(generate(seed, i)[0].encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()

class _Mismatch(Exception):
    pass


class _Need(Exception):
    def __init__(self, candidates: list[int]):
        self.candidates = candidates


class _Oracle:
    """Replays a prefix of choices against a target text; raises _Need at the first choice past
    the script (with the outcomes still consistent with the text) and _Mismatch on divergence."""

    __slots__ = ("t", "pos", "script", "k", "bits")

    def __init__(self, target: str, script: list[int]):
        self.t = target
        self.pos = 0
        self.script = script
        self.k = 0
        self.bits = 0.0

    def emit(self, s: str) -> None:
        if not self.t.startswith(s, self.pos):
            raise _Mismatch
        self.pos += len(s)

    def _take(self, candidates: Callable[[], list[int]]) -> int:
        if self.k < len(self.script):
            i = self.script[self.k]
            self.k += 1
            return i
        c = candidates()
        if not c:
            raise _Mismatch
        raise _Need(c)

    def _text_cands(self, options: Sequence[str], used: set[int] | None = None) -> list[int]:
        t, pos = self.t, self.pos
        return [j for j, o in enumerate(options) if (not used or j not in used) and t.startswith(o, pos)]

    def pick(self, n: int) -> int:
        if n < 2:
            return 0
        i = self._take(lambda: list(range(n)))
        self.bits += log2(n)
        return i

    def pick_weighted(self, weights: Sequence[int]) -> int:
        n = len(weights)
        if n < 2:
            return 0
        i = self._take(lambda: list(range(n)))
        self.bits += math.log2(sum(weights) / weights[i])
        return i

    def word(self, menu: Menu) -> int:
        if menu.n < 2:
            self.emit(menu.options[0])
            return 0
        i = self._take(lambda: self._text_cands(menu.options))
        self.bits += menu.bits[i]
        self.emit(menu.options[i])
        return i

    def word_ex(self, menu: Menu, used: set[int]) -> int:
        m = menu.n - len(used)
        if m < 2:
            i = next(j for j in range(menu.n) if j not in used)
        else:
            i = self._take(lambda: self._text_cands(menu.options, used))
            self.bits += log2(m)
        self.emit(menu.options[i])
        return i

    def word_list(self, options: Sequence[str]) -> int:
        n = len(options)
        if n < 2:
            self.emit(options[0])
            return 0
        i = self._take(lambda: self._text_cands(options))
        self.bits += log2(n)
        self.emit(options[i])
        return i

    def num(self, lo: int, hi: int) -> int:
        return lo + self.word(num_menu(lo, hi))



def replay(text: str, script: list[int], grammar: Callable = document, oracle: type = _Oracle) -> float:
    """Re-run the grammar with the given choices against `text`; returns the bits, or raises
    ValueError if the choices do not produce exactly this text. (`grammar` and `oracle`: another
    corpus version's, e.g. corpus2_parse's.)"""
    o = oracle(text, list(script))
    try:
        grammar(o)
    except (_Mismatch, _Need) as e:
        raise ValueError("choices do not reproduce the text") from e
    if o.pos != len(text) or o.k != len(script):
        raise ValueError("choices do not reproduce the text")
    return o.bits


def parse_document(text: str, max_parses: int = 2, max_runs: int = 200_000, grammar: Callable = document,
                   oracle: type = _Oracle) -> list[tuple[list[int], float]]:
    """Every choice sequence (up to `max_parses`) under which the grammar writes exactly `text`,
    with its bits. Depth-first search over the choices; each step re-runs the grammar from the
    start with a script of choices and is pruned as soon as the written text departs from `text`.
    A text the generator wrote has exactly one parse if (as designed) the text determines the
    choices."""
    parses: list[tuple[list[int], float]] = []
    stack: list[tuple[list[int], int]] = []  # (candidates, position in candidates)
    runs = 0
    while True:
        runs += 1
        if runs > max_runs:
            raise RuntimeError("parse search exceeded its budget")
        script = [c[k] for c, k in stack]
        o = oracle(text, script)
        try:
            grammar(o)
            if o.pos == len(text):
                parses.append((script, o.bits))
                if len(parses) >= max_parses:
                    return parses
        except _Need as need:
            stack.append((need.candidates, 0))
            continue
        except _Mismatch:
            pass
        while stack and stack[-1][1] == len(stack[-1][0]) - 1:
            stack.pop()
        if not stack:
            return parses
        c, k = stack[-1]
        stack[-1] = (c, k + 1)
