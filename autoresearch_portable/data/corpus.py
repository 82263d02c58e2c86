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
bits-per-byte any model can reach on it in expectation (`floor_bpb`). `parse_document` re-derives
the choices from a text by re-running the same grammar against it (backtracking search over the
choices, pruned by the text); the tests use it to show that every sampled document has exactly one
parse and that its bits match.

Rule for anyone editing the grammar: every choice must become visible in the text of the same
document, and never clamp or merge outcomes after drawing (draw from the set that is actually
possible). Bump GENERATOR_VERSION on any change to the output.
"""

from __future__ import annotations

import hashlib
import math
from random import Random
from typing import Callable, Iterable, Sequence

from autoresearch_portable.data import words as W

GENERATOR_VERSION = 1
TRAIN_SEED = 0
VAL_SEED = 1

_LOG2 = [0.0] + [math.log2(n) for n in range(1, 4097)]


def _log2(n: int) -> float:
    return _LOG2[n] if n < len(_LOG2) else math.log2(n)


# ---------------------------------------------------------------------------------------------
# Menus: a fixed list of distinct options with optional integer weights.
# ---------------------------------------------------------------------------------------------


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
            self.bits = [_log2(self.n)] * self.n
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


def _plural(word: str) -> tuple[str, str]:
    if "/" in word:
        s, p = word.split("/")
        return s, p
    if word.endswith(("s", "x", "ch", "sh", "z")):
        return word, word + "es"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word, word[:-1] + "ies"
    return word, word + "s"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiouAEIOU" else "a"


def _cap(word: str) -> str:
    return word[0].upper() + word[1:]


_GIRLS = len(W.GIRL_NAMES)
NAMES = Menu(W.GIRL_NAMES + W.BOY_NAMES)
SURNAMES = Menu(W.SURNAMES)
PET_NAMES = Menu(W.PET_NAMES)
TOWN_PRE = Menu(W.TOWN_PREFIXES)
TOWN_SUF = Menu(W.TOWN_SUFFIXES)
SETTLEMENTS = Menu(W.SETTLEMENTS)
_animals = [_plural(a) for a in W.ANIMALS]
ANIMAL = Menu([s for s, _ in _animals])
ANIMAL_PL = Menu([p for _, p in _animals])
_objects = [_plural(o) for o in W.OBJECTS]
OBJ = Menu([s for s, _ in _objects])
OBJ_PL = Menu([p for _, p in _objects])
OBJ_CAP = Menu([_cap(s) for s, _ in _objects])
A_OBJ = Menu([f"{_article(s)} {s}" for s, _ in _objects])
ADJ = Menu(W.ADJECTIVES)
ADJ_CAP = Menu([_cap(a) for a in W.ADJECTIVES])
A_ADJ = Menu([f"{_article(a)} {a}" for a in W.ADJECTIVES])
COLORS = Menu(W.COLORS)
COLORS_CAP = Menu([_cap(c) for c in W.COLORS])
FLAVORS = Menu(W.FLAVORS)
DISHES = Menu(W.DISHES)
PLACES = Menu(W.PLACES)
SPOTS = Menu(W.SPOTS)
SPOT_PREPS = Menu(W.SPOT_PREPS)
CONTAINERS = Menu(W.CONTAINERS)
A_PROF = Menu([f"{_article(p)} {p}" for p in W.PROFESSIONS])
VERBS = Menu(W.VERBS)
ADVERBS = Menu(W.ADVERBS)
MOVE_VERBS = Menu(W.MOVE_VERBS)
TIMES = Menu(W.TIMES)
FEELINGS = Menu(W.FEELINGS)
EXCLAMATIONS = Menu(W.EXCLAMATIONS)
HOME_ENDINGS = Menu(W.HOME_ENDINGS)
A_HOUSE = Menu([f"{_article(a)} {a}" for a in W.HOUSE_ADJECTIVES])
_buildings = [_plural(b) for b in W.BUILDINGS]
BUILDINGS_PL = [p for _, p in _buildings]
MONTHS = Menu(W.MONTHS)
LIST_KINDS = Menu(W.LIST_KINDS)
NUMBER_WORDS = W.NUMBER_WORDS
SIBLINGS = Menu(
    [f"{NUMBER_WORDS[n]} {k}{'s' if n > 1 else ''}" for k in ("brother", "sister") for n in range(1, 5)]
)
LOST_VERBS = Menu(["lost", "gave away", "sold", "broke", "dropped"])
COUNT_FOODS = Menu("buns muffins cookies biscuits rolls tarts pies dumplings pancakes cupcakes".split())
TRAY_CONTAINERS = Menu(["trays", "boxes", "baskets", "plates", "bags", "jars"])

# Town names are prefix+suffix; all combinations must be distinct strings.
_towns = [p + s for p in W.TOWN_PREFIXES for s in W.TOWN_SUFFIXES]
if len(set(_towns)) != len(_towns):  # pragma: no cover - guards edits to words.py
    raise ValueError("two town prefix+suffix combinations spell the same name")
# Episode openings that start with a character's name are told apart by their second word.
_RESERVED_VERBS = {"had", "made", "baked", "counted", "remembered", "found", "was", "often", "went"}
if _RESERVED_VERBS & set(W.VERBS):  # pragma: no cover
    raise ValueError("VERBS must not contain words that open other episode kinds")
if any(t.startswith("In the end") for t in W.TIMES):  # pragma: no cover
    raise ValueError("a time phrase collides with the story closing")

_NUM_MENUS: dict[tuple[int, int], Menu] = {}


def _num_menu(lo: int, hi: int) -> Menu:
    m = _NUM_MENUS.get((lo, hi))
    if m is None:
        m = _NUM_MENUS[(lo, hi)] = Menu([str(i) for i in range(lo, hi + 1)])
    return m


# ---------------------------------------------------------------------------------------------
# The two choosers: Writer draws (generation), Oracle replays a script against a text (parsing).
# ---------------------------------------------------------------------------------------------


class Writer:
    """Makes every random choice of one document and accounts its information in `bits`."""

    __slots__ = ("_rb", "out", "bits", "choices")

    def __init__(self, seed: int, record: bool = False):
        self._rb = Random(seed).getrandbits
        self.out: list[str] = []
        self.bits = 0.0
        self.choices: list[int] | None = [] if record else None

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
        self.bits += _log2(n)
        if self.choices is not None:
            self.choices.append(i)
        return i

    def pick_w(self, weights: Sequence[int]) -> int:
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
        if self.choices is not None:
            self.choices.append(i)
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
        if self.choices is not None:
            self.choices.append(i)
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
            self.bits += _log2(m)
            if self.choices is not None:
                self.choices.append(i)
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
        return lo + self.word(_num_menu(lo, hi))


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
        self.bits += _log2(n)
        return i

    def pick_w(self, weights: Sequence[int]) -> int:
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
            self.bits += _log2(m)
        self.emit(menu.options[i])
        return i

    def word_list(self, options: Sequence[str]) -> int:
        n = len(options)
        if n < 2:
            self.emit(options[0])
            return 0
        i = self._take(lambda: self._text_cands(options))
        self.bits += _log2(n)
        self.emit(options[i])
        return i

    def num(self, lo: int, hi: int) -> int:
        return lo + self.word(_num_menu(lo, hi))


# ---------------------------------------------------------------------------------------------
# The grammar. `g` is a Writer or an _Oracle; nothing here may read randomness from elsewhere.
# ---------------------------------------------------------------------------------------------

_PRONOUNS = (("she", "her", "her", "She", "Her"), ("he", "him", "his", "He", "His"))
FACT_KINDS = ("age", "color", "food", "pet", "home", "siblings", "lucky")


class _Char:
    __slots__ = ("idx", "name", "subj", "obj", "pos", "Subj", "Pos", "facts")

    def __init__(self, idx: int):
        self.idx = idx
        self.name = NAMES.options[idx]
        self.subj, self.obj, self.pos, self.Subj, self.Pos = _PRONOUNS[0 if idx < _GIRLS else 1]
        self.facts: dict[str, object] = {}


def _new_char(g, chars: list[_Char]) -> _Char:
    c = _Char(g.word_ex(NAMES, {c.idx for c in chars}))
    chars.append(c)
    return c


def _town(g) -> str:
    a = g.word(TOWN_PRE)
    b = g.word(TOWN_SUF)
    return TOWN_PRE.options[a] + TOWN_SUF.options[b]


def _fact(g, c: _Char, kind: str, subj: str, pos: str) -> None:
    """One sentence stating a fact about c; subj/pos are how the sentence names c."""
    f = c.facts
    if kind == "age":
        g.emit(f" {subj} was ")
        f["age"] = g.num(6, 90)
        g.emit(" years old.")
    elif kind == "color":
        g.emit(f" {pos} favourite color was ")
        f["color"] = COLORS.options[g.word(COLORS)]
        g.emit(".")
    elif kind == "food":
        g.emit(f" {pos} favourite food was ")
        a = FLAVORS.options[g.word(FLAVORS)]
        g.emit(" ")
        f["food"] = a + " " + DISHES.options[g.word(DISHES)]
        g.emit(".")
    elif kind == "pet":
        g.emit(f" {subj} had a pet ")
        animal = g.word(ANIMAL)
        g.emit(" named ")
        f["pet"] = (animal, PET_NAMES.options[g.word(PET_NAMES)])
        g.emit(".")
    elif kind == "home":
        g.emit(f" {subj} lived in ")
        g.word(A_HOUSE)
        g.emit(" house near the ")
        f["home"] = PLACES.options[g.word(PLACES)]
        g.emit(".")
    elif kind == "siblings":
        g.emit(f" {subj} had ")
        f["siblings"] = SIBLINGS.options[g.word(SIBLINGS)]
        g.emit(".")
    else:  # lucky
        g.emit(f" {pos} lucky number was ")
        f["lucky"] = g.num(1, 99)
        g.emit(".")


def _facts(g, c: _Char, k: int, subj: str, pos: str) -> None:
    kinds = list(FACT_KINDS)
    for _ in range(k):
        _fact(g, c, kinds.pop(g.pick(len(kinds))), subj, pos)


def _count_words(n: int) -> str:
    return ", ".join(NUMBER_WORDS[1 : n + 1])


def _and_list(items: list[str]) -> str:
    if len(items) == 2:
        return f"{items[0]} and {items[1]}"
    return ", ".join(items[:-1]) + ", and " + items[-1]


def _who(g, chars: list[_Char], exclude: _Char | None = None) -> _Char:
    cands = [c for c in chars if c is not exclude]
    return cands[g.word_list([c.name for c in cands])]


_QUESTIONS = {
    "age": ("how old are you?", lambda c: f"I am {c.facts['age']} years old"),
    "color": ("what is your favourite color?", lambda c: f"It is {c.facts['color']}"),
    "food": ("what is your favourite food?", lambda c: f"I love {c.facts['food']}"),
    "pet": (None, lambda c: c.facts["pet"][1]),
    "home": ("where do you live?", lambda c: f"Near the {c.facts['home']}"),
    "siblings": ("do you have any brothers or sisters?", lambda c: f"I have {c.facts['siblings']}"),
    "lucky": ("what is your lucky number?", lambda c: f"It is {c.facts['lucky']}"),
}

_RECALL = {
    "age": lambda c: f"{c.name} was {c.facts['age']} years old",
    "color": lambda c: f"{c.name}'s favourite color was {c.facts['color']}",
    "food": lambda c: f"{c.name}'s favourite food was {c.facts['food']}",
    "pet": lambda c: f"{c.name} had a {ANIMAL.options[c.facts['pet'][0]]} named {c.facts['pet'][1]}",
    "home": lambda c: f"{c.name} lived near the {c.facts['home']}",
    "siblings": lambda c: f"{c.name} had {c.facts['siblings']}",
    "lucky": lambda c: f"{c.name}'s lucky number was {c.facts['lucky']}",
}

EPISODES = (
    ("travel", 3), ("find", 3), ("add", 2), ("sub", 2), ("bake", 2), ("count", 2), ("ask", 4),
    ("recall", 3), ("market", 2), ("action", 4), ("age", 2), ("exclaim", 2),
)


def _episode_find(g, c: _Char, chars: list[_Char], title: tuple[int, int] | None) -> None:
    """The rest of a finding sentence after the finder's name; `title` fixes what is found."""
    if title is None:
        g.emit(" found ")
        g.word(A_ADJ)
        g.emit(" ")
        g.word(OBJ)
    else:
        adj = ADJ.options[title[0]]
        g.emit(f" found {_article(adj)} {adj} {OBJ.options[title[1]]}")
    g.emit(" ")
    g.word(SPOT_PREPS)
    g.emit(" the ")
    g.word(SPOTS)
    g.emit(".")
    others = len(chars) > 1
    k = g.pick(3 if others else 2)
    if k == 0:
        g.emit(f" {c.Subj} took it home.")
    elif k == 1:
        g.emit(f" {c.Subj} put it in {c.pos} ")
        g.word(CONTAINERS)
        g.emit(".")
    else:
        g.emit(f" {c.Subj} gave it to ")
        _who(g, chars, exclude=c)
        g.emit(".")


def _episode(g, kind: str, chars: list[_Char]) -> None:
    if kind == "travel":
        g.word(TIMES)
        g.emit(", ")
        c = _who(g, chars)
        g.emit(" ")
        g.word(MOVE_VERBS)
        g.emit(" to the ")
        g.word(PLACES)
        company = g.pick(2) if len(chars) > 1 else 0
        if company:
            g.emit(" with ")
            _who(g, chars, exclude=c)
        g.emit(". There they saw " if company else f". There {c.subj} saw ")
        n = 2 + g.pick(11)
        g.emit(NUMBER_WORDS[n] + " ")
        g.word(ADJ)
        g.emit(" ")
        g.word(ANIMAL_PL)
        g.emit(".")
    elif kind == "find":
        g.word(TIMES)
        g.emit(", ")
        c = _who(g, chars)
        _episode_find(g, c, chars, None)
    elif kind == "add":
        c = _who(g, chars)
        g.emit(" had ")
        a = g.num(2, 20)
        g.emit(" ")
        o = g.word(OBJ_PL)
        g.emit(".")
        if len(chars) > 1 and g.pick(2):
            g.emit(" ")
            _who(g, chars, exclude=c)
            g.emit(f" gave {c.obj} ")
        else:
            g.emit(f" {c.Subj} found ")
        b = g.num(1, 20)
        g.emit(f" more, so now {c.subj} had {a + b} {OBJ_PL.options[o]}.")
    elif kind == "sub":
        c = _who(g, chars)
        g.emit(" had ")
        a = g.num(3, 30)
        g.emit(" ")
        g.word(OBJ_PL)
        g.emit(f". {c.Subj} ")
        g.word(LOST_VERBS)
        g.emit(" ")
        b = g.num(1, a - 1)
        left = a - b
        g.emit(f" of them, so {left} {'was' if left == 1 else 'were'} left.")
    elif kind == "bake":
        c = _who(g, chars)
        g.emit(" baked ")
        a = g.num(2, 9)
        g.emit(" ")
        g.word(TRAY_CONTAINERS)
        g.emit(" of ")
        f = g.word(COUNT_FOODS)
        g.emit(", with ")
        b = g.num(2, 9)
        g.emit(
            f" in each. That made {a * b} {COUNT_FOODS.options[f]} in all."
        )
    elif kind == "count":
        c = _who(g, chars)
        g.emit(" counted the ")
        a = g.word(ANIMAL_PL)
        n = 2 + g.pick(9)
        pl = ANIMAL_PL.options[a]
        g.emit(f": {_count_words(n)}. There were {NUMBER_WORDS[n]} {pl}.")
    elif kind == "ask":
        askable = [c for c in chars if c.facts]
        z = askable[g.word_list(['"' + c.name + ", " for c in askable])]
        kinds = [k for k in FACT_KINDS if k in z.facts]
        kind_i = g.pick(len(kinds))
        fk = kinds[kind_i]
        q, ans = _QUESTIONS[fk]
        if q is None:
            q = f"what is your {ANIMAL.options[z.facts['pet'][0]]} called?"
        g.emit(q + '" asked ')
        _who(g, chars, exclude=z)
        g.emit(f'. "{ans(z)}," said {z.name}.')
    elif kind == "recall":
        ys = [c for c in chars if any(d.facts and d is not c for d in chars)]
        y = ys[g.word_list([c.name for c in ys])]
        g.emit(" remembered that ")
        known = [c for c in chars if c.facts and c is not y]
        z = known[g.word_list([c.name for c in known])]
        kinds = [k for k in FACT_KINDS if k in z.facts]
        fk = kinds[g.pick(len(kinds))]
        g.emit(_RECALL[fk](z)[len(z.name) :] + ".")
    elif kind == "market":
        g.emit("At the market, ")
        c = _who(g, chars)
        g.emit(" bought ")
        k = 2 + g.pick(4)
        used: set[int] = set()
        for j in range(k):
            if j:
                g.emit(" and " if (k == 2) else (", and " if j == k - 1 else ", "))
            used.add(g.word_ex(A_OBJ, used))
        g.emit(f". {c.Subj} carried {NUMBER_WORDS[k]} things home.")
    elif kind == "action":
        c = _who(g, chars)
        g.emit(" ")
        g.word(VERBS)
        g.emit(" the ")
        g.word(ADJ)
        g.emit(" ")
        g.word(OBJ)
        g.emit(" ")
        g.word(ADVERBS)
        g.emit(".")
    elif kind == "age":
        aged = [c for c in chars if "age" in c.facts]
        x = aged[g.word_list([c.name for c in aged])]
        others = [c for c in aged if c is not x]
        y = others[g.pick(len(others))]
        d = x.facts["age"] - y.facts["age"]
        if d == 0:
            g.emit(f" was the same age as {y.name}.")
        else:
            g.emit(f" was {abs(d)} {'year' if abs(d) == 1 else 'years'} {'older' if d > 0 else 'younger'} than {y.name}.")
    else:  # exclaim
        g.emit('"')
        g.word(EXCLAMATIONS)
        g.emit('" said ')
        c = _who(g, chars)
        g.emit(f". {c.Subj} felt ")
        g.word(FEELINGS)
        g.emit(".")


def _available(kind: str, chars: list[_Char]) -> bool:
    if kind == "ask":
        return len(chars) > 1 and any(c.facts for c in chars)
    if kind == "recall":
        return any(any(d.facts and d is not c for d in chars) for c in chars)
    if kind == "age":
        return sum(1 for c in chars if "age" in c.facts) >= 2
    return True


def _story(g) -> None:
    g.emit("The ")
    ta = g.word(ADJ_CAP)
    g.emit(" ")
    to = g.word(OBJ_CAP)
    g.emit("\n\n")
    chars: list[_Char] = []
    form = g.pick(3)
    if form == 0:
        g.emit("Once upon a time, in the ")
        g.word(SETTLEMENTS)
        g.emit(" of ")
        _town(g)
        g.emit(", there lived ")
        g.word(A_PROF)
        g.emit(" named ")
        hero = _new_char(g, chars)
        g.emit(".")
    elif form == 1:
        g.emit("There was once ")
        g.word(A_PROF)
        g.emit(" named ")
        hero = _new_char(g, chars)
        g.emit(" who lived in the ")
        g.word(SETTLEMENTS)
        g.emit(" of ")
        _town(g)
        g.emit(".")
    else:
        hero = _new_char(g, chars)
        g.emit(" was ")
        g.word(A_PROF)
        g.emit(" in the ")
        g.word(SETTLEMENTS)
        g.emit(" of ")
        _town(g)
        g.emit(".")
    _facts(g, hero, 2 + g.pick(4), hero.Subj, hero.Pos)

    for _ in range(1 + g.pick(3)):
        form = g.pick(3)
        if form == 0:
            g.emit(f"\n\n{hero.name} had a friend named ")
        elif form == 1:
            g.emit(f"\n\n{hero.name} often visited ")
        else:
            g.emit(f"\n\nOne of {hero.name}'s friends was ")
        f = _new_char(g, chars)
        g.emit(", ")
        g.word(A_PROF)
        g.emit(" who lived nearby." if form == 1 else ".")
        _facts(g, f, 1 + g.pick(3), f.name, f.name + "'s")

    g.emit("\n\n")
    g.word(TIMES)
    g.emit(", " + hero.name)
    _episode_find(g, hero, chars, (ta, to))
    for _ in range(g.pick(20)):
        g.emit("\n\n")
        avail = [(k, w) for k, w in EPISODES if _available(k, chars)]
        i = g.pick_w([w for _, w in avail])
        _episode(g, avail[i][0], chars)

    g.emit(f"\n\nIn the end, {hero.name} went home ")
    if "pet" in hero.facts:
        animal, pet = hero.facts["pet"]
        g.emit(f"to {hero.pos} {ANIMAL.options[animal]}, {pet}.")
    else:
        g.emit("and ")
        g.word(HOME_ENDINGS)
        g.emit(".")
    g.emit("\n\nThe End.")


_TOWN_FACTS = tuple(f"b:{i}" for i in range(len(BUILDINGS_PL))) + (
    "mayor", "river", "founded", "people", "festival",
)


def _town_doc(g) -> None:
    g.emit("Facts about ")
    town = _town(g)
    g.emit(":\n")
    kinds = list(_TOWN_FACTS)
    stated: list[str] = []
    facts: dict[str, object] = {}
    for _ in range(3 + g.pick(6)):
        k = kinds.pop(g.pick(len(kinds)))
        stated.append(k)
        g.emit("- ")
        if k.startswith("b:"):
            g.emit(f"{town} has ")
            facts[k] = g.num(2, 40)
            g.emit(f" {BUILDINGS_PL[int(k[2:])]}.\n")
        elif k == "mayor":
            g.emit("The mayor is ")
            first = NAMES.options[g.word(NAMES)]
            g.emit(" ")
            facts[k] = first + " " + SURNAMES.options[g.word(SURNAMES)]
            g.emit(".\n")
        elif k == "river":
            g.emit("The river is called the ")
            facts[k] = COLORS_CAP.options[g.word(COLORS_CAP)]
            g.emit(" River.\n")
        elif k == "founded":
            g.emit(f"{town} was founded ")
            facts[k] = g.num(20, 900)
            g.emit(" years ago.\n")
        elif k == "people":
            facts[k] = g.num(100, 9999)
            g.emit(f" people live in {town}.\n")
        else:
            g.emit("Every ")
            month = MONTHS.options[g.word(MONTHS)]
            g.emit(f", {town} holds a ")
            facts[k] = (month, FLAVORS.options[g.word(FLAVORS)])
            g.emit(" festival.\n")
    g.emit("Questions:\n")
    blds = [k for k in stated if k.startswith("b:")]
    qs = list(stated) + (["total"] if len(blds) >= 2 else [])
    for _ in range(2 + g.pick(min(5, len(qs) - 1))):
        k = qs.pop(g.pick(len(qs)))
        g.emit("Q: ")
        if k == "total":
            b1 = blds[g.pick(len(blds))]
            rest = [b for b in blds if b != b1]
            b2 = rest[g.pick(len(rest))]
            n1, n2 = BUILDINGS_PL[int(b1[2:])], BUILDINGS_PL[int(b2[2:])]
            g.emit(f"How many {n1} and {n2} does {town} have together?\nA: {facts[b1] + facts[b2]}.\n")
        elif k.startswith("b:"):
            g.emit(f"How many {BUILDINGS_PL[int(k[2:])]} does {town} have?\nA: {facts[k]}.\n")
        elif k == "mayor":
            g.emit(f"Who is the mayor of {town}?\nA: {facts[k]}.\n")
        elif k == "river":
            g.emit(f"What is the river called?\nA: The {facts[k]} River.\n")
        elif k == "founded":
            g.emit(f"How old is {town}?\nA: {facts[k]} years old.\n")
        elif k == "people":
            g.emit(f"How many people live in {town}?\nA: {facts[k]}.\n")
        else:
            month, flavor = facts[k]
            g.emit(f"When is the {flavor} festival?\nA: In {month}.\n")
    g.emit("End of questions.")


def _list_doc(g) -> None:
    g.word(NAMES)
    g.emit("'s ")
    g.word(LIST_KINDS)
    g.emit(" list:\n")
    used: set[int] = set()
    items: list[tuple[int, int, int]] = []
    for _ in range(5 + g.pick(12)):
        g.emit("- ")
        n = g.num(1, 12)
        g.emit(" ")
        o = g.word_ex(OBJ if n == 1 else OBJ_PL, used)
        used.add(o)
        g.emit(" at ")
        price = g.num(1, 9)
        g.emit(f" {'coin' if price == 1 else 'coins'} each = {n * price} {'coin' if n * price == 1 else 'coins'}\n")
        items.append((n, o, price))
    total = sum(n for n, _, _ in items)
    cost = sum(n * p for n, _, p in items)
    best = max(n for n, _, _ in items)
    top = next(o for n, o, _ in items if n == best)
    g.emit(f"Total: {total} things.\nTotal cost: {cost} coins.\nMost: {OBJ_PL.options[top]}.\nEnd of list.")


_PROBLEMS = (("add", 3), ("sub", 3), ("mul", 3), ("countby", 2), ("bigger", 2))


def _practice_doc(g) -> None:
    g.emit("Math practice, page ")
    g.num(1, 99)
    g.emit(":\n")
    for i in range(8 + g.pick(18)):
        g.emit(f"{i + 1}. ")
        kind = _PROBLEMS[g.pick_w([w for _, w in _PROBLEMS])][0]
        if kind == "add":
            a = g.num(0, 99)
            g.emit(" + ")
            b = g.num(0, 99)
            g.emit(f" = {a + b}\n")
        elif kind == "sub":
            a = g.num(0, 99)
            g.emit(" - ")
            b = g.num(0, a)
            g.emit(f" = {a - b}\n")
        elif kind == "mul":
            a = g.num(1, 12)
            g.emit(" x ")
            b = g.num(1, 12)
            g.emit(f" = {a * b}\n")
        elif kind == "countby":
            g.emit("Count by ")
            s = g.num(2, 10)
            g.emit(" from ")
            a = g.num(0, 20)
            t = 3 + g.pick(6)
            g.emit(": " + ", ".join(str(a + s * j) for j in range(t)) + ".\n")
        else:
            g.emit("Which is bigger, ")
            a = g.num(0, 999)
            g.emit(" or ")
            b = g.word_ex(_num_menu(0, 999), {a})
            g.emit(f"? {max(a, b)}.\n")
    g.emit("End of practice.")


DOC_KINDS = ((_story, 6), (_town_doc, 2), (_list_doc, 1), (_practice_doc, 1))
CLOSINGS = ("\n\nThe End.", "End of questions.", "End of list.", "End of practice.")


def _document(g) -> None:
    i = g.pick_w([w for _, w in DOC_KINDS])
    DOC_KINDS[i][0](g)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def document_seed(seed: int, index: int) -> int:
    """The PRNG seed of one document: 256 bits of sha256("<seed>:<index>"). (Seeding Random with
    plain small integers is not enough: Random(2) and Random(2**32 + 2) give the same stream.)"""
    if seed < 0 or index < 0:
        raise ValueError("seed and index must be non-negative")
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode("ascii")).digest(), "big")


def generate_document(seed: int, index: int, record: bool = False):
    """Document `index` of stream `seed`: (text, bits), or (text, bits, choices) with record."""
    g = Writer(document_seed(seed, index), record)
    _document(g)
    text = "".join(g.out)
    if record:
        return text, g.bits, g.choices
    return text, g.bits


def generate_range(seed: int, start: int, stop: int) -> tuple[list[str], list[float]]:
    texts, bits = [], []
    for i in range(start, stop):
        t, b = generate_document(seed, i)
        texts.append(t)
        bits.append(b)
    return texts, bits


def iter_documents(seed: int, start: int = 0) -> Iterable[tuple[str, float]]:
    i = start
    while True:
        yield generate_document(seed, i)
        i += 1


def replay(text: str, script: list[int]) -> float:
    """Re-run the grammar with the given choices against `text`; returns the bits, or raises
    ValueError if the choices do not produce exactly this text."""
    o = _Oracle(text, list(script))
    try:
        _document(o)
    except (_Mismatch, _Need) as e:
        raise ValueError("choices do not reproduce the text") from e
    if o.pos != len(text) or o.k != len(script):
        raise ValueError("choices do not reproduce the text")
    return o.bits


def parse_document(text: str, max_parses: int = 2, max_runs: int = 200_000) -> list[tuple[list[int], float]]:
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
        o = _Oracle(text, script)
        try:
            _document(o)
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


def stream_digest(seed: int, n_docs: int) -> str:
    """sha256 over the UTF-8 bytes of the first n_docs documents of a stream, each followed by NUL."""
    h = hashlib.sha256()
    for i in range(n_docs):
        h.update(generate_document(seed, i)[0].encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()
