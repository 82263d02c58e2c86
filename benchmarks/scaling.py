"""Does the bundled corpus keep scaling? A sweep of model sizes x token counts on this machine,
fitted as a power law of the excess over the corpus's entropy floor (issue 12, item 2).

    flock /work/cpu.lock python benchmarks/scaling.py --dataset bundled-v2 \\
        --sizes 1x64,2x128,3x192,4x256 --max-flops 8e12 --doublings 6 --batch-tokens 1024 --max-minutes 40 \\
        --out benchmarks/measured/scaling-bundled.json                       # ~30-40 min, 2-core CPU

    python benchmarks/scaling.py --dry-run ...     # the grid, FLOPs per token and total FLOPs; no training

Every point is the real baseline (train_template.py, its model, Muon/AdamW and LR schedule, and the
allocator settings the harness gives train.py: the script restarts itself with them) rendered
with the point's depth and width and trained *in this process* (no harness subprocess, no export,
no separate evaluator: this measures the corpus, not a train.py) on the prepared training split
for a fixed number of tokens; the schedule's progress is the share of those tokens. FLOPs per
token are counted as the harness counts them (the backend's FLOP counter on one real step).

Compute levels are C_max/2^k, k = 0..doublings; each size trains at every level where it gets at
least --min-steps optimizer steps of --batch-tokens tokens and stays within one epoch of the
training split. Points run cheapest first; a size is not trained at a level once a bigger size
beat it at a lower level (the compute-optimal size grows with compute; --no-prune trains all);
a point whose estimated time (from its size's measured speed) would pass --max-minutes is
skipped. Skipped points are recorded with the reason. Every point is scored on the same whole documents of the
validation stream (generated again from the corpus generator, so the entropy floor of exactly
the scored text is known): val_bpb, its standard error, the excess over the floor.

The output (--out, rewritten after every point): floor_bpb, points (flops, params, tokens,
val_bpb, val_bpb_stderr, excess, ...), the compute frontier (the best point at each level), and
the analysis of benchmarks/scaling_law.py: fit (A, alpha: excess = A*C^-alpha over the frontier's
top 4 doublings, C in FLOPs, the regime the sweep ends in), excess_at_1e17 (with a 2-sigma range),
whole_sweep (the same law over the whole frontier, whose first doublings fall much faster), and
checks: doublings covered (>= 6); no flattening in the last 2 doublings (the law fitted over the
2 doublings before them predicts their points; one above its prediction by more than 2 sigma of
its eval noise and the prediction's error is flattening) while the excess still falls across them;
excess_at_1e17 >= 0.05 by both laws. The noise scale is each point's eval standard error: rough
both ways (every point scores the same rows, which makes differences between points more precise
than that, and each point trains one seed, whose noise is not measured).

On bundled-v2 the JSON also holds `knowledge_bound` (benchmarks/capacity.py: the excess the knowledge
base leaves for any model trained with C FLOPs) and `two_part`: the same checks for
excess = bound(C) + A*C^-alpha, the law that separates the part no CPU budget learns (rare facts,
known from the generator) from the part it does (fitted). `--reanalyse JSON` recomputes both.
`--extend JSON --max-flops C` adds levels (e.g. one doubling above the old top) to a finished
sweep measured with the same recipe, instead of measuring its levels again. `--reanalyse JSON
--held-out LATER` tests the finished sweep's law on doublings a later sweep measured (e.g. one size
at the old top and one doubling above it, on another machine): `held_out` in JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from scaling_law import analyse, dominated, held_out, knowledge_bound, plan_grid, relevel  # noqa: E402

TEMPLATE_IMPORT = "from autoresearch_portable.harness.run.runtime import Runtime\n"
HEAD_DIM = 64


class PointFailed(Exception):
    pass


class _Measured(Exception):
    pass


class SweepRuntime:
    """What train_template.py's `rt` offers, for one sweep point trained in this process: the
    training split, a token budget in place of the clock, FLOPs counted as the harness counts
    them. With measure_only, `start` counts the FLOPs and stops the template there."""

    def __init__(self, backend, dataset, tokens: int, seed: int = 0, measure_only: bool = False):
        self.backend, self._data = backend, dataset
        self.seq_len, self.vocab_size = dataset.seq_len, dataset.vocab_size
        self.target, self.seed, self.measure_only = tokens, seed, measure_only
        self.steps, self._rows, self._batch = 0, 0, 0
        self.model, self.flops, self.num_params, self.losses = None, {}, 0, []

    @property
    def trained_tokens(self) -> int:
        return max(0, self._rows - self._batch) * self.seq_len  # the latest batch is fetched ahead

    @property
    def progress(self) -> float:
        return min(1.0, self.trained_tokens / self.target)

    @property
    def done(self) -> bool:
        return self.trained_tokens >= self.target

    def train_loader(self, batch_size: int):
        self._batch = batch_size
        for rows in self._data.train_batches(batch_size, seed=self.seed):
            self._rows += rows.shape[0]
            yield self.backend.to_device(rows)

    def start(self, model, config=None) -> None:
        self.flops = self.backend.train_flops_per_token(model, self.seq_len, self.vocab_size)
        self.num_params = self.backend.count_params(model)
        if self.measure_only:
            raise _Measured()
        self.t0 = time.perf_counter()

    def step(self, loss: float) -> None:
        self.steps += 1
        self.losses.append(loss)

    def fail(self, reason: str) -> None:
        raise PointFailed(reason)

    def finish(self, model) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.model = model


def parse_size(text: str) -> tuple[int, int]:
    depth, _, width = text.lower().partition("x")
    if not (depth.isdigit() and width.isdigit() and int(depth) > 0 and int(width) % HEAD_DIM == 0):
        raise SystemExit(f"error: a size is DEPTHxWIDTH with WIDTH a multiple of {HEAD_DIM} (e.g. 2x128); got {text!r}")
    return int(depth), int(width)


def run_template(backend, ds, size, batch_tokens: int, tokens: int, seed: int = 0, measure_only=False) -> SweepRuntime:
    """Execute the rendered template with a SweepRuntime as its `rt`."""
    from autoresearch_portable.harness.baseline.template import asset, render_template

    depth, width = size
    text = render_template(asset("train_template.py").read_text(), dict(
        DEPTH=depth, MODEL_DIM=width, HEAD_DIM=HEAD_DIM, DEVICE_BATCH_SIZE=batch_tokens // ds.seq_len,
        TOTAL_BATCH_SIZE=batch_tokens))
    if TEMPLATE_IMPORT not in text:
        raise SystemExit("error: train_template.py no longer imports Runtime the way this benchmark replaces it")
    rt = SweepRuntime(backend, ds, tokens, seed, measure_only)
    code = compile(text.replace(TEMPLATE_IMPORT, ""), "train_template.py", "exec")
    try:
        exec(code, {"__name__": "__scaling__", "Runtime": lambda: rt})
    except _Measured:
        pass
    return rt


def extend(doc: dict, grid: list[dict], args) -> tuple[dict, list[dict]]:
    """An earlier sweep's JSON (--extend) with this run's settings added: its points join this
    run's (same dataset, generator, eval rows, recipe), levels are counted from the larger top,
    and the grid drops the (size, level) points it already measured."""
    old = json.loads(Path(args.extend).read_text())
    st = old["settings"]
    same = (old["dataset"] == doc["dataset"] and old["dataset_meta"] == doc["dataset_meta"]
            and abs(old["floor_bpb"] - doc["floor_bpb"]) < 1e-12 and old["eval"] == doc["eval"]
            and all(st[k] == getattr(args, k) for k in ("batch_tokens", "seed", "eval_rows", "min_steps")))
    if not same:
        raise SystemExit(f"error: {args.extend} was measured with another dataset, evaluation or recipe; it cannot be extended")
    top = max(args.max_flops, old.get("top_flops") or st["max_flops"])
    old["points"] = relevel(old["points"], top)
    old["skipped"] = relevel(old["skipped"], top)
    old["top_flops"] = top
    old["extensions"] = old.get("extensions", []) + [dict(vars(args), created=doc["created"])]
    done = {(p["size"], p["level"]) for p in old["points"]}
    return old, [p for p in relevel(grid, top) if (p["size"], p["level"]) not in done]


def reanalyse(path: str, later: str | None = None) -> dict:
    """Recompute the bound and the analysis of a finished sweep's JSON with the current code; with
    `later` (a sweep measured afterwards, e.g. one doubling above the top), its held-out test."""
    doc = json.loads(Path(path).read_text())
    known = None
    if doc.get("knowledge_bound"):
        top = doc.get("top_flops") or doc["settings"]["max_flops"]
        levels = [top / 2**k for k in range(max(p["level"] for p in doc["points"]) + 1)]
        doc["knowledge_bound"], known = knowledge_bound(doc["knowledge_bound"]["bytes_per_token"], levels)
    doc.update(analyse([q for q in doc["points"] if q.get("excess") is not None], doc["floor_bpb"], known=known))
    if later:
        other = json.loads(Path(later).read_text())
        if (other["dataset"], other["dataset_meta"], other["eval"]) != (doc["dataset"], doc["dataset_meta"], doc["eval"]):
            raise SystemExit(f"error: {later} was measured on another dataset or evaluation than {path}")
        doc["held_out"] = dict(held_out(doc, other), file=Path(later).name, created=other["created"])
    write(path, doc)
    return doc


# --- scoring -----------------------------------------------------------------------------------------

def eval_set(ds, n_rows: int):
    """n_rows rows of whole documents of the validation stream (the evaluator's packing, at the
    dataset's validation seed: the same rows for every point), with the information content of
    each row."""
    from autoresearch_portable.data.common import CORPUS_VERSIONS
    from autoresearch_portable.harness.score.evalset import eval_set as harness_eval_set

    if (ds.meta.get("kind") or ds.name) not in CORPUS_VERSIONS:
        raise SystemExit(f"error: {ds.name!r} has no generator with a known entropy floor (use one of {', '.join(CORPUS_VERSIONS)})")
    ev = harness_eval_set(ds, n_rows, int(ds.meta["config"]["val_seed"]))
    return ev.rows, ev.floor_bits, ev.text_bytes


def score(backend, model, ds, ev) -> dict:
    from autoresearch_portable.harness.score.passes import judge, score as score_rows

    rows, bits, text_bytes = ev
    s = score_rows(backend, model, rows, ds.token_bytes, 8)
    if int(s["nbytes"].sum()) != text_bytes:
        raise SystemExit(f"error: scored {int(s['nbytes'].sum())} bytes of tokens but the documents hold {text_bytes}")
    return judge(s["nats"], s["nbytes"], None, 0.0, bits, text_bytes)


# --- the sweep ---------------------------------------------------------------------------------------

def write(path: str | None, doc: dict) -> None:
    if path:
        from autoresearch_portable.fsutil import atomic_write_json

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(path), doc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="bundled-v2")
    ap.add_argument("--sizes", default="1x64,2x128,3x192,4x256", help="DEPTHxWIDTH,... (head dim 64)")
    ap.add_argument("--max-flops", type=float, default=8e12, help="the top compute level C_max (training FLOPs)")
    ap.add_argument("--doublings", type=int, default=6, help="levels C_max/2^k for k = 0..doublings")
    ap.add_argument("--batch-tokens", type=int, default=1024, help="tokens per optimizer step (a multiple of seq_len)")
    ap.add_argument("--min-steps", type=int, default=50, help="skip a (size, level) with fewer optimizer steps")
    ap.add_argument("--eval-rows", type=int, default=64, help="rows of whole validation documents scored per point")
    ap.add_argument("--max-minutes", type=float, default=40.0, help="skip points that would end after this")
    ap.add_argument("--backend", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-prune", action="store_true", help="train every size at every level")
    ap.add_argument("--dry-run", action="store_true", help="print the grid and its FLOPs, train nothing")
    ap.add_argument("--out", default=None, help="JSON result (e.g. benchmarks/measured/scaling-bundled.json)")
    ap.add_argument("--extend", metavar="JSON", help="add this run's levels to an earlier sweep's JSON (written to --out, default JSON)")
    ap.add_argument("--reanalyse", metavar="JSON", help="recompute the analysis of a finished sweep's JSON, train nothing")
    ap.add_argument("--held-out", metavar="JSON", help="with --reanalyse: test its law on this later sweep's doublings")
    args = ap.parse_args()
    if args.extend and not args.out:
        args.out = args.extend
    if args.reanalyse:
        doc = reanalyse(args.reanalyse, args.held_out)
        print(json.dumps(dict(fit=doc.get("fit"), excess_at_1e17=doc.get("excess_at_1e17"), checks=doc.get("checks"),
                              two_part=doc.get("two_part"), held_out=doc.get("held_out")), indent=2, default=str))
        return
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731

    import torch

    from autoresearch_portable import data
    from autoresearch_portable.backends import load_backend
    from autoresearch_portable.detect import make_plan, probe

    plan = make_plan(probe(), args.backend)
    if plan.backend == "mlx":
        raise SystemExit("error: the scaling sweep trains the torch template; use --backend cpu, cuda or mps")
    backend = load_backend(plan)
    data.prepare(args.dataset, log=log)
    ds = data.load(args.dataset)
    if args.batch_tokens % ds.seq_len:
        raise SystemExit(f"error: --batch-tokens must be a multiple of the sequence length {ds.seq_len}")
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    train_tokens = int(ds.meta["splits"]["train"]["n_tokens"])
    fpt, params = {}, {}
    for size in sizes:
        rt = run_template(backend, ds, size, args.batch_tokens, 1, measure_only=True)
        fpt[size], params[size] = rt.flops["flops_per_token"], rt.num_params
        log(f"size {size[0]}x{size[1]}: {params[size] / 1e6:.2f}M params, {fpt[size] / 1e6:.2f} MFLOP/token")
    grid = plan_grid(sizes, fpt, args.max_flops, args.doublings, args.batch_tokens, args.min_steps, train_tokens)
    log(f"{len(grid)} points, {sum(p['flops'] for p in grid):.3g} training FLOPs in all, "
        f"levels {args.max_flops / 2 ** args.doublings:.3g}..{args.max_flops:.3g}")
    for p in grid:
        log(f"  level {p['level']}: {p['size']:>7} {p['steps']:6d} steps {p['tokens'] / 1e6:7.2f}M tokens {p['flops']:.3g} FLOPs")
    if args.dry_run:
        return

    ev = eval_set(ds, args.eval_rows)
    floor = float(ev[1].sum()) / ev[2]
    doc = dict(dataset=ds.name, dataset_meta=dict(generator_version=ds.meta.get("generator_version"),
                                                  train_tokens=train_tokens, seq_len=ds.seq_len, vocab_size=ds.vocab_size),
               device=plan.device, backend=plan.backend, dtype=plan.dtype, torch=torch.__version__,
               threads=torch.get_num_threads(), floor_bpb=floor, dataset_floor_bpb=ds.floor_bpb,
               eval=dict(rows=args.eval_rows, text_bytes=ev[2], source="whole documents of the validation stream"),
               settings=dict(vars(args)), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), points=[], skipped=[],
               top_flops=args.max_flops)
    if args.extend:
        doc, grid = extend(doc, grid, args)
    top, before = doc["top_flops"], doc.get("wall_minutes") or 0.0
    known = None
    if (ds.meta.get("kind") or ds.name) == "bundled-v2":
        bpt = ev[2] / int((ds.token_bytes[ev[0]] > 0).sum())
        levels = [top / 2**k for k in range(max(p["level"] for p in doc["points"] + grid) + 1)]
        doc["knowledge_bound"], known = knowledge_bound(bpt, levels)
        log(f"knowledge-base bound: excess >= {doc['knowledge_bound']['at_1e17']:.4f} bpb at 1e17 FLOPs")
    t_start, rates = time.time(), {}  # rates: training FLOP/s measured per size
    for p in grid:
        elapsed = time.time() - t_start
        rate = rates.get(p["size"]) or (min(rates.values()) if rates else None)
        why = None if args.no_prune else dominated(p, doc["points"])
        if why is None and rate and elapsed + p["flops"] / rate * 1.1 > 60 * args.max_minutes:
            why = f"would end after --max-minutes {args.max_minutes:g}"
        if why:
            doc["skipped"].append(dict(p, why=why))
            log(f"skip {p['size']} level {p['level']}: {why}")
            continue
        size = (p["depth"], p["width"])
        try:
            rt = run_template(backend, ds, size, args.batch_tokens, p["tokens"], args.seed)
        except PointFailed as e:
            doc["points"].append(dict(p, status="diverged", reason=str(e)))
            log(f"{p['size']} level {p['level']}: diverged ({e})")
            continue
        t = time.perf_counter()
        s = score(backend, rt.model, ds, ev)
        flops = rt.trained_tokens * rt.flops["flops_per_token"]
        rates[p["size"]] = flops / rt.seconds
        point = dict(p, status=s["status"], flops=flops, params=rt.num_params, tokens=rt.trained_tokens,
                     steps=rt.steps, val_bpb=s.get("val_bpb"), val_bpb_stderr=s.get("val_bpb_stderr"),
                     excess=s.get("excess_bpb"), excess_stderr=s.get("excess_stderr"),
                     final_train_loss=rt.losses[-1] if rt.losses else None, train_seconds=rt.seconds,
                     eval_seconds=time.perf_counter() - t, tokens_per_second=rt.trained_tokens / rt.seconds)
        doc["points"].append(point)
        log(f"{p['size']:>7} level {p['level']}: val_bpb {point['val_bpb']:.4f} ± {point['val_bpb_stderr']:.4f} "
            f"(excess {point['excess']:.4f}), {flops:.3g} FLOPs, {rt.steps} steps, {point['tokens_per_second']:,.0f} tok/s, "
            f"{rt.seconds:.0f}+{point['eval_seconds']:.0f}s ({(time.time() - t_start) / 60:.1f} min so far)")
        del rt
        gc.collect()
        doc.update(analyse([q for q in doc["points"] if q.get("excess") is not None], floor, known=known), wall_minutes=before + (time.time() - t_start) / 60)
        write(args.out, doc)
    c = doc.get("checks") or {}
    print(json.dumps(dict(floor_bpb=floor, fit=doc.get("fit"), excess_at_1e17=doc.get("excess_at_1e17"),
                          knowledge_bound_at_1e17=(doc.get("knowledge_bound") or {}).get("at_1e17"),
                          checks={k: v for k, v in c.items() if k != "last_2_doublings"}), indent=2))


def with_harness_allocator() -> None:
    """Train as the harness's train.py does: restart this process once with the allocator settings
    the runner gives it (runner.MALLOC_SETTINGS; glibc reads them only at start-up)."""
    import os

    from autoresearch_portable.harness.run.launch import MALLOC_SETTINGS

    if any(os.environ.get(k) != v for k, v in MALLOC_SETTINGS.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, **MALLOC_SETTINGS))


if __name__ == "__main__":
    with_harness_allocator()
    main()
