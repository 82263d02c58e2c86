"""The training split of corpus v2, resumable: documents 0..N-1 of the training stream, N the
first count whose tokens (BOS included) reach the requested `train_tokens`, stored in shards of
`shard_docs` consecutive documents (shard s holds documents [s*shard_docs, (s+1)*shard_docs)) and
a last, partial `train-tail-<s>` shard.

So token index i of the split is the same on every machine and for every requested size: a
smaller split is a prefix of a larger one, and the validation split does not depend on it.

Resuming: each finished full shard is written atomically and then listed in `train-progress.json`
(atomically too), together with what its content depends on (corpus and format versions, seed,
shard size, the tokenizer's sha256). A prepare that was interrupted, or one that asks for more
tokens than an earlier one, keeps the listed shards whose files still hash as recorded and makes
only the rest; the tokenizer is kept too (`reusable_tokenizer`). Full shards beyond the requested
size stay on disk for a later, larger prepare; `arp prepare --force` deletes everything."""

from __future__ import annotations

from pathlib import Path

from autoresearch_portable.data.assemble import WrittenSplit
from autoresearch_portable.data.chunks import chunk_sizer, docs_to_reach, ordered_chunks
from autoresearch_portable.data.store import PROGRESS, TOKENIZER_FILE, ShardWriter, sha256_file
from autoresearch_portable.data.tokenizer import Tokenizer
from autoresearch_portable.fsutil import atomic_write_json, read_json

TAIL = "train-tail"


def read_progress(ddir: Path) -> dict | None:
    p = read_json(ddir / PROGRESS)
    return p if p is not None and isinstance(p.get("shards"), list) else None


def reusable_tokenizer(ddir: Path, key: dict) -> Tokenizer | None:
    """The tokenizer an earlier prepare with the same settings (`key`) trained, if it is intact."""
    p = read_progress(ddir)
    if p is None or not isinstance(p.get("key"), dict):
        return None
    recorded = dict(p["key"])
    sha = recorded.pop("tokenizer_sha256", None)
    path = ddir / TOKENIZER_FILE
    if recorded != key or not path.is_file() or sha256_file(path) != sha:
        return None
    return Tokenizer.load(path)


def _intact(ddir: Path, shard: dict) -> bool:
    for name, rec in shard.get("files", {}).items():
        p = ddir / name
        if not p.is_file() or p.stat().st_size != rec.get("size") or sha256_file(p) != rec.get("sha256"):
            return False
    return bool(shard.get("files"))


def finished_shards(ddir: Path, key: dict) -> list[dict]:
    """The leading full shards an earlier prepare with this exact `key` finished and that are
    intact; every other train shard file is deleted."""
    p = read_progress(ddir)
    keep: list[dict] = []
    if p is not None and p.get("key") == key:
        for i, shard in enumerate(p["shards"]):
            if shard.get("index") != i or not _intact(ddir, shard):
                break
            keep.append(shard)
    names = {n for s in keep for n in s["files"]}
    for f in ddir.glob("train-*.npy"):
        if f.name not in names:
            f.unlink(missing_ok=True)
    return keep


def _record(ddir: Path, key: dict, shards: list[dict]) -> None:
    atomic_write_json(ddir / PROGRESS, {"key": key, "shards": shards})


def train_split(ddir: Path, tok: Tokenizer, key: dict, seed: int, version: int, train_tokens: int,
                shard_docs: int, workers: int, log) -> WrittenSplit:
    """Make (or finish) the training split; `key` without the tokenizer's hash, which is added."""
    key = {**key, "tokenizer_sha256": sha256_file(ddir / TOKENIZER_FILE)}
    done = finished_shards(ddir, key)
    _record(ddir, key, done)
    shards, n_tokens = [], 0
    for s in done:
        if n_tokens + s["n_tokens"] > train_tokens:
            break
        shards.append(s)
        n_tokens += s["n_tokens"]
    if shards:
        log(f"training split: reusing {len(shards)} finished shard(s), {n_tokens / 1e6:.1f}M tokens")
    if n_tokens >= train_tokens:
        return _written(shards)
    index = len(shards)
    first = index * shard_docs
    if workers > 1:
        log(f"training split: generating and tokenizing {(train_tokens - n_tokens) / 1e6:.1f}M tokens in {workers} processes")

    made = [0, 0]  # documents and tokens generated here so far: the average document's tokens

    def missing() -> float:
        return train_tokens - n_tokens

    chunk_end = chunk_sizer(missing, lambda: made[1] / made[0] if made[0] else 500.0, workers,
                            lambda start: (start // shard_docs + 1) * shard_docs)
    w = ShardWriter(ddir, "train", index, tok)
    for start, stop, tokens, lens, nbytes in ordered_chunks(seed, first, chunk_end, tok, version, workers):
        made[0] += len(lens)
        made[1] += int(lens.sum())
        k = docs_to_reach(lens, train_tokens - n_tokens)
        if k is not None:  # the split ends inside this chunk
            w.add_tokens(tokens[: int(lens[:k].sum())], lens[:k], int(nbytes[:k].sum()))
            n_tokens += int(lens[:k].sum())
            full = start + k == (index + 1) * shard_docs
            if not full:
                w.stem = f"{TAIL}-{index:05d}"
            shards.append(_close(w, index))
            if full:
                _record(ddir, key, _with(done, shards[-1]))
            return _written(shards)
        w.add_tokens(tokens, lens, int(nbytes.sum()))
        n_tokens += int(lens.sum())
        if stop == (index + 1) * shard_docs:
            shards.append(_close(w, index))
            done = _with(done, shards[-1])
            _record(ddir, key, done)
            log(f"training split: shard {index} done ({n_tokens / 1e6:.1f}M of {train_tokens / 1e6:.1f}M tokens)")
            index += 1
            w = ShardWriter(ddir, "train", index, tok)
    raise AssertionError("unreachable: ordered_chunks is endless")


def _with(done: list[dict], shard: dict) -> list[dict]:
    """The finished shards with `shard` (the next one, or one already listed: the same content)."""
    i = shard["index"]
    return done[:i] + [shard] + done[i + 1:]


def _close(w: ShardWriter, index: int) -> dict:
    rec, files = w.close()
    return {**rec, "index": index, "files": files}


def _written(shards: list[dict]) -> WrittenSplit:
    files = {n: r for s in shards for n, r in s["files"].items()}
    return WrittenSplit([{k: v for k, v in s.items() if k not in ("files", "index")} for s in shards], files)
