"""The generated corpora's document generators, chosen by dataset kind in one place: `prepare`
builds the splits with them and the evaluator scores fresh documents from them."""

from __future__ import annotations

from typing import Callable

from autoresearch_portable.data import corpus, corpus2
from autoresearch_portable.data.common import CORPUS_VERSIONS

# corpus version -> its document generator (by number, so a worker process is told it by pickle)
GENERATORS: dict[int, Callable] = {1: corpus.generate_document, 2: corpus2.generate_document}


def document_generator(kind: str | None) -> Callable | None:
    """generate_document(seed, index) -> (text, bits) of a generated dataset kind, else None."""
    version = CORPUS_VERSIONS.get(kind or "")
    return None if version is None else GENERATORS[version]


def generate_docs(seed: int, target_bytes: int, version: int = 1) -> tuple[list[str], float, int]:
    """Documents 0, 1, ... of a stream until they hold at least target_bytes of UTF-8 text:
    (texts, their information in bits, their UTF-8 bytes)."""
    generate = GENERATORS[version]
    docs: list[str] = []
    bits = 0.0
    n = 0
    while n < target_bytes:
        text, b = generate(seed, len(docs))
        docs.append(text)
        bits += b
        n += len(text.encode("utf-8"))
    return docs, bits, n
