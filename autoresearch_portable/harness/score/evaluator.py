"""The evaluator: a process of its own that scores a trained model without running any of
train.py's code.

`arp train` hands it the job after train.py's process has ended: a file naming the plan, the
dataset and the hand-over folder where train.py's process left the model as an exported graph
and weights (torch.export / mx.export_function). It loads that graph, builds the scored rows
(fresh documents for the bundled corpora, drawn from a seed chosen here and now), checks
causality on those rows at unpredictable cuts, that no row's score depends on the rows batched
with it, that the graph is the model rt.start counted (parameters, matmul FLOPs) and keeps no
state, checks the entropy floor and writes the result file the parent reads. Run as
`python -m autoresearch_portable.harness.score.evaluator JOB.json`, or started beside train.py with
`--wait '{"plan": ..., "dataset": ...}'`: it imports the backend and opens the dataset while the
run trains, then reads the job file's path from its stdin (an empty line: nothing to score)."""

from __future__ import annotations

import json
import secrets
import sys
import time
import traceback

import numpy as np

from autoresearch_portable import data
from autoresearch_portable.backends import backend_class, load_backend
from autoresearch_portable.detect.plan import Plan
from autoresearch_portable.fsutil import atomic_write_json
from autoresearch_portable.harness.score.evalset import eval_set
from autoresearch_portable.harness.score.passes import (batch_tolerance, causality_tolerance, graph_problem, judge,
                                                    rejected, score)


def score_model(backend, model, ds, n_rows: int, batch_rows: int | None) -> dict:
    """Score `model` (exported or live) on a fresh evaluation set: val_bpb, causality, batch
    independence, floor."""
    t0 = time.perf_counter()
    seed = secrets.randbits(63)  # chosen now: nothing before this moment could know the text
    rows = eval_set(ds, n_rows, seed)
    rng = np.random.default_rng(secrets.randbits(63))  # cuts, arrangement, fillers: unpredictable too
    scored = score(backend, model, rows.rows, ds.token_bytes, batch_rows, rng, causality=True, batch_check=True)
    dtype = backend.plan.dtype
    result = judge(scored["nats"], scored["nbytes"], scored["change"], causality_tolerance(dtype),
                   rows.floor_bits, rows.text_bytes, scored["batch_change"], batch_tolerance(dtype))
    if rows.floor_bits is not None and result.get("eval_bytes") != rows.text_bytes:
        result.update(status="invalid", reason=(
            f"scored {result.get('eval_bytes')} bytes but the text has {rows.text_bytes}: tokenizer mismatch"))
    result.update(
        eval_source=rows.source, eval_seed=seed,
        eval_tokens=int((ds.token_bytes[rows.rows[:, 1:]] > 0).sum()),  # scored targets
        eval_rows_per_pass=scored["rows_per_pass"],
        eval_seconds=scored["seconds"], eval_wall_seconds=time.perf_counter() - t0,
    )
    return result


def evaluate(job: dict) -> dict:
    """The separate process's work: load the hand-over, count it, score it. job["counted"]
    (optional): what rt.start(model) counted in train.py's process, {num_params,
    matmul_flops_per_token}; the graph must be that model."""
    plan = Plan.from_dict(job["plan"])
    backend = load_backend(plan)
    ds = data.load(job["dataset"])
    model = backend.load_model(job["handover"])
    counts = dict(graph_num_params=backend.graph_params(model),
                  graph_matmul_flops_per_token=backend.graph_matmul_flops_per_token(model, ds.seq_len, ds.vocab_size))
    problem = graph_problem(backend.graph_writes(model), job.get("counted"), counts["graph_num_params"],
                            counts["graph_matmul_flops_per_token"])
    result = score_model(backend, model, ds, int(job["eval_rows"]), job.get("batch_rows"))
    result.update(verified=True, num_params=counts["graph_num_params"], **counts)
    if problem:  # whatever the score: it is not the score of the model the run counted
        result = rejected(result, problem)
    return result


def warm_up(plan: dict, dataset: str) -> None:
    """What every evaluation pays before it can score, paid ahead: Python's and the backend's
    imports (torch or mlx) and the dataset's files. No device is touched (a GPU context would take
    memory from the training that runs meanwhile)."""
    backend_class(plan["backend"]).warm_up()
    data.load(dataset)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--wait"]:  # started beside train.py: warm up, then wait for the job's path
        start = json.loads(argv[1])
        try:
            warm_up(start["plan"], start["dataset"])
        except Exception:  # noqa: BLE001 - the evaluation itself says what is wrong, in its result
            pass
        line = sys.stdin.readline().strip()
        if not line:  # the run ended without a hand-over: nothing to score
            return 0
        argv = [line]
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
