"""The bundled corpus: a seeded generator of English-like documents with a known entropy floor.

Four kinds of document, all ending in a closing line that appears nowhere else in any document
("The End.", "End of questions.", "End of list.", "End of practice."):

* **stories** (60%): a title naming an object the hero finds in the first scene, characters with
  names, jobs and facts (age, favourite colour and food, pet, home, siblings, lucky number) stated
  early and used later (dialogue that asks about them, characters who remember them, age
  comparisons, a closing line that returns to the pet), travel, counting, lists, small arithmetic;
* **town fact sheets** (20%): facts about a town, then questions whose answers are those facts
  (and sums of them);
* **lists** (10%): items with counts and prices, their totals and the largest entry;
* **maths practice** (10%): sums, differences, products, counting by steps, comparisons.

Determinism. Document `i` of stream `seed` is written from its own `random.Random`, seeded with
sha256("<seed>:<i>") read as an integer, through integer-only draws (`getrandbits` with rejection
sampling), with no float formatting, no `hash()` and no set iteration anywhere on the path, so the
text is byte-identical on every OS and Python >= 3.10. Train and validation use different seeds
(TRAIN_SEED, VAL_SEED).

Entropy floor. Every random decision goes through one `Writer` method that draws uniformly (or with
explicit integer weights) and adds -log2(p) of the outcome to the document's `bits`. The grammar is
written so that the text determines every choice (no two choice sequences give the same text; no
document is a prefix of another, thanks to the unique closing line), so `bits` is exactly
-log2 P(text): the sum of `bits` over a split divided by its UTF-8 byte count is the lowest
bits-per-byte any model can reach on it in expectation (`floor_bpb`). `parse_document` of
tests/corpus_parse.py re-derives the choices from a text by re-running the same grammar against it
(backtracking search over the choices, pruned by the text); the tests use it to show that every
sampled document has exactly one parse and that its bits match.

Where things are: words.py (word lists), menus.py (menus of options and their bits), story.py
(stories and their episodes), grammar.py (the other kinds and the choice of kind), this file (the
Writer that draws the choices, and the public API), tests/corpus_parse.py (the parser the tests use).

Rule for anyone editing the grammar: every choice must become visible in the text of the same
document, and never clamp or merge outcomes after drawing (draw from the set that is actually
possible). Bump GENERATOR_VERSION (common.py) on any change to the output.
"""

from __future__ import annotations

import hashlib
import math
from random import Random
from typing import Sequence

from autoresearch_portable.data.common import GENERATOR_VERSION, TRAIN_SEED, VAL_SEED
from autoresearch_portable.data.grammar import CLOSINGS, document
from autoresearch_portable.data.menus import Menu, log2, num_menu

__all__ = ["CLOSINGS", "GENERATOR_VERSION", "TRAIN_SEED", "VAL_SEED", "Writer", "document_seed", "generate_document"]


class Writer:
    """Makes every random choice of one document and accounts its information in `bits`."""

    __slots__ = ("_rb", "out", "bits")

    def __init__(self, seed: int):
        self._rb = Random(seed).getrandbits
        self.out: list[str] = []
        self.bits = 0.0

    def _below(self, n: int) -> int:
        k = (n - 1).bit_length()
        rb = self._rb
        r = rb(k)
        while r >= n:
            r = rb(k)
        return r

    def emit(self, s: str) -> None:
        self.out.append(s)

    def pick(self, n: int) -> int:
        """Uniform structural choice among n outcomes."""
        if n < 2:
            return 0
        i = self._below(n)
        self.bits += log2(n)
        return i

    def pick_weighted(self, weights: Sequence[int]) -> int:
        """Structural choice with explicit positive integer weights."""
        n = len(weights)
        if n < 2:
            return 0
        total = sum(weights)
        r = self._below(total)
        i = 0
        acc = weights[0]
        while r >= acc:
            i += 1
            acc += weights[i]
        self.bits += math.log2(total / weights[i])
        return i

    def word(self, menu: Menu) -> int:
        """Choose an option of `menu` and write it."""
        if menu.n < 2:
            self.out.append(menu.options[0])
            return 0
        if menu.cum is None:
            i = self._below(menu.n)
        else:
            r = self._below(menu.total)
            cum = menu.cum
            i = 0
            while r >= cum[i]:
                i += 1
        self.bits += menu.bits[i]
        self.out.append(menu.options[i])
        return i

    def word_ex(self, menu: Menu, used: set[int]) -> int:
        """Choose uniformly among the options of a uniform `menu` not in `used`, and write it."""
        m = menu.n - len(used)
        if m < 2:
            i = next(j for j in range(menu.n) if j not in used)
        else:
            i = self._below(menu.n)
            while i in used:
                i = self._below(menu.n)
            self.bits += log2(m)
        self.out.append(menu.options[i])
        return i

    def word_list(self, options: Sequence[str]) -> int:
        """Choose uniformly among a list built on the fly (distinct strings), and write it."""
        n = len(options)
        i = self.pick(n)
        self.out.append(options[i])
        return i

    def num(self, lo: int, hi: int) -> int:
        """A uniform integer in [lo, hi], written in digits."""
        return lo + self.word(num_menu(lo, hi))


def document_seed(seed: int, index: int, stream: str = "") -> int:
    """The PRNG seed of one document: 256 bits of sha256("<stream><seed>:<index>") (`stream` keeps
    other corpus versions apart, e.g. "v2:"). (Seeding Random with plain small integers is not
    enough: Random(2) and Random(2**32 + 2) give the same stream.)"""
    if seed < 0 or index < 0:
        raise ValueError("seed and index must be non-negative")
    return int.from_bytes(hashlib.sha256(f"{stream}{seed}:{index}".encode("ascii")).digest(), "big")


def generate_document(seed: int, index: int) -> tuple[str, float]:
    """Document `index` of stream `seed`: (text, bits)."""
    doc = Writer(document_seed(seed, index))
    document(doc)
    return "".join(doc.out), doc.bits
