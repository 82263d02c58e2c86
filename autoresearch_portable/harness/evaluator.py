"""The evaluator: a process of its own that scores a trained model without running any of
train.py's code.

`arp train` starts it after train.py's process has ended, with a job file naming the plan, the
dataset and the hand-over folder where train.py's process left the model as an exported graph
and weights (torch.export / mx.export_function). It loads that graph, builds the scored rows
(fresh documents for the bundled corpora, drawn from a seed chosen here and now), checks
causality on those rows at unpredictable cuts, checks the entropy floor and writes the result
file the parent reads. Run as `python -m autoresearch_portable.harness.evaluator JOB.json`."""

from __future__ import annotations

import json
import secrets
import sys
import time
import traceback

import numpy as np

from autoresearch_portable import data
from autoresearch_portable.backends import load_backend
from autoresearch_portable.detect.plan import Plan
from autoresearch_portable.fsutil import atomic_write_json
from autoresearch_portable.harness.evalset import eval_set, perturbed_copies
from autoresearch_portable.harness.evaluate import causality_tolerance, judge, score

MAX_BATCH_ROWS = 64


def score_model(backend, model, ds, n_rows: int, batch_rows: int) -> dict:
    """Score `model` (exported or live) on a fresh evaluation set: val_bpb, causality, floor."""
    t0 = time.perf_counter()
    seed = secrets.randbits(63)  # chosen now: nothing before this moment could know the text
    rows = eval_set(ds, n_rows, seed)
    copies, cuts = perturbed_copies(rows.rows, np.random.default_rng(secrets.randbits(63)))
    batch = max(1, min(MAX_BATCH_ROWS, int(batch_rows or 8)))
    scored = score(backend, model, rows.rows, ds.token_bytes, batch, copies, cuts)
    result = judge(scored["nats"], scored["nbytes"], scored["change"], causality_tolerance(backend.plan.dtype),
                   rows.floor_bits, rows.text_bytes)
    if rows.floor_bits is not None and result.get("eval_bytes") != rows.text_bytes:
        result.update(status="invalid", reason=(
            f"scored {result.get('eval_bytes')} bytes but the text has {rows.text_bytes}: tokenizer mismatch"))
    result.update(
        eval_source=rows.source, eval_seed=seed,
        eval_tokens=int((ds.token_bytes[rows.rows[:, 1:]] > 0).sum()),  # scored targets
        eval_seconds=scored["seconds"], eval_wall_seconds=time.perf_counter() - t0,
    )
    return result


def evaluate(job: dict) -> dict:
    """The separate process's work: load the hand-over, score it."""
    plan = Plan.from_dict(job["plan"])
    backend = load_backend(plan)
    ds = data.load(job["dataset"])
    model = backend.load_model(job["handover"])
    result = score_model(backend, model, ds, int(job["eval_rows"]), job.get("batch_rows"))
    result.update(verified=True, num_params=int(sum(int(np.prod(p.shape)) for p in _params(model))))
    return result


def _params(model):
    params = model.parameters()
    return params.values() if isinstance(params, dict) else params


def main(argv: list[str]) -> int:
    job = json.loads(open(argv[0]).read())
    try:
        result = evaluate(job)
    except Exception as e:  # a graph that does not load or run: the parent reports it
        traceback.print_exc()
        result = dict(status="eval_error", reason=f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}")
    atomic_write_json(job["result_path"], result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
