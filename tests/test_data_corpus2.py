"""Bundled corpus v2 (corpus2.py, grammar2.py, kb.py): determinism, the knowledge base (size, names,
Zipf popularity), long-range structure, and that the floor is exact in its v2 sense: bits are
-log2 P(text | knowledge base), checked by parsing documents back into their choices."""

from __future__ import annotations

import math
from bisect import bisect_right
from random import Random

import corpus2_parse as P2
import corpus_parse as P
import pytest

from autoresearch_portable.data import corpus, corpus2 as C2, kb, words
from autoresearch_portable.data.grammar import CLOSINGS as V1_CLOSINGS

# sha256 of the first documents of each stream (each followed by NUL), v2 generator version 2.
# If this changes, the corpus changed: bump GENERATOR_VERSION_V2 and update the pins deliberately.
PINNED_SEED0_100 = "a3e3f8303872cd3002c97c87e1d0f67b99a3d29b381ff3ef7027d1669d9e5078"
PINNED_SEED1_30 = "a5977fce36b623b755aad3fbed94c98ad7c6a847af0b6f8e20b85b2a9b7524d1"


def test_pinned_hash_of_first_documents():
    assert C2.GENERATOR_VERSION_V2 == 2
    assert P.stream_digest(C2.generate_document, C2.TRAIN_SEED, 100) == PINNED_SEED0_100
    assert P.stream_digest(C2.generate_document, C2.VAL_SEED, 30) == PINNED_SEED1_30


def test_any_range_is_generated_independently():
    backwards = [C2.generate_document(0, i) for i in range(49, 39, -1)]
    assert backwards[::-1] == [C2.generate_document(0, i) for i in range(40, 50)]
    train = {C2.generate_document(0, i)[0] for i in range(200)}
    val = {C2.generate_document(1, i)[0] for i in range(200)}
    v1 = {corpus.generate_document(0, i)[0] for i in range(200)}
    assert len(train) == len(val) == 200 and not train & val and not train & v1


def test_shape_and_a_unique_closing_line():
    texts = [C2.generate_document(1, i)[0] for i in range(300)]
    sizes = [len(t.encode("utf-8")) for t in texts]
    assert 1000 <= sum(sizes) / len(sizes) <= 4000 and max(sizes) < 20_000
    for t in texts:
        assert t.count("End of chronicle.") == 1 and t.endswith(C2.CLOSING)
    joined = "\n".join(texts)
    for marker in ("People:\n", "Creatures:\n", "News: ", "Register: ", "Of the creatures: ", "Q: ", " met ",
                   "As the list said: ", "Once more, the motto: ", " is kept by "):
        assert marker in joined, marker
    for closing in V1_CLOSINGS:  # the v1 kinds are the short-range sections
        assert closing.strip() in joined


def test_long_range_references_and_repeated_spans():
    """Cast members introduced at the top are named again far below, and spans repeat verbatim."""
    far = repeated = 0
    n = 200
    for i in range(n):
        t = C2.generate_document(0, i)[0]
        head, _, body = t.partition('Motto: "')
        motto = body.split('"', 1)[0]
        names = [line[2:].split(",")[0].rstrip(".") for line in head.splitlines() if line.startswith("- ")]
        assert len(names) >= 2
        end_of_head = len(head)
        last = max(t.rfind(nm) for nm in names)
        if last - end_of_head >= 1000:
            far += 1
        if body.count(motto) >= 2 or "As the list said: " in body:
            repeated += 1
    assert far >= n // 4, far  # a reference at least 1000 characters after the cast list
    assert repeated >= n // 3, repeated


def test_knowledge_base_information_content():
    """2^24 people x 8 attributes + 2^20 creatures x 5: sum of log2(values) per fact, > 1e8 bits
    (a 50M-parameter model at ~2 bits per parameter cannot hold it)."""
    person = [len(words.PROFESSIONS), 300, len(words.PLACES), len(words.COLORS), len(words.ANIMALS), 99,
              len(words.FLAVORS) * len(words.DISHES), 10**6]
    creature = [len(words.PLACES), len(words.FLAVORS), 300, len(words.COLORS), kb.KEEPERS]
    expected = 2**24 * sum(map(math.log2, person)) + 2**20 * sum(map(math.log2, creature))
    assert kb.info_bits() == pytest.approx(expected, rel=1e-12)
    assert 1.1e9 < kb.info_bits() < 1.2e9 and kb.info_bits() > 10 * 2 * 50e6


def test_a_code_is_six_digits_and_keepers_are_names():
    p, c = kb.PERSONS, kb.CREATURES
    code = [a.name for a in p.attrs].index("code")
    texts = [kb.value_text(p, r, code) for r in range(2000)]
    assert all(len(t) == 6 and t.isdigit() for t in texts) and len(set(texts)) > 1990
    keeper = [a.name for a in c.attrs].index("keeper")
    for r in range(50):
        name = kb.value_text(c, r, keeper)
        assert P2.read_name(p, name, 0) == (c.value(r, keeper), len(name))


@pytest.mark.parametrize("x,k", [(0, 3), (1, 10), (2**30, 10), (3**40 - 1, 40), (10**50, 7), (2**200 + 12345, 9)])
def test_iroot_is_the_exact_integer_root(x, k):
    r = kb.iroot(x, k)
    assert r**k <= x < (r + 1) ** k


def test_names_are_a_bijection_onto_ranks():
    for kind in kb.KINDS:
        ranks = list(range(200)) + [kind.count - 1 - i for i in range(200)] + [Random(3).randrange(kind.count) for _ in range(2000)]
        names = [kind.name(r) for r in ranks]
        assert len(set(names)) == len(set(ranks))
        for r, nm in zip(ranks, names):
            assert P2.read_name(kind, nm + ".", 0) == (r, len(nm))
        # a name made of known parts but beyond the population reads as no entity
        beyond = next(c for c in range(kind.space) if ((c - kind.add) * pow(kind.mul, -1, kind.space)) % kind.space >= kind.count)
        parts = []
        for p in reversed(kind.parts):
            beyond, j = divmod(beyond, len(p))
            parts.append(p[j])
        assert P2.read_name(kind, kind.spell(*parts[::-1]), 0) is None


def test_values_are_fixed_and_spread():
    p = kb.PERSONS
    assert [p.value(5, a) for a in range(7)] == [p.value(5, a) for a in range(7)]
    counts = [0] * p.attrs[0].n
    for r in range(20_000):
        counts[p.value(r, 0)] += 1
    expect = 20_000 / len(counts)
    assert min(counts) > 0.7 * expect and max(counts) < 1.3 * expect


def mass_from(z: kb.Zipf, rank: int) -> float:
    """The share of all draws that land on ranks >= `rank`."""
    k = bisect_right(z.lo, rank) - 1
    if k < 0:
        return 1.0
    below = (z.cum[k - 1] if k else 0) + (rank - z.lo[k]) * z.q[k]
    return 1.0 - below / z.total


def _h(s: float, n: int) -> float:
    """sum of 1/r^s for r = 1..n (the Zipf normalizer), by Euler-Maclaurin past the first 1000 terms."""
    head = sum(r**-s for r in range(1, 1001))
    return head + ((n + 0.5) ** (1 - s) - 1000.5 ** (1 - s)) / (1 - s) if s != 1 else head + math.log((n + 0.5) / 1000.5)


@pytest.mark.parametrize("kind", kb.KINDS, ids=lambda k: k.name(0))
def test_zipf_weights_follow_one_over_rank_to_the_s(kind):
    z = kind.zipf
    s = z.s[0] / z.s[1]
    assert sum(z.size) == z.n == kind.count and z.total == sum(z.weight(r) for r in range(63)) + sum(
        size * q for size, q, lo in zip(z.size, z.q, z.lo) if lo >= 63)
    assert [z.rank_of(z.cum[k] - 1) for k in range(len(z.cum))] == [lo + size - 1 for lo, size in zip(z.lo, z.size)]
    for r in list(range(1, 50)) + [10**3, 10**4, 10**5, 10**6, kind.count - 1]:
        ratio = z.weight(r) * (r + 1) ** s / z.weight(0)
        assert 0.8 < ratio < 1.25, (r, ratio)
    # sampled through the Writer: rank 0 at ~1/H, each octave of rank at its share of the mass
    w = C2.Writer2(7)
    n = 60_000
    ranks = [z.rank_of(w._below(z.total)) for _ in range(n)]
    h = _h(s, kind.count)
    assert ranks.count(0) / n == pytest.approx(1 / h, rel=0.1)
    octaves = [0] * 25
    for r in ranks:
        octaves[(r + 1).bit_length() - 1] += 1
    for k in range(2, kind.count.bit_length() - 2):
        expect = n * (_h(s, 2 ** (k + 1) - 1) - _h(s, 2**k - 1)) / h
        assert 0.8 * expect < octaves[k] < 1.2 * expect, (k, octaves[k], expect)
    assert mass_from(z, 0) == 1.0 and mass_from(z, kind.count) == 0.0
    assert mass_from(z, 1000) == pytest.approx(sum(1 for r in ranks if r >= 1000) / n, abs=0.01)


def test_entity_draw_bits_are_its_zipf_probability():
    z = kb.PERSONS.zipf
    for used in ([], [0, 1, 2]):
        w = C2.Writer2(11)
        r = w.entity(kb.PERSONS, used)
        assert r not in used and w.bits == pytest.approx(-math.log2(z.weight(r) / (z.total - sum(map(z.weight, used)))))
        assert "".join(w.out) == kb.PERSONS.name(r)


def test_mentions_in_documents_are_zipf():
    """Fresh mentions ("News: <name>") land on the top ranks about as often as 1/rank says."""
    counts: dict[int, int] = {}
    total = 0
    for i in range(1500):
        t = C2.generate_document(0, i)[0]
        for part in t.split("News: ")[1:]:
            r = P2.read_name(kb.PERSONS, part, 0)[0]
            counts[r] = counts.get(r, 0) + 1
            total += 1
    z = kb.PERSONS.zipf
    top8 = sum(counts.get(r, 0) for r in range(8)) / total
    assert top8 == pytest.approx(1 - mass_from(z, 8), rel=0.25)
    assert sum(1 for r in counts if r >= 100_000) / total > 0.5  # a long tail of rare entities


def test_a_fact_value_costs_no_bits(monkeypatch):
    """The floor is conditional on the knowledge base: with every value changed (another knowledge
    base), the same document seed makes the same choices with the same bits, only the text differs."""
    base = [P2.recorded(1, i) for i in range(20)]
    orig = kb.EntityKind.value
    monkeypatch.setattr(kb.EntityKind, "value", lambda self, r, a: (orig(self, r, a) + 1) % self.attrs[a].n)
    for i, (text, bits, choices) in enumerate(base):
        t2, b2, c2 = P2.recorded(1, i)
        assert c2 == choices and b2 == bits and t2 != text


def _sample(seed: int) -> list[int]:
    """Short documents of a stream covering creatures, embedded v1 kinds and everything else."""
    docs = [(len(C2.generate_document(seed, i)[0]), i) for i in range(80)]
    texts = {i: C2.generate_document(seed, i)[0] for _, i in docs}
    picks = [min(docs)[1]]
    for want in ("Creatures:\n", "End of ", " is kept by ", "As the list said", "Once more, the motto", " met "):
        picks.append(min((n, i) for n, i in docs if want in texts[i].replace("End of chronicle.", ""))[1])
    return sorted(set(picks))


@pytest.mark.parametrize("seed", [C2.TRAIN_SEED, C2.VAL_SEED])
def test_text_determines_the_choices(seed):
    """Exactly one choice sequence writes each sampled document, it is the drawn one, and its bits
    are the recorded ones: -log2 P(text | knowledge base) == bits, so the v2 floor is exact."""
    for i in _sample(seed):
        text, bits, choices = P2.recorded(seed, i)
        parses = P2.parse_document(text, max_parses=2)
        assert len(parses) == 1, f"document {i} of seed {seed} has {len(parses)} parses"
        assert parses[0][0] == choices
        assert parses[0][1] == pytest.approx(bits, abs=1e-9)


def test_replay_of_long_documents():
    for i in range(30):
        text, bits, choices = P2.recorded(0, i)
        assert P2.replay(text, choices) == pytest.approx(bits, abs=1e-9)
    bad = list(choices)
    k = next(j for j, c in enumerate(bad) if c > 100)  # an entity rank: another entity's name
    bad[k] += 1
    with pytest.raises(ValueError):
        P2.replay(text, bad)


def test_prepare_builds_bundled_v2(tmp_path, monkeypatch):
    from autoresearch_portable.data import load, prepare

    monkeypatch.setenv("ARP_CACHE_DIR", str(tmp_path / "cache"))
    info = prepare("bundled-v2", train_tokens=40_000, val_bytes=60_000, tokenizer_train_bytes=100_000, log=lambda m: None)
    assert info["dataset"] == info["kind"] == "bundled-v2" and info["generator_version"] == C2.GENERATOR_VERSION_V2
    docs = [C2.generate_document(1, i) for i in range(info["floor"]["val_docs"])]
    nbytes = sum(len(t.encode("utf-8")) for t, _ in docs)
    assert info["floor_bpb"] == pytest.approx(sum(b for _, b in docs) / nbytes) and nbytes >= 60_000
    assert info["floor"]["kb_info_bits"] == kb.info_bits()
    assert load("bundled-v2").floor_bpb == info["floor_bpb"]
    assert prepare("bundled-v2", train_tokens=40_000, val_bytes=60_000, tokenizer_train_bytes=100_000,
                   log=lambda m: None)["already_prepared"]


def test_parser_detects_an_ambiguous_grammar(monkeypatch):
    """The check has teeth: a second section kind that writes the same text as "news" gives every
    document with a news section two parses."""
    from autoresearch_portable.data import grammar2

    i = min((len(t), i) for i in range(80) if "News: " in (t := C2.generate_document(0, i)[0]))[1]
    text = C2.generate_document(0, i)[0]
    assert len(P2.parse_document(text, max_parses=2)) == 1
    monkeypatch.setattr(grammar2, "SECTIONS", grammar2.SECTIONS + (("news", 1),))
    assert len(P2.parse_document(text, max_parses=2)) == 2
