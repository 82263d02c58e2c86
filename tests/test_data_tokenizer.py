"""BPE tokenizer trained with rustbpe, served through tiktoken, with exact token byte lengths."""

from __future__ import annotations

import numpy as np
import pytest

from autoresearch_portable.data import corpus
from autoresearch_portable.data.tokenizer import BOS_TOKEN, Tokenizer, save_tokenizer, train_tokenizer

CJK = "日本語のテキストと中文的文字。한국어 문장도 있습니다. Ünïcödé çåñ bé trïcky — “quotes” … 🙂🎉"


@pytest.fixture(scope="module")
def tok():
    texts = [corpus.generate_document(0, i)[0] for i in range(300)] + [CJK] * 200
    return train_tokenizer(iter(texts), 1024)


def test_vocab_layout_and_bos(tok):
    assert tok.vocab_size == 1024
    assert tok.bos_id == tok.vocab_size - 1
    assert tok.encoding.n_vocab == tok.vocab_size
    assert tok.decode([tok.bos_id]) == BOS_TOKEN
    # the BOS text inside a document is ordinary text, never the special token
    assert tok.bos_id not in tok.encode("a <|bos|> b")


def test_roundtrip(tok):
    for text in [corpus.generate_document(1, i)[0] for i in range(20)] + [CJK, "", " \n\n  x"]:
        ids = tok.encode(text)
        assert all(0 <= i < tok.bos_id for i in ids)
        assert tok.decode(ids) == text
    assert tok.encode_batch(["abc", CJK]) == [tok.encode("abc"), tok.encode(CJK)]


def test_token_bytes_are_raw_byte_lengths(tok):
    tb = tok.token_bytes()
    assert tb.dtype == np.int32 and tb.shape == (tok.vocab_size,)
    assert tb[tok.bos_id] == 0
    assert (tb[: tok.bos_id] >= 1).all()
    for text in [CJK, corpus.generate_document(1, 0)[0]]:
        ids = tok.encode(text)
        assert int(tb[ids].sum()) == len(text.encode("utf-8"))


def test_token_that_is_not_valid_utf8_on_its_own(tok):
    """A token holding part of a multi-byte character: decoding it to text gives U+FFFD (3 bytes)
    and miscounts; token_bytes counts its raw bytes."""
    tb = tok.token_bytes()
    partial = []
    for i in range(tok.bos_id):
        raw = tok.encoding.decode_single_token_bytes(i)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            partial.append((i, raw))
    assert partial
    # some of them are merges learned from the CJK text (more than one byte), not only base bytes
    assert any(len(raw) > 1 for _, raw in partial)
    for i, raw in partial:
        assert tb[i] == len(raw)
    i, raw = next((i, raw) for i, raw in partial if len(raw) > 1)
    assert len(tok.decode([i]).encode("utf-8")) != len(raw)  # the wrong way would miscount


def test_save_and_load(tok, tmp_path):
    path = tmp_path / "tokenizer.json"
    save_tokenizer(tok, path)
    again = Tokenizer.load(path)
    assert again.vocab_size == tok.vocab_size and again.bos_id == tok.bos_id
    assert again.pattern == tok.pattern
    text = corpus.generate_document(1, 5)[0] + CJK
    assert again.encode(text) == tok.encode(text)
    assert (again.token_bytes() == tok.token_bytes()).all()


def test_small_text_gives_a_smaller_vocabulary():
    small = train_tokenizer(iter(["abab abab cdcd"] * 10), 4096)
    assert 257 <= small.vocab_size < 300
    assert small.decode(small.encode("abab cd")) == "abab cd"


def test_rejects_tiny_vocab():
    with pytest.raises(ValueError):
        train_tokenizer(iter(["x"]), 100)
