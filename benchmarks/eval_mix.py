"""Does the text the evaluator scores depend on how many rows it scores? For a generated corpus
the evaluator packs whole fresh documents into rows (harness/score/evalset.py); this prints the
mean entropy floor (bits per byte of the scored text, known exactly for generated text) of the
evaluation set at each row count, over many fresh streams. No model, no training: the tokenizer
and the generator only.

    python benchmarks/eval_mix.py --rows 4,7,13,16,32,64,128 --streams 60 --out benchmarks/measured/eval-mix.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from autoresearch_portable import data
from autoresearch_portable.harness.score.evalset import eval_set


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="bundled-v2")
    ap.add_argument("--rows", default="4,7,13,16,32,64,128")
    ap.add_argument("--streams", type=int, default=60, help="fresh streams (evaluator seeds) per row count")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    ds = data.load(args.dataset)
    out = dict(dataset=args.dataset, streams=args.streams, rows={})
    for n in (int(x) for x in args.rows.split(",")):
        floors = []
        for seed in range(args.streams):
            rows = eval_set(ds, n, 1000 + seed)
            floors.append(float(rows.floor_bits.sum()) / rows.text_bytes)
        mean, se = statistics.fmean(floors), statistics.stdev(floors) / len(floors) ** 0.5
        out["rows"][str(n)] = dict(floor_bpb=round(mean, 4), se=round(se, 4))
        print(f"{n:4d} rows: floor {mean:.4f} ± {se:.4f} bits per byte", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
