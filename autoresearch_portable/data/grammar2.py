"""The grammar of bundled corpus v2: every document is a *chronicle* that mixes the three scales.

* capacity (kb.py): a cast of people (and sometimes creatures) drawn from the knowledge base at
  Zipf-distributed popularity, each introduced with some of its facts; later sections ask about
  cast members' facts (which the intro may or may not have stated: a model answers from the
  context or from memory), and "news" sections state one fact of a fresh Zipf-drawn entity;
* long range: cast members introduced at the top are asked about, met and recapped much later,
  after intervening sections; the motto and the cast lines are repeated verbatim (repeated spans);
* short range: whole v1 documents (stories, town fact sheets, lists, maths practice: grammar.py)
  as sections.

The document ends with "End of chronicle.", which occurs nowhere else, so no chronicle is a prefix
of another. `doc` is the chooser (corpus2.Writer2 when generating, tests/corpus2_parse.py's oracle when
parsing) and makes every random choice; a fact's value comes from `doc.fact` (kb.value_text): it
is fixed by the knowledge base, not chosen here, so it costs no bits (see corpus2.py).
"""

from __future__ import annotations

from autoresearch_portable.data.grammar import document as v1_document
from autoresearch_portable.data.kb import CREATURES, PERSONS, EntityKind, person_pronoun
from autoresearch_portable.data.menus import ADJ, ADJ_CAP, ANIMAL_PL, MOVE_VERBS, OBJ_PL, PLACES
from autoresearch_portable.data.story import town_name

CLOSING = "\n\nEnd of chronicle."


class _Cast:
    """Entities introduced at the top of a chronicle: ranks and their introduction lines."""

    __slots__ = ("kind", "ranks", "lines")

    def __init__(self, kind: EntityKind):
        self.kind = kind
        self.ranks: list[int] = []
        self.lines: list[str] = []


def _introduce(doc, cast: _Cast) -> None:
    """One cast line: "- <name>, <phrase>, <phrase>.\n", each attribute shown or not (1 bit each)."""
    kind = cast.kind
    doc.emit("- ")
    rank = doc.entity(kind, cast.ranks)
    line = kind.name(rank)
    for a, attr in enumerate(kind.attrs):
        if doc.pick(2):
            phrase = ", " + attr.intro.format(v=doc.fact(kind, rank, a))
            doc.emit(phrase)
            line += phrase
    doc.emit(".\n")
    cast.ranks.append(rank)
    cast.lines.append(line)


def _motto(doc) -> str:
    a = ADJ_CAP.options[doc.word(ADJ_CAP)]
    doc.emit(" ")
    o = OBJ_PL.options[doc.word(OBJ_PL)]
    doc.emit(" and ")
    b = ADJ.options[doc.word(ADJ)]
    doc.emit(" ")
    c = ANIMAL_PL.options[doc.word(ANIMAL_PL)]
    doc.emit(" ")
    v = MOVE_VERBS.options[doc.word(MOVE_VERBS)]
    doc.emit(" to the ")
    p = PLACES.options[doc.word(PLACES)]
    return f"{a} {o} and {b} {c} {v} to the {p}"


def _ask(doc, cast: _Cast) -> None:
    """A question about a cast member's fact; the answer is the knowledge base's value."""
    kind = cast.kind
    rank = cast.ranks[doc.pick(len(cast.ranks))]
    a = doc.pick(len(kind.attrs))
    attr = kind.attrs[a]
    subj = person_pronoun(kind, rank) if kind is PERSONS else ""
    doc.emit(f"Q: {attr.ask.format(n=kind.name(rank))}\nA: {attr.answer.format(S=subj, v=doc.fact(kind, rank, a))}")


def _news(doc, kind: EntityKind, opening: str) -> None:
    """One fact of an entity drawn fresh from the knowledge base (Zipf)."""
    doc.emit(opening)
    rank = doc.entity(kind)
    a = doc.pick(len(kind.attrs))
    doc.emit(kind.attrs[a].state.format(v=doc.fact(kind, rank, a)))


def _register(doc) -> None:
    """Every fact of a person drawn fresh from the knowledge base (Zipf)."""
    doc.emit("Register: ")
    rank = doc.entity(PERSONS)
    doc.emit("".join(", " + attr.intro.format(v=doc.fact(PERSONS, rank, a)) for a, attr in enumerate(PERSONS.attrs)) + ".")


def _meet(doc, people: _Cast) -> None:
    i = doc.pick(len(people.ranks))
    rest = [r for j, r in enumerate(people.ranks) if j != i]
    other = rest[doc.pick(len(rest))]
    doc.emit(f"{PERSONS.name(people.ranks[i])} met {PERSONS.name(other)} at the ")
    doc.word(PLACES)
    doc.emit(".")


def _recap(doc, cast: _Cast) -> None:
    doc.emit(f"As the list said: {cast.lines[doc.pick(len(cast.lines))]}.")


# (section, weight); "beast ask" and "beast recap" only when the chronicle has creatures
# Facts weigh most (news, register): the knowledge base is the part that keeps scaling (benchmarks/capacity.py)
SECTIONS = (
    ("short", 1), ("ask", 3), ("news", 6), ("register", 8), ("beast", 2), ("meet", 1), ("motto", 1), ("recap", 1),
    ("beast ask", 2), ("beast recap", 1),
)


def chronicle(doc) -> None:
    doc.emit("Chronicle of ")
    town_name(doc)
    doc.emit("\n\nPeople:\n")
    people, beasts = _Cast(PERSONS), _Cast(CREATURES)
    for _ in range(2 + doc.pick(5)):
        _introduce(doc, people)
    if doc.pick(2):
        doc.emit("Creatures:\n")
        for _ in range(1 + doc.pick(3)):
            _introduce(doc, beasts)
    doc.emit('Motto: "')
    motto = _motto(doc)
    doc.emit('"')
    avail = [(s, w) for s, w in SECTIONS if beasts.ranks or not s.startswith("beast ")]
    weights = [w for _, w in avail]
    for _ in range(4 + doc.pick(12)):
        doc.emit("\n\n")
        s = avail[doc.pick_weighted(weights)][0]
        if s == "short":
            v1_document(doc)
        elif s == "ask":
            _ask(doc, people)
        elif s == "news":
            _news(doc, PERSONS, "News: ")
        elif s == "register":
            _register(doc)
        elif s == "beast":
            _news(doc, CREATURES, "Of the creatures: ")
        elif s == "meet":
            _meet(doc, people)
        elif s == "motto":
            doc.emit(f'Once more, the motto: "{motto}"')
        elif s == "recap":
            _recap(doc, people)
        elif s == "beast ask":
            _ask(doc, beasts)
        else:
            _recap(doc, beasts)
    doc.emit(CLOSING)
