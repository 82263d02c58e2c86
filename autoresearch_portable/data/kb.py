"""The knowledge base of bundled corpus v2: a large fixed table entity -> attribute -> value,
generated from one seed, whose facts the documents mention (grammar2.py). It is the corpus's
capacity-limited part: a model lowers its loss on a fact only by having memorized it, and with
entities mentioned at Zipf-distributed frequency there are always rarer facts left to learn.

Two kinds of entity, each indexed by its popularity rank (0 = the most often mentioned):

* people (2^24): "<first name> <surname> of <town>", 8 attributes (trade, birth year, home, favourite
  colour, pet, lucky number, favourite food, a six-digit code);
* creatures (2^20): "<Colour> <Animal> of <town>", 5 attributes (habitat, food, age, eye colour,
  and a keeper who is one of the 2^16 most popular people: a relation between entities).

Nothing is stored: a name is an affine bijection of the rank onto the product space of name parts
(so popular names are spread over all first names, surnames and towns, and `rank_of` inverts it),
and a value is splitmix64(seed, kind, rank, attribute) mod the number of values: integers only,
the same on every machine. `info_bits()` is the table's information content: each value is an
independent uniform draw from its attribute's values (up to the modulo bias, < 2^-40), so the
table holds sum over kinds of count x sum over attributes of log2(number of values) bits.

Popularity: a mention draws a rank with probability proportional to 1/rank^s (Zipf; s = 4/5 for
people, 1 for creatures), in integer weights: ranks are grouped in quarter-octave bins
[floor(2^(k/4)), floor(2^((k+1)/4))), and every rank of a bin gets the weight
2^32 / (the bin's middle rank)^s (1-based ranks; the power taken with integer roots), so the
frequency is 1/rank^s up to the bin's width (exact for ranks 1..4; within 19% further out). A draw
is one integer below the total weight: exact probabilities, no floats, no tables per rank.

Why s = 4/5, 2^24 people and the code. The excess a model cannot remove at a compute C is the
popularity mass of the entities it cannot store (benchmarks/capacity.py). With 1/rank over 2^22 people and
7 attributes, a model at 1e17 FLOPs holding 2 bits per parameter knew the people that carry ~90% of
the mentions, leaving < 0.01 bpb: every big device would score at the floor. The heavier tail, the
larger population and a dense six-digit fact (~20 bits in 6 bytes) leave ~0.07 bpb at 1e17.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import Callable, Sequence

from autoresearch_portable.data import words
from autoresearch_portable.data.menus import GIRLS, NAMES, SURNAMES, TOWN_PRE, TOWN_SUF, article, capitalized, plural

KB_SEED = 20_250_612
_M64 = (1 << 64) - 1


def mix64(x: int) -> int:
    """splitmix64's finalizer: a bijection of 64-bit integers that scatters neighbouring inputs."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def iroot(x: int, k: int) -> int:
    """floor(x ** (1/k)) for integers x >= 0, k >= 1, exactly (Newton's method on integers)."""
    if x < 2:
        return x
    r = 1 << -(-x.bit_length() // k)  # >= the root
    while True:
        t = ((k - 1) * r + x // r ** (k - 1)) // k
        if t >= r:
            return r
        r = t


class Zipf:
    """Ranks 0..n-1 with integer weights proportional to 1/(rank+1)^s, s = num/den, by
    quarter-octave bins. The power is taken in integers: (mid^num)^(1/den), scaled by 2^FRAC."""

    SCALE = 1 << 32
    FRAC = 20

    def __init__(self, n: int, num: int = 1, den: int = 1):
        bounds: list[int] = []
        k = 0
        while True:
            b = math.isqrt(math.isqrt(1 << k))  # floor(2^(k/4)), in integers
            if b > n:
                break
            if not bounds or b > bounds[-1]:
                bounds.append(b)
            k += 1
        bounds.append(n + 1)
        self.n, self.s = n, (num, den)
        self.lo = [b - 1 for b in bounds[:-1]]  # 0-based first rank of each bin
        self.size = [bounds[i + 1] - bounds[i] for i in range(len(bounds) - 1)]
        mids = [(bounds[i] + bounds[i + 1] - 1) // 2 for i in range(len(bounds) - 1)]
        self.q = [(self.SCALE << self.FRAC) // iroot(m ** num << (den * self.FRAC), den) for m in mids]
        self.cum: list[int] = []
        acc = 0
        for s, q in zip(self.size, self.q):
            acc += s * q
            self.cum.append(acc)
        self.total = acc

    def weight(self, rank: int) -> int:
        return self.q[bisect_right(self.lo, rank) - 1]

    def rank_of(self, r: int) -> int:
        """The rank that an integer r in [0, total) stands for (r uniform gives the distribution)."""
        k = bisect_right(self.cum, r)
        return self.lo[k] + (r - (self.cum[k - 1] if k else 0)) // self.q[k]

    def bits(self, rank: int, used: Sequence[int] = ()) -> float:
        """-log2 P(rank) when the ranks in `used` (distinct, not `rank`) are excluded."""
        total = self.total - sum(self.weight(u) for u in used) if used else self.total
        return math.log2(total / self.weight(rank))


class Attr:
    """One attribute: its values (distinct strings) and how the grammar states it. `intro` is a
    phrase for a cast list, `state` a sentence after the entity's name, `ask` a question with {n}
    for the name, `answer` the answer with {S} for the subject pronoun. `values` may be a count
    instead of strings, with `spell` writing value i (a code's digits, a keeper's name)."""

    __slots__ = ("name", "values", "n", "spell", "intro", "state", "ask", "answer")

    def __init__(self, name: str, values: Sequence[str] | int, intro: str, state: str, ask: str, answer: str,
                 spell: Callable[[int], str] | None = None):
        self.name = name
        self.values = tuple(values) if not isinstance(values, int) else ()
        self.n = len(self.values) if not isinstance(values, int) else values
        if self.values and len(set(self.values)) != self.n:  # pragma: no cover - guards edits to words.py
            raise ValueError(f"attribute {name} has duplicate values")
        self.spell = spell if spell is not None else self.values.__getitem__
        self.intro, self.state, self.ask, self.answer = intro, state, ask, answer


class EntityKind:
    """A population of `count` entities of one kind, ranked by popularity. `parts` are the lists a
    name is made of (the name is an affine bijection of the rank onto their product) and `spell`
    joins the chosen parts (tests/corpus2_parse.py reads a name back into its rank)."""

    def __init__(self, tag: int, count: int, parts: Sequence[Sequence[str]], spell: Callable,
                 attrs: Sequence[Attr], zipf_s: tuple[int, int] = (1, 1), seed: int = KB_SEED):
        self.tag = tag
        self.count = count
        self.parts = [tuple(p) for p in parts]
        self.space = math.prod(len(p) for p in self.parts)
        if count > self.space:  # pragma: no cover
            raise ValueError("more entities than distinct names")
        self.mul = 0x9E3779B1 % self.space
        while math.gcd(self.mul, self.space) != 1:
            self.mul += 1
        self.add = mix64(seed ^ tag) % self.space
        self.spell = spell
        self.attrs = tuple(attrs)
        self.base = mix64((seed << 8) ^ tag)
        self.zipf = Zipf(count, *zipf_s)

    def name_parts(self, rank: int) -> list[int]:
        code = (rank * self.mul + self.add) % self.space
        out = []
        for p in reversed(self.parts):
            code, i = divmod(code, len(p))
            out.append(i)
        return out[::-1]

    def name(self, rank: int) -> str:
        return self.spell(*(p[i] for p, i in zip(self.parts, self.name_parts(rank))))

    def value(self, rank: int, attr: int) -> int:
        """The index of entity `rank`'s value of attribute `attr`: fixed by the seed."""
        return mix64((self.base + (rank << 4) + attr) & _M64) % self.attrs[attr].n

    def info_bits(self) -> float:
        return self.count * sum(math.log2(a.n) for a in self.attrs)


_PRONOUN = ("She", "He")


def person_pronoun(kind: EntityKind, rank: int) -> str:
    return _PRONOUN[0 if kind.name_parts(rank)[0] < GIRLS else 1]


_TOWNS = [p + s for p in TOWN_PRE.options for s in TOWN_SUF.options]
_ANIMALS = [plural(a)[0] for a in words.ANIMALS]
_FOODS = [f"{f} {d}" for f in words.FLAVORS for d in words.DISHES]
_TRADES = [f"{article(p)} {p}" for p in words.PROFESSIONS]
_YEARS = [str(y) for y in range(1700, 2000)]
_LUCKY = [str(n) for n in range(1, 100)]
_AGES = [str(n) for n in range(1, 301)]
CODES = 10**6  # six digits: ~20 bits in 6 bytes, the densest fact a person has
ZIPF_S = (4, 5)  # people's popularity ~ 1/rank^0.8: a heavy tail (see the docstring)

PERSON_ATTRS = (
    Attr("trade", _TRADES, "{v}", " works as {v}.", "What does {n} do?", "{S} is {v}."),
    Attr("born", _YEARS, "born in {v}", " was born in {v}.", "When was {n} born?", "In {v}."),
    Attr("home", words.PLACES, "lives near the {v}", " lives near the {v}.", "Where does {n} live?", "Near the {v}."),
    Attr("color", words.COLORS, "likes {v}", "'s favourite color is {v}.", "What is {n}'s favourite color?", "It is {v}."),
    Attr("pet", [f"{article(a)} {a}" for a in _ANIMALS], "keeps {v}", " keeps {v} as a pet.",
         "What pet does {n} keep?", "{S} keeps {v}."),
    Attr("lucky", _LUCKY, "lucky number {v}", "'s lucky number is {v}.", "What is {n}'s lucky number?", "It is {v}."),
    Attr("food", _FOODS, "loves {v}", " loves {v}.", "What does {n} love to eat?", "{S} loves {v}."),
    Attr("code", CODES, "code {v}", "'s code is {v}.", "What is {n}'s code?", "Code {v}.", spell="{:06d}".format),
)
N_PERSONS = 1 << 24
PERSONS = EntityKind(1, N_PERSONS, [NAMES.options, SURNAMES.options, _TOWNS],
                     lambda f, s, t: f"{f} {s} of {t}", PERSON_ATTRS, ZIPF_S)

# A creature's keeper is one of the KEEPERS most popular people (values are ranks, spelled later).
KEEPERS = 1 << 16
CREATURE_ATTRS = (
    Attr("habitat", words.PLACES, "lives by the {v}", " lives by the {v}.", "Where does {n} live?", "By the {v}."),
    Attr("food", words.FLAVORS, "eats {v}", " eats nothing but {v}.", "What does {n} eat?", "Only {v}."),
    Attr("age", _AGES, "{v} years old", " is {v} years old.", "How old is {n}?", "{v} years old."),
    Attr("eyes", words.COLORS, "with {v} eyes", " has {v} eyes.", "What color are {n}'s eyes?", "They are {v}."),
    Attr("keeper", KEEPERS, "kept by {v}", " is kept by {v}.", "Who keeps {n}?", "{v}.", spell=PERSONS.name),
)
N_CREATURES = 1 << 20
CREATURES = EntityKind(2, N_CREATURES, [[capitalized(c) for c in words.COLORS], [capitalized(a) for a in _ANIMALS], _TOWNS],
                       lambda c, a, t: f"the {c} {a} of {t}", CREATURE_ATTRS)
KINDS = (PERSONS, CREATURES)


def value_text(kind: EntityKind, rank: int, attr: int) -> str:
    """The text of a value (a keeper is written as that person's full name, a code as 6 digits)."""
    return kind.attrs[attr].spell(kind.value(rank, attr))


def info_bits() -> float:
    """The knowledge base's information content in bits (see the module's docstring)."""
    return sum(k.info_bits() for k in KINDS)
