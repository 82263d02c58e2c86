"""Menus of the bundled corpus: fixed lists of distinct options (optionally weighted) built from
the word lists in words.py, and the exact information (bits) of choosing each option."""

from __future__ import annotations

import math
from typing import Sequence

from autoresearch_portable.data import words

_LOG2 = [0.0] + [math.log2(n) for n in range(1, 4097)]


def log2(n: int) -> float:
    """log2 of a positive integer (table lookup for the common small ones)."""
    return _LOG2[n] if n < len(_LOG2) else math.log2(n)


class Menu:
    __slots__ = ("options", "n", "cum", "total", "bits")

    def __init__(self, options: Sequence[str], weights: Sequence[int] | None = None):
        self.options = tuple(options)
        self.n = len(self.options)
        if len(set(self.options)) != self.n:
            dup = sorted({o for o in self.options if self.options.count(o) > 1})
            raise ValueError(f"menu has duplicate options: {dup}")
        if weights is None:
            self.cum = None
            self.total = self.n
            self.bits = [log2(self.n)] * self.n
        else:
            if len(weights) != self.n or any(int(w) != w or w <= 0 for w in weights):
                raise ValueError("weights must be positive integers, one per option")
            self.cum = []
            acc = 0
            for w in weights:
                acc += w
                self.cum.append(acc)
            self.total = acc
            self.bits = [math.log2(acc / w) for w in weights]


def plural(word: str) -> tuple[str, str]:
    if "/" in word:
        s, p = word.split("/")
        return s, p
    if word.endswith(("s", "x", "ch", "sh", "z")):
        return word, word + "es"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word, word[:-1] + "ies"
    return word, word + "s"


def article(word: str) -> str:
    return "an" if word[0] in "aeiouAEIOU" else "a"


def capitalized(word: str) -> str:
    return word[0].upper() + word[1:]


GIRLS = len(words.GIRL_NAMES)
NAMES = Menu(words.GIRL_NAMES + words.BOY_NAMES)
SURNAMES = Menu(words.SURNAMES)
PET_NAMES = Menu(words.PET_NAMES)
TOWN_PRE = Menu(words.TOWN_PREFIXES)
TOWN_SUF = Menu(words.TOWN_SUFFIXES)
SETTLEMENTS = Menu(words.SETTLEMENTS)
_animals = [plural(a) for a in words.ANIMALS]
ANIMAL = Menu([s for s, _ in _animals])
ANIMAL_PL = Menu([p for _, p in _animals])
_objects = [plural(o) for o in words.OBJECTS]
OBJ = Menu([s for s, _ in _objects])
OBJ_PL = Menu([p for _, p in _objects])
OBJ_CAP = Menu([capitalized(s) for s, _ in _objects])
OBJ_WITH_ARTICLE = Menu([f"{article(s)} {s}" for s, _ in _objects])
ADJ = Menu(words.ADJECTIVES)
ADJ_CAP = Menu([capitalized(a) for a in words.ADJECTIVES])
ADJ_WITH_ARTICLE = Menu([f"{article(a)} {a}" for a in words.ADJECTIVES])
COLORS = Menu(words.COLORS)
COLORS_CAP = Menu([capitalized(c) for c in words.COLORS])
FLAVORS = Menu(words.FLAVORS)
DISHES = Menu(words.DISHES)
PLACES = Menu(words.PLACES)
SPOTS = Menu(words.SPOTS)
SPOT_PREPS = Menu(words.SPOT_PREPS)
CONTAINERS = Menu(words.CONTAINERS)
PROFESSION_WITH_ARTICLE = Menu([f"{article(p)} {p}" for p in words.PROFESSIONS])
VERBS = Menu(words.VERBS)
ADVERBS = Menu(words.ADVERBS)
MOVE_VERBS = Menu(words.MOVE_VERBS)
TIMES = Menu(words.TIMES)
FEELINGS = Menu(words.FEELINGS)
EXCLAMATIONS = Menu(words.EXCLAMATIONS)
HOME_ENDINGS = Menu(words.HOME_ENDINGS)
HOUSE_WITH_ARTICLE = Menu([f"{article(a)} {a}" for a in words.HOUSE_ADJECTIVES])
_buildings = [plural(b) for b in words.BUILDINGS]
BUILDINGS_PL = [p for _, p in _buildings]
MONTHS = Menu(words.MONTHS)
LIST_KINDS = Menu(words.LIST_KINDS)
NUMBER_WORDS = words.NUMBER_WORDS
SIBLINGS = Menu(
    [f"{NUMBER_WORDS[n]} {k}{'s' if n > 1 else ''}" for k in ("brother", "sister") for n in range(1, 5)]
)
LOST_VERBS = Menu(["lost", "gave away", "sold", "broke", "dropped"])
COUNT_FOODS = Menu("buns muffins cookies biscuits rolls tarts pies dumplings pancakes cupcakes".split())
TRAY_CONTAINERS = Menu(["trays", "boxes", "baskets", "plates", "bags", "jars"])

# Town names are prefix+suffix; all combinations must be distinct strings.
_towns = [p + s for p in words.TOWN_PREFIXES for s in words.TOWN_SUFFIXES]
if len(set(_towns)) != len(_towns):  # pragma: no cover - guards edits to words.py
    raise ValueError("two town prefix+suffix combinations spell the same name")
# Episode openings that start with a character's name are told apart by their second word.
_RESERVED_VERBS = {"had", "made", "baked", "counted", "remembered", "found", "was", "often", "went"}
if _RESERVED_VERBS & set(words.VERBS):  # pragma: no cover
    raise ValueError("VERBS must not contain words that open other episode kinds")
if any(t.startswith("In the end") for t in words.TIMES):  # pragma: no cover
    raise ValueError("a time phrase collides with the story closing")

_NUM_MENUS: dict[tuple[int, int], Menu] = {}


def num_menu(lo: int, hi: int) -> Menu:
    m = _NUM_MENUS.get((lo, hi))
    if m is None:
        m = _NUM_MENUS[(lo, hi)] = Menu([str(i) for i in range(lo, hi + 1)])
    return m

