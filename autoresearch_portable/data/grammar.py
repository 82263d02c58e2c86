"""The grammar of the bundled corpus: which kind of document to write (stories, town fact
sheets, lists, maths practice) and the three short kinds themselves. Every kind ends with a
closing line (CLOSINGS) that appears nowhere else, so no document is a prefix of another.

`doc` is the chooser (corpus.Writer when generating, tests/corpus_parse.py's oracle when parsing); nothing
here may read randomness from anywhere else."""

from __future__ import annotations

from autoresearch_portable.data.menus import (
    BUILDINGS_PL, COLORS_CAP, FLAVORS, LIST_KINDS, MONTHS, NAMES, OBJ, OBJ_PL, SURNAMES, num_menu,
)
from autoresearch_portable.data.story import story, town_name

_TOWN_FACTS = tuple(f"b:{i}" for i in range(len(BUILDINGS_PL))) + (
    "mayor", "river", "founded", "people", "festival",
)


def _town_doc(doc) -> None:
    doc.emit("Facts about ")
    town = town_name(doc)
    doc.emit(":\n")
    kinds = list(_TOWN_FACTS)
    stated: list[str] = []
    facts: dict[str, object] = {}
    for _ in range(3 + doc.pick(6)):
        k = kinds.pop(doc.pick(len(kinds)))
        stated.append(k)
        doc.emit("- ")
        if k.startswith("b:"):
            doc.emit(f"{town} has ")
            facts[k] = doc.num(2, 40)
            doc.emit(f" {BUILDINGS_PL[int(k[2:])]}.\n")
        elif k == "mayor":
            doc.emit("The mayor is ")
            first = NAMES.options[doc.word(NAMES)]
            doc.emit(" ")
            facts[k] = first + " " + SURNAMES.options[doc.word(SURNAMES)]
            doc.emit(".\n")
        elif k == "river":
            doc.emit("The river is called the ")
            facts[k] = COLORS_CAP.options[doc.word(COLORS_CAP)]
            doc.emit(" River.\n")
        elif k == "founded":
            doc.emit(f"{town} was founded ")
            facts[k] = doc.num(20, 900)
            doc.emit(" years ago.\n")
        elif k == "people":
            facts[k] = doc.num(100, 9999)
            doc.emit(f" people live in {town}.\n")
        else:
            doc.emit("Every ")
            month = MONTHS.options[doc.word(MONTHS)]
            doc.emit(f", {town} holds a ")
            facts[k] = (month, FLAVORS.options[doc.word(FLAVORS)])
            doc.emit(" festival.\n")
    doc.emit("Questions:\n")
    blds = [k for k in stated if k.startswith("b:")]
    qs = list(stated) + (["total"] if len(blds) >= 2 else [])
    for _ in range(2 + doc.pick(min(5, len(qs) - 1))):
        k = qs.pop(doc.pick(len(qs)))
        doc.emit("Q: ")
        if k == "total":
            b1 = blds[doc.pick(len(blds))]
            rest = [b for b in blds if b != b1]
            b2 = rest[doc.pick(len(rest))]
            n1, n2 = BUILDINGS_PL[int(b1[2:])], BUILDINGS_PL[int(b2[2:])]
            doc.emit(f"How many {n1} and {n2} does {town} have together?\nA: {facts[b1] + facts[b2]}.\n")
        elif k.startswith("b:"):
            doc.emit(f"How many {BUILDINGS_PL[int(k[2:])]} does {town} have?\nA: {facts[k]}.\n")
        elif k == "mayor":
            doc.emit(f"Who is the mayor of {town}?\nA: {facts[k]}.\n")
        elif k == "river":
            doc.emit(f"What is the river called?\nA: The {facts[k]} River.\n")
        elif k == "founded":
            doc.emit(f"How old is {town}?\nA: {facts[k]} years old.\n")
        elif k == "people":
            doc.emit(f"How many people live in {town}?\nA: {facts[k]}.\n")
        else:
            month, flavor = facts[k]
            doc.emit(f"When is the {flavor} festival?\nA: In {month}.\n")
    doc.emit("End of questions.")


def _list_doc(doc) -> None:
    doc.word(NAMES)
    doc.emit("'s ")
    doc.word(LIST_KINDS)
    doc.emit(" list:\n")
    used: set[int] = set()
    items: list[tuple[int, int, int]] = []
    for _ in range(5 + doc.pick(12)):
        doc.emit("- ")
        n = doc.num(1, 12)
        doc.emit(" ")
        o = doc.word_ex(OBJ if n == 1 else OBJ_PL, used)
        used.add(o)
        doc.emit(" at ")
        price = doc.num(1, 9)
        doc.emit(f" {'coin' if price == 1 else 'coins'} each = {n * price} {'coin' if n * price == 1 else 'coins'}\n")
        items.append((n, o, price))
    total = sum(n for n, _, _ in items)
    cost = sum(n * p for n, _, p in items)
    best = max(n for n, _, _ in items)
    top = next(o for n, o, _ in items if n == best)
    doc.emit(f"Total: {total} things.\nTotal cost: {cost} coins.\nMost: {OBJ_PL.options[top]}.\nEnd of list.")


_PROBLEMS = (("add", 3), ("sub", 3), ("mul", 3), ("countby", 2), ("bigger", 2))


def _practice_doc(doc) -> None:
    doc.emit("Math practice, page ")
    doc.num(1, 99)
    doc.emit(":\n")
    for i in range(8 + doc.pick(18)):
        doc.emit(f"{i + 1}. ")
        kind = _PROBLEMS[doc.pick_weighted([w for _, w in _PROBLEMS])][0]
        if kind == "add":
            a = doc.num(0, 99)
            doc.emit(" + ")
            b = doc.num(0, 99)
            doc.emit(f" = {a + b}\n")
        elif kind == "sub":
            a = doc.num(0, 99)
            doc.emit(" - ")
            b = doc.num(0, a)
            doc.emit(f" = {a - b}\n")
        elif kind == "mul":
            a = doc.num(1, 12)
            doc.emit(" x ")
            b = doc.num(1, 12)
            doc.emit(f" = {a * b}\n")
        elif kind == "countby":
            doc.emit("Count by ")
            s = doc.num(2, 10)
            doc.emit(" from ")
            a = doc.num(0, 20)
            t = 3 + doc.pick(6)
            doc.emit(": " + ", ".join(str(a + s * j) for j in range(t)) + ".\n")
        else:
            doc.emit("Which is bigger, ")
            a = doc.num(0, 999)
            doc.emit(" or ")
            b = doc.word_ex(num_menu(0, 999), {a})
            doc.emit(f"? {max(a, b)}.\n")
    doc.emit("End of practice.")


DOC_KINDS = ((story, 6), (_town_doc, 2), (_list_doc, 1), (_practice_doc, 1))
CLOSINGS = ("\n\nThe End.", "End of questions.", "End of list.", "End of practice.")


def document(doc) -> None:
    i = doc.pick_weighted([w for _, w in DOC_KINDS])
    DOC_KINDS[i][0](doc)

