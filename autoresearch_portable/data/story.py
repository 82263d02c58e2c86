"""Stories, the main document kind of the bundled corpus: a titled tale whose characters get facts
early (age, favourite colour and food, pet, home, siblings, lucky number) that later episodes use
(dialogue that asks about them, characters who remember them, age comparisons), plus travel,
counting, lists and small arithmetic, and a closing line that returns to the hero's pet.

Every function takes `doc`, the chooser (corpus.Writer when generating, tests/corpus_parse.py's oracle
when parsing) and makes its random choices only through it (see corpus.py for the rules)."""

from __future__ import annotations

from autoresearch_portable.data.menus import (
    ADJ, ADJ_CAP, ADJ_WITH_ARTICLE, ANIMAL, ANIMAL_PL, CONTAINERS, COLORS, COUNT_FOODS, DISHES,
    EXCLAMATIONS, FEELINGS, FLAVORS, HOME_ENDINGS, HOUSE_WITH_ARTICLE, LOST_VERBS, MOVE_VERBS, NAMES,
    NUMBER_WORDS, OBJ, OBJ_CAP, OBJ_PL, OBJ_WITH_ARTICLE, PET_NAMES, PLACES, PROFESSION_WITH_ARTICLE,
    SETTLEMENTS, SIBLINGS, SPOT_PREPS, SPOTS, TIMES, TOWN_PRE, TOWN_SUF, TRAY_CONTAINERS, VERBS,
    ADVERBS, GIRLS, article,
)

_PRONOUNS = (("she", "her", "her", "She", "Her"), ("he", "him", "his", "He", "His"))
FACT_KINDS = ("age", "color", "food", "pet", "home", "siblings", "lucky")


class _Char:
    __slots__ = ("idx", "name", "subj", "obj", "pos", "Subj", "Pos", "facts")

    def __init__(self, idx: int):
        self.idx = idx
        self.name = NAMES.options[idx]
        self.subj, self.obj, self.pos, self.Subj, self.Pos = _PRONOUNS[0 if idx < GIRLS else 1]
        self.facts: dict[str, object] = {}


def _new_char(doc, chars: list[_Char]) -> _Char:
    c = _Char(doc.word_ex(NAMES, {c.idx for c in chars}))
    chars.append(c)
    return c


def town_name(doc) -> str:
    a = doc.word(TOWN_PRE)
    b = doc.word(TOWN_SUF)
    return TOWN_PRE.options[a] + TOWN_SUF.options[b]


def _fact(doc, c: _Char, kind: str, subj: str, pos: str) -> None:
    """One sentence stating a fact about c; subj/pos are how the sentence names c."""
    f = c.facts
    if kind == "age":
        doc.emit(f" {subj} was ")
        f["age"] = doc.num(6, 90)
        doc.emit(" years old.")
    elif kind == "color":
        doc.emit(f" {pos} favourite color was ")
        f["color"] = COLORS.options[doc.word(COLORS)]
        doc.emit(".")
    elif kind == "food":
        doc.emit(f" {pos} favourite food was ")
        a = FLAVORS.options[doc.word(FLAVORS)]
        doc.emit(" ")
        f["food"] = a + " " + DISHES.options[doc.word(DISHES)]
        doc.emit(".")
    elif kind == "pet":
        doc.emit(f" {subj} had a pet ")
        animal = doc.word(ANIMAL)
        doc.emit(" named ")
        f["pet"] = (animal, PET_NAMES.options[doc.word(PET_NAMES)])
        doc.emit(".")
    elif kind == "home":
        doc.emit(f" {subj} lived in ")
        doc.word(HOUSE_WITH_ARTICLE)
        doc.emit(" house near the ")
        f["home"] = PLACES.options[doc.word(PLACES)]
        doc.emit(".")
    elif kind == "siblings":
        doc.emit(f" {subj} had ")
        f["siblings"] = SIBLINGS.options[doc.word(SIBLINGS)]
        doc.emit(".")
    else:  # lucky
        doc.emit(f" {pos} lucky number was ")
        f["lucky"] = doc.num(1, 99)
        doc.emit(".")


def _facts(doc, c: _Char, k: int, subj: str, pos: str) -> None:
    kinds = list(FACT_KINDS)
    for _ in range(k):
        _fact(doc, c, kinds.pop(doc.pick(len(kinds))), subj, pos)


def _count_words(n: int) -> str:
    return ", ".join(NUMBER_WORDS[1 : n + 1])


def _who(doc, chars: list[_Char], exclude: _Char | None = None) -> _Char:
    cands = [c for c in chars if c is not exclude]
    return cands[doc.word_list([c.name for c in cands])]


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


def _episode_find(doc, c: _Char, chars: list[_Char], title: tuple[int, int] | None) -> None:
    """The rest of a finding sentence after the finder's name; `title` fixes what is found."""
    if title is None:
        doc.emit(" found ")
        doc.word(ADJ_WITH_ARTICLE)
        doc.emit(" ")
        doc.word(OBJ)
    else:
        adj = ADJ.options[title[0]]
        doc.emit(f" found {article(adj)} {adj} {OBJ.options[title[1]]}")
    doc.emit(" ")
    doc.word(SPOT_PREPS)
    doc.emit(" the ")
    doc.word(SPOTS)
    doc.emit(".")
    others = len(chars) > 1
    k = doc.pick(3 if others else 2)
    if k == 0:
        doc.emit(f" {c.Subj} took it home.")
    elif k == 1:
        doc.emit(f" {c.Subj} put it in {c.pos} ")
        doc.word(CONTAINERS)
        doc.emit(".")
    else:
        doc.emit(f" {c.Subj} gave it to ")
        _who(doc, chars, exclude=c)
        doc.emit(".")


def _travel(doc, chars: list[_Char]) -> None:
    doc.word(TIMES)
    doc.emit(", ")
    c = _who(doc, chars)
    doc.emit(" ")
    doc.word(MOVE_VERBS)
    doc.emit(" to the ")
    doc.word(PLACES)
    company = doc.pick(2) if len(chars) > 1 else 0
    if company:
        doc.emit(" with ")
        _who(doc, chars, exclude=c)
    doc.emit(". There they saw " if company else f". There {c.subj} saw ")
    n = 2 + doc.pick(11)
    doc.emit(NUMBER_WORDS[n] + " ")
    doc.word(ADJ)
    doc.emit(" ")
    doc.word(ANIMAL_PL)
    doc.emit(".")


def _find(doc, chars: list[_Char]) -> None:
    doc.word(TIMES)
    doc.emit(", ")
    c = _who(doc, chars)
    _episode_find(doc, c, chars, None)


def _add(doc, chars: list[_Char]) -> None:
    c = _who(doc, chars)
    doc.emit(" had ")
    a = doc.num(2, 20)
    doc.emit(" ")
    o = doc.word(OBJ_PL)
    doc.emit(".")
    if len(chars) > 1 and doc.pick(2):
        doc.emit(" ")
        _who(doc, chars, exclude=c)
        doc.emit(f" gave {c.obj} ")
    else:
        doc.emit(f" {c.Subj} found ")
    b = doc.num(1, 20)
    doc.emit(f" more, so now {c.subj} had {a + b} {OBJ_PL.options[o]}.")


def _sub(doc, chars: list[_Char]) -> None:
    c = _who(doc, chars)
    doc.emit(" had ")
    a = doc.num(3, 30)
    doc.emit(" ")
    doc.word(OBJ_PL)
    doc.emit(f". {c.Subj} ")
    doc.word(LOST_VERBS)
    doc.emit(" ")
    b = doc.num(1, a - 1)
    left = a - b
    doc.emit(f" of them, so {left} {'was' if left == 1 else 'were'} left.")


def _bake(doc, chars: list[_Char]) -> None:
    c = _who(doc, chars)
    doc.emit(" baked ")
    a = doc.num(2, 9)
    doc.emit(" ")
    doc.word(TRAY_CONTAINERS)
    doc.emit(" of ")
    f = doc.word(COUNT_FOODS)
    doc.emit(", with ")
    b = doc.num(2, 9)
    doc.emit(
        f" in each. That made {a * b} {COUNT_FOODS.options[f]} in all."
    )


def _count(doc, chars: list[_Char]) -> None:
    c = _who(doc, chars)
    doc.emit(" counted the ")
    a = doc.word(ANIMAL_PL)
    n = 2 + doc.pick(9)
    pl = ANIMAL_PL.options[a]
    doc.emit(f": {_count_words(n)}. There were {NUMBER_WORDS[n]} {pl}.")


def _ask(doc, chars: list[_Char]) -> None:
    askable = [c for c in chars if c.facts]
    z = askable[doc.word_list(['"' + c.name + ", " for c in askable])]
    kinds = [k for k in FACT_KINDS if k in z.facts]
    kind_i = doc.pick(len(kinds))
    fk = kinds[kind_i]
    q, ans = _QUESTIONS[fk]
    if q is None:
        q = f"what is your {ANIMAL.options[z.facts['pet'][0]]} called?"
    doc.emit(q + '" asked ')
    _who(doc, chars, exclude=z)
    doc.emit(f'. "{ans(z)}," said {z.name}.')


def _recall(doc, chars: list[_Char]) -> None:
    ys = [c for c in chars if any(d.facts and d is not c for d in chars)]
    y = ys[doc.word_list([c.name for c in ys])]
    doc.emit(" remembered that ")
    known = [c for c in chars if c.facts and c is not y]
    z = known[doc.word_list([c.name for c in known])]
    kinds = [k for k in FACT_KINDS if k in z.facts]
    fk = kinds[doc.pick(len(kinds))]
    doc.emit(_RECALL[fk](z)[len(z.name) :] + ".")


def _market(doc, chars: list[_Char]) -> None:
    doc.emit("At the market, ")
    c = _who(doc, chars)
    doc.emit(" bought ")
    k = 2 + doc.pick(4)
    used: set[int] = set()
    for j in range(k):
        if j:
            doc.emit(" and " if (k == 2) else (", and " if j == k - 1 else ", "))
        used.add(doc.word_ex(OBJ_WITH_ARTICLE, used))
    doc.emit(f". {c.Subj} carried {NUMBER_WORDS[k]} things home.")


def _action(doc, chars: list[_Char]) -> None:
    c = _who(doc, chars)
    doc.emit(" ")
    doc.word(VERBS)
    doc.emit(" the ")
    doc.word(ADJ)
    doc.emit(" ")
    doc.word(OBJ)
    doc.emit(" ")
    doc.word(ADVERBS)
    doc.emit(".")


def _age(doc, chars: list[_Char]) -> None:
    aged = [c for c in chars if "age" in c.facts]
    x = aged[doc.word_list([c.name for c in aged])]
    others = [c for c in aged if c is not x]
    y = others[doc.pick(len(others))]
    d = x.facts["age"] - y.facts["age"]
    if d == 0:
        doc.emit(f" was the same age as {y.name}.")
    else:
        doc.emit(f" was {abs(d)} {'year' if abs(d) == 1 else 'years'} {'older' if d > 0 else 'younger'} than {y.name}.")


def _exclaim(doc, chars: list[_Char]) -> None:
    doc.emit('"')
    doc.word(EXCLAMATIONS)
    doc.emit('" said ')
    c = _who(doc, chars)
    doc.emit(f". {c.Subj} felt ")
    doc.word(FEELINGS)
    doc.emit(".")


# (kind, writer, weight): one episode of a story; _available says which kinds fit the cast so far
EPISODES = (
    ("travel", _travel, 3), ("find", _find, 3), ("add", _add, 2), ("sub", _sub, 2),
    ("bake", _bake, 2), ("count", _count, 2), ("ask", _ask, 4), ("recall", _recall, 3),
    ("market", _market, 2), ("action", _action, 4), ("age", _age, 2), ("exclaim", _exclaim, 2),
)


def _available(kind: str, chars: list[_Char]) -> bool:
    if kind == "ask":
        return len(chars) > 1 and any(c.facts for c in chars)
    if kind == "recall":
        return any(any(d.facts and d is not c for d in chars) for c in chars)
    if kind == "age":
        return sum(1 for c in chars if "age" in c.facts) >= 2
    return True


def story(doc) -> None:
    doc.emit("The ")
    ta = doc.word(ADJ_CAP)
    doc.emit(" ")
    to = doc.word(OBJ_CAP)
    doc.emit("\n\n")
    chars: list[_Char] = []
    form = doc.pick(3)
    if form == 0:
        doc.emit("Once upon a time, in the ")
        doc.word(SETTLEMENTS)
        doc.emit(" of ")
        town_name(doc)
        doc.emit(", there lived ")
        doc.word(PROFESSION_WITH_ARTICLE)
        doc.emit(" named ")
        hero = _new_char(doc, chars)
        doc.emit(".")
    elif form == 1:
        doc.emit("There was once ")
        doc.word(PROFESSION_WITH_ARTICLE)
        doc.emit(" named ")
        hero = _new_char(doc, chars)
        doc.emit(" who lived in the ")
        doc.word(SETTLEMENTS)
        doc.emit(" of ")
        town_name(doc)
        doc.emit(".")
    else:
        hero = _new_char(doc, chars)
        doc.emit(" was ")
        doc.word(PROFESSION_WITH_ARTICLE)
        doc.emit(" in the ")
        doc.word(SETTLEMENTS)
        doc.emit(" of ")
        town_name(doc)
        doc.emit(".")
    _facts(doc, hero, 2 + doc.pick(4), hero.Subj, hero.Pos)

    for _ in range(1 + doc.pick(3)):
        form = doc.pick(3)
        if form == 0:
            doc.emit(f"\n\n{hero.name} had a friend named ")
        elif form == 1:
            doc.emit(f"\n\n{hero.name} often visited ")
        else:
            doc.emit(f"\n\nOne of {hero.name}'s friends was ")
        f = _new_char(doc, chars)
        doc.emit(", ")
        doc.word(PROFESSION_WITH_ARTICLE)
        doc.emit(" who lived nearby." if form == 1 else ".")
        _facts(doc, f, 1 + doc.pick(3), f.name, f.name + "'s")

    doc.emit("\n\n")
    doc.word(TIMES)
    doc.emit(", " + hero.name)
    _episode_find(doc, hero, chars, (ta, to))
    for _ in range(doc.pick(20)):
        doc.emit("\n\n")
        avail = [e for e in EPISODES if _available(e[0], chars)]
        _, write, _ = avail[doc.pick_weighted([w for _, _, w in avail])]
        write(doc, chars)

    doc.emit(f"\n\nIn the end, {hero.name} went home ")
    if "pet" in hero.facts:
        animal, pet = hero.facts["pet"]
        doc.emit(f"to {hero.pos} {ANIMAL.options[animal]}, {pet}.")
    else:
        doc.emit("and ")
        doc.word(HOME_ENDINGS)
        doc.emit(".")
    doc.emit("\n\nThe End.")

