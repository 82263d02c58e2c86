"""Loader throughput: packed tokens per second on one CPU core.

    .venv/bin/python benchmarks/bench_loader.py                 # bundled corpus (prepared if needed)
    .venv/bin/python benchmarks/bench_loader.py --dataset PATH --batch-size 32 --seconds 5

Pins the process to one core, then times `train_batches` (BOS-aligned best-fit packing into rows
of seq_len + 1 tokens, int32) and the validation stream. Target: >= 5M tokens/s, enough to feed an
H100 running the original's ~1.7M tokens/s with room to spare.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="bundled")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from autoresearch_portable.data import DataError, load, prepare

    try:
        ds = load(args.dataset)
    except DataError:
        prepare(args.dataset, log=lambda m: print(m, file=sys.stderr))
        ds = load(args.dataset)
    row = ds.seq_len + 1
    print(f"dataset {ds.name}: seq_len {ds.seq_len}, vocab {ds.vocab_size}, "
          f"{ds.meta['splits']['train']['n_docs']} train docs, batch {args.batch_size} x {row}")

    it = ds.train_batches(args.batch_size, seed=0)
    next(it)  # buffer fill, memory maps
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        for _ in range(10):
            n += next(it).size
    dt = time.perf_counter() - t0
    print(f"train_batches: {n / dt / 1e6:.1f}M tokens/s on one core ({n / 1e6:.1f}M tokens in {dt:.1f} s, "
          f"epoch {it.epoch})")

    t0 = time.perf_counter()
    rows = ds.max_val_rows
    v = ds.val_rows(rows)
    dt = time.perf_counter() - t0
    print(f"val_rows: {v.size / dt / 1e6:.1f}M tokens/s ({rows} rows, first call)")


if __name__ == "__main__":
    main()
