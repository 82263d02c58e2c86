"""Bundled corpus generation rate on one CPU core: documents, UTF-8 bytes and tokens per second.

    .venv/bin/python benchmarks/bench_corpus.py                  # corpus v2, ~10 s of generation
    .venv/bin/python benchmarks/bench_corpus.py --version 1 --seconds 5 --start 1000000

Pins the process to one core and times the document generator (corpus.generate_document or
corpus2.generate_document) over consecutive indices from --start (any range is generated
independently, so one core's rate times the cores is the parallel rate). Tokens per second divide
the byte rate by the bytes per token of a vocab-4096 BPE trained here on the first ~2 MB of the
stream (the bundled datasets' vocabulary size); tokenizing itself is not timed. Target (issue 12):
>= 600M tokens in <= 5 min on 16 cores, i.e. >= 125k tokens/s per core.
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", type=int, choices=(1, 2), default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--start", type=int, default=0, help="first document index timed")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from autoresearch_portable.data import corpus, corpus2
    from autoresearch_portable.data.tokenizer import train_tokenizer

    generate = corpus.generate_document if args.version == 1 else corpus2.generate_document
    sample, n = [], 0
    while n < 2_000_000:
        sample.append(generate(args.seed, len(sample))[0])
        n += len(sample[-1].encode("utf-8"))
    tok = train_tokenizer(sample, 4096)
    bytes_per_token = n / sum(len(x) for x in tok.encode_batch(sample))

    docs = nbytes = 0
    i = args.start
    t0 = time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < args.seconds:
        for _ in range(100):
            nbytes += len(generate(args.seed, i)[0].encode("utf-8"))
            i += 1
        docs += 100
    tps = nbytes / elapsed / bytes_per_token
    print(
        f"corpus v{args.version}, one core: {docs / elapsed:,.0f} docs/s, {nbytes / elapsed / 1e6:.2f} MB/s, "
        f"{bytes_per_token:.2f} bytes/token (vocab 4096) -> {tps / 1e3:,.0f}k tokens/s; "
        f"600M tokens on 16 such cores: {600e6 / (16 * tps):.0f} s"
    )


if __name__ == "__main__":
    main()
