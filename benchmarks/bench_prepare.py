"""The rate of `arp prepare --dataset bundled-v2`'s training split: documents generated and
tokenized in worker processes and written as shards (data/resume.py: the same code as prepare),
in tokens per second, and per core.

    .venv/bin/python benchmarks/bench_prepare.py --workers 1 2 --repeats 2 --tokens 8388608

The tokenizer is trained once (on the default 8 MB sample); each timed run then makes the whole
training split from nothing in a fresh folder (process start-up included), so
rate = tokens / seconds and per core = rate / workers. The last line projects 600M tokens on 16
cores from the best per-core rate of the largest worker count.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=1 << 23)
    args = ap.parse_args()

    from autoresearch_portable.data import resume
    from autoresearch_portable.data.bundled import v2_resume_key
    from autoresearch_portable.data.common import DATASETS, TRAIN_SEED, VAL_SEED
    from autoresearch_portable.data.generated import generate_docs
    from autoresearch_portable.data.store import TOKENIZER_FILE
    from autoresearch_portable.data.tokenizer import save_tokenizer, train_tokenizer

    spec = DATASETS["bundled-v2"]
    cfg = dict(train_tokens=args.tokens, val_bytes=spec["val_bytes"], tokenizer_train_bytes=spec["tokenizer_train_bytes"],
               shard_docs=spec["shard_docs"], train_seed=TRAIN_SEED, val_seed=VAL_SEED)
    work = Path(tempfile.mkdtemp(prefix="arp-bench-prepare-"))
    try:
        sample, _, _ = generate_docs(TRAIN_SEED, cfg["tokenizer_train_bytes"], 2)
        tok = train_tokenizer(iter(sample), spec["vocab_size"])
        save_tokenizer(tok, work / TOKENIZER_FILE)
        best: dict[int, float] = {}
        for workers in args.workers:
            for r in range(args.repeats):
                ddir = work / f"w{workers}-{r}"
                ddir.mkdir()
                shutil.copy(work / TOKENIZER_FILE, ddir / TOKENIZER_FILE)
                t0 = time.perf_counter()
                split = resume.train_split(ddir, tok, v2_resume_key(cfg), TRAIN_SEED, 2, args.tokens,
                                           cfg["shard_docs"], workers, log=lambda m: None)
                dt = time.perf_counter() - t0
                n = sum(s["n_tokens"] for s in split.shards)
                per_core = n / dt / workers
                best[workers] = max(best.get(workers, 0.0), per_core)
                print(f"workers {workers}, run {r + 1}: {n / 1e6:.2f}M tokens in {dt:.1f} s = {n / dt / 1e3:,.0f}k tokens/s, "
                      f"{per_core / 1e3:,.0f}k tokens/s per core", flush=True)
                shutil.rmtree(ddir)
        w = max(best)
        print(f"600M tokens on 16 cores at {best[w] / 1e3:,.0f}k tokens/s per core (best of {w} workers): "
              f"{600e6 / (16 * best[w]):.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
