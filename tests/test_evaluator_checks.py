"""The evaluator's checks that scoring does not depend on how rows are batched and that the
handed-over graph is the model rt.start counted: the pure decisions, then small real models
exported with the backend and scored by score_model (torch and MLX, CPU, tiny shapes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from template_loader import load_template
from autoresearch_portable.backends.torch_common import TorchBackend
from autoresearch_portable.detect.plan import Plan
from autoresearch_portable.harness.score.passes import (FLOP_SLACK, MAX_BATCH_ROWS, arrangements, graph_problem, judge,
                                                    rows_per_pass, score)
from autoresearch_portable.harness.score.evaluator import evaluate, score_model

ROOT = Path(__file__).resolve().parent.parent
VOCAB, T, BOS = 64, 32, 0


def plan(backend: str = "cpu") -> Plan:
    return Plan(backend=backend, device="cpu", dtype="float32", dtype_mode="none", grad_scaler=False,
                attention="mlx_fast" if backend == "mlx" else "sdpa_mask", compile=False, pin_memory=False,
                peak_flops=None, peak_flops_source="test")


# --- the pure decisions -----------------------------------------------------------------------

def test_every_pass_has_the_same_rows_and_the_second_arrangement_changes_batch_mates():
    rng = np.random.default_rng(0)
    for n, b in ((6, 2), (10, 4), (64, 8), (3, 8), (2, 2)):
        first, second, differ = arrangements(n, b, rng)
        for parts in (first, second):
            assert sorted(np.concatenate(parts).tolist()) == list(range(n))  # every row once
            assert max(len(p) for p in parts) <= b
        assert len(second) >= 2 and differ.all(), (n, b)
    first, second, differ = arrangements(5, 1, rng)  # one row per pass: no batch-mates to change
    assert len(first) == 5 and second == [] and not differ.any()
    assert arrangements(1, 4, rng)[1] == []


def test_rows_per_pass_keeps_the_logits_bound_and_a_graphs_fixed_batch():
    assert rows_per_pass(8, 100, 32, 64) == 8
    assert rows_per_pass(8, 3, 32, 64) == 3
    assert rows_per_pass(64, 100, 8192, 2**17) == 1  # two passes' logits must fit MAX_LOGIT_BYTES
    assert rows_per_pass(5, 100, 32, 64, static_batch=8) == 8
    assert rows_per_pass(12, 100, 32, 64, static_batch=8) == 16
    assert rows_per_pass(None, 100, 32, 64) == 8  # a run that reported no batch
    assert rows_per_pass(1000, 100, 32, 64) == MAX_BATCH_ROWS


def test_judge_batch_dependence():
    nats, nbytes = np.full(10, 100.0), np.full(10, 100)
    ok = judge(nats, nbytes, np.zeros(10), 1e-5, batch_change=np.zeros(8), batch_tol=1e-5)
    assert ok["status"] == "ok" and ok["batch_check"] == dict(rows_checked=8, rows_failed=0, max_change=0.0,
                                                              tolerance=1e-5)
    moved = judge(nats, nbytes, np.zeros(10), 1e-5, batch_change=np.array([0.0] * 7 + [3e-4]), batch_tol=1e-5)
    assert moved["status"] == "invalid" and "depends on the other rows of its batch" in moved["reason"]
    assert moved["batch_check"]["rows_failed"] == 1 and "val_bpb" not in moved and moved["rejected_val_bpb"] > 0
    # a pass of copies is its rows' pass before the cut, so a model that mixes rows without looking
    # ahead passes causality: a model that fails both looks ahead, and that is the reason given
    both = judge(nats, nbytes, np.full(10, 0.1), 1e-5, batch_change=np.full(8, 0.1), batch_tol=1e-5)
    assert "later tokens" in both["reason"]
    assert judge(nats, nbytes, None, 1e-5, batch_change=np.array([np.nan]))["status"] == "diverged"


def test_graph_problem_verdicts():
    counted = dict(num_params=1000, matmul_flops_per_token=6000.0)
    assert graph_problem([], counted, 1000, 2000.0) is None
    assert graph_problem([], counted, 1000, 2000.0 * (1 + FLOP_SLACK) * 0.999) is None  # within the slack
    assert graph_problem([], counted, 1000, 500.0) is None  # computing less than counted is fine
    assert "parameters" in graph_problem([], counted, 4000, 2000.0)
    assert "computes more" in graph_problem([], counted, 1000, 2000.0 * (1 + 2 * FLOP_SLACK))
    assert graph_problem([], counted, 1000, None) is None  # mlx: parameters only
    assert graph_problem([], None, 1000, 9e9) is None and graph_problem([], dict(num_params=None), 5, None) is None
    assert "writes to its own state" in graph_problem(["buffer_mutation seen"], None, 1000, None)


# --- small torch models, exported and scored ---------------------------------------------------

def peeked(idx):
    """(B, T, VOCAB): 1 at token t+1 of every row of the pass (itself included) whose tokens
    0..t are this row's: a row and its causality copy agree there, so the old check (the copy in
    the row's own pass) saw the same logits before the cut and passed, at val_bpb 0.446."""
    same = (idx[:, None, :] == idx[None, :, :]).long().cumprod(-1).float()  # (B, B, T)
    nxt = torch.cat([idx[:, 1:], idx[:, -1:]], 1)  # (B, T); the last position's target is not here
    onehot = (nxt[..., None] == torch.arange(VOCAB, device=idx.device)).float()  # (B, T, VOCAB)
    return torch.einsum("ijt,jtv->itv", same, onehot).clamp(max=1)


class Tiny(nn.Module):
    """A causal running mean of embeddings, `repeat` residual layers, a head (~3K parameters).
    mix: adds that multiple of the batch's mean embedding at each position (reads other rows);
    peek: adds that much to the tokens peeked() finds."""

    def __init__(self, mix: float = 0.0, peek: float = 0.0, repeat: int = 1, width: int = 16):
        super().__init__()
        torch.manual_seed(0)
        self.wte = nn.Embedding(VOCAB, width)
        self.proj = nn.Linear(width, width, bias=False)
        self.head = nn.Linear(width, VOCAB, bias=False)
        self.mix, self.peek, self.repeat = mix, peek, repeat

    def forward(self, idx, targets=None):
        x = self.wte(idx)
        h = x.cumsum(1) / torch.arange(1, idx.size(1) + 1, device=idx.device)[None, :, None]
        if self.mix:
            h = h + self.mix * x.mean(0, keepdim=True)
        for _ in range(self.repeat):
            h = h + torch.tanh(self.proj(h))
        logits = self.head(h).float()
        if self.peek:
            logits = logits + self.peek * peeked(idx)
        if targets is None:
            return logits
        return nn.functional.cross_entropy(logits.view(-1, VOCAB), targets.reshape(-1))


class TinyData:
    """What score_model reads of a dataset: not a generated corpus, so it scores a validation
    prefix; BOS first in every row, random tokens after it, one byte per token but BOS."""

    meta: dict = {"kind": None}
    name = "tiny"
    seq_len = T
    vocab_size = VOCAB

    def __init__(self, n: int = 8, seed: int = 0):
        self.rows = np.random.default_rng(seed).integers(1, VOCAB, size=(n, T + 1)).astype(np.int32)
        self.rows[:, 0] = BOS
        self.max_val_rows = n
        self.token_bytes = np.ones(VOCAB, dtype=np.int64)
        self.token_bytes[BOS] = 0

    def val_rows(self, n: int) -> np.ndarray:
        return self.rows[:n]


def exported(backend, model, folder, rows=4):
    Path(folder).mkdir(parents=True, exist_ok=True)
    backend.export_model(model, str(folder), T, rows)
    return backend.load_model(str(folder))


def test_a_torch_model_whose_rows_meet_in_a_pass_is_invalid(tmp_path):
    """Honest: ok, every row checked in a second arrangement, no change at all. Mixing in the
    batch mean: invalid for batch dependence. The peek at rows sharing a prefix: invalid."""
    backend = TorchBackend(plan())
    honest = score_model(backend, exported(backend, Tiny(), tmp_path / "honest"), TinyData(), 8, 4)
    assert honest["status"] == "ok", honest.get("reason")
    assert honest["batch_check"]["rows_checked"] == 8 and honest["batch_check"]["max_change"] == 0.0
    assert honest["causality"]["max_change"] == 0.0 and honest["eval_rows_per_pass"] == 4
    mixing = score_model(backend, exported(backend, Tiny(mix=0.01), tmp_path / "mix"), TinyData(), 8, 4)
    assert mixing["status"] == "invalid" and "other rows of its batch" in mixing["reason"], mixing.get("reason")
    peeking = score_model(backend, exported(backend, Tiny(peek=10.0), tmp_path / "peek"), TinyData(), 8, 4)
    assert peeking["status"] == "invalid", peeking
    assert peeking["rejected_val_bpb"] < 0.5 * honest["val_bpb"]  # what the peek would have been worth


def test_a_row_and_its_copy_never_share_a_pass():
    """Every pass holds the same number of rows. Each pass of rows is followed by a pass of their
    copies: the same rows (and fillers) up to one cut for the whole pass, none of the rows itself."""
    seen = []

    class Spy(Tiny):
        def forward(self, idx, targets=None):
            seen.append(idx.clone())
            return super().forward(idx)

    data = TinyData(n=7)
    out = score(TorchBackend(plan()), Spy(), data.rows, data.token_bytes, 3, np.random.default_rng(1),
                causality=True, batch_check=True)
    assert len(out["batch_change"]) == 7 and len(seen) == 3 * 3  # 3 passes of rows, of copies, rearranged
    assert {tuple(x.shape) for x in seen} == {(3, T)}
    rows = torch.from_numpy(data.rows[:, :-1]).long()
    for k, real in enumerate((3, 3, 1)):
        own, copies = seen[2 * k], seen[2 * k + 1]
        assert (own[:real, None] == rows[None]).all(-1).any(-1).all()  # the pass holds scored rows
        assert not (copies[:, None] == own[None, :real]).all(-1).any()  # and its copies none of them
        cut = int((own != copies).any(0).long().argmax())
        assert cut >= 1 and (own[:, :cut] == copies[:, :cut]).all() and (own[:real, cut] != copies[:real, cut]).all()
        assert (own[real:] == copies[real:]).all()  # the same fillers


def test_a_graph_with_state_is_found(tmp_path):
    """A graph that keeps something of a pass for the next (a buffer), or writes to its input."""
    backend = TorchBackend(plan())

    class Remembers(Tiny):
        def __init__(self):
            super().__init__()
            self.register_buffer("last", torch.zeros(T))

        def forward(self, idx, targets=None):
            logits = super().forward(idx) + self.last[None, :, None]
            self.last.copy_(idx[0].float())
            return logits

    class Rewrites(Tiny):
        def forward(self, idx, targets=None):
            logits = super().forward(idx)
            idx[:, 1:].copy_(logits[:, :-1].argmax(-1))
            return logits

    class Scratch(Tiny):  # an in-place op on a temporary writes nothing that outlives the pass
        def forward(self, idx, targets=None):
            return super().forward(idx).mul_(2)

    for model, writes in ((Remembers(), True), (Rewrites(), True), (Scratch(), False), (Tiny(), False)):
        name = type(model).__name__
        assert bool(backend.graph_writes(exported(backend, model, tmp_path / name))) is writes, name


# --- the counted model is the handed-over model -------------------------------------------------

def counted(backend, model) -> dict:
    """What rt.start(model) reports (harness/run/runtime.py)."""
    return dict(num_params=backend.count_params(model),
                matmul_flops_per_token=backend.train_flops_per_token(model, T, VOCAB)["matmul_flops_per_token"])


def graph_verdict(backend, handed_over, count: dict, folder) -> tuple[str | None, int, float]:
    graph = exported(backend, handed_over, folder)
    params, flops = backend.graph_params(graph), backend.graph_matmul_flops_per_token(graph, T, VOCAB)
    return graph_problem(backend.graph_writes(graph), count, params, flops), params, flops


@pytest.mark.parametrize("window_pattern", ["SSSL", "L"])
def test_the_templates_model_is_the_model_counted(tmp_path, window_pattern):
    """Tied-free embeddings and head, value embeddings, rotary buffers and masked SDPA: the graph's
    parameters and 3 x forward matmul FLOPs are exactly what rt.start counts on the live model."""
    backend = TorchBackend(plan())
    ns = load_template(ROOT / "train_template.py", backend, T, VOCAB,
                       dict(DEPTH=2, MODEL_DIM=32, HEAD_DIM=16, WINDOW_PATTERN=window_pattern))
    model = ns["GPT"](VOCAB, T, 2, 32, 16)
    model.init_weights()
    count = counted(backend, model)
    problem, params, flops = graph_verdict(backend, model, count, tmp_path)
    assert problem is None and params == count["num_params"] and 3 * flops == count["matmul_flops_per_token"]


def test_a_tied_head_is_one_weight(tmp_path):
    backend = TorchBackend(plan())
    model = Tiny()
    model.head.weight = model.wte.weight
    problem, params, _ = graph_verdict(backend, model, counted(backend, model), tmp_path)
    assert problem is None and params == backend.count_params(model) == VOCAB * 16 + 16 * 16


def test_a_handed_over_model_larger_than_the_counted_one_is_invalid(tmp_path):
    backend = TorchBackend(plan())
    small = counted(backend, Tiny(width=8))
    assert "parameters" in graph_verdict(backend, Tiny(width=16), small, tmp_path / "wide")[0]
    # the same weights run twice: the parameters agree, the FLOPs do not
    assert "computes more" in graph_verdict(backend, Tiny(repeat=3), counted(backend, Tiny()), tmp_path / "deep")[0]
    assert graph_verdict(backend, Tiny(), counted(backend, Tiny()), tmp_path / "same")[0] is None


def test_the_evaluator_process_checks_the_counted_model(small_bundled, tmp_path):
    """evaluate(job), as `arp train` runs it: the graph's own counts are in the result, and the
    model counted at rt.start must be the one handed over."""
    backend = TorchBackend(plan())
    seq, vocab = small_bundled.seq_len, small_bundled.vocab_size

    def template(depth):
        ns = load_template(ROOT / "train_template.py", backend, seq, vocab, dict(DEPTH=depth, MODEL_DIM=32, HEAD_DIM=16))
        model = ns["GPT"](vocab, seq, depth, 32, 16)
        model.init_weights()
        return model

    model = template(2)
    backend.export_model(model, str(tmp_path), seq, 2)
    job = dict(plan=plan().to_dict(), dataset="bundled", handover=str(tmp_path), eval_rows=2, batch_rows=2)
    real = dict(num_params=backend.count_params(model),
                matmul_flops_per_token=backend.train_flops_per_token(model, seq, vocab)["matmul_flops_per_token"])
    ok = evaluate(dict(job, counted=real))
    assert ok["status"] == "ok", ok.get("reason")
    assert ok["graph_num_params"] == ok["num_params"] == real["num_params"]
    assert 3 * ok["graph_matmul_flops_per_token"] == pytest.approx(real["matmul_flops_per_token"])
    assert ok["batch_check"]["rows_checked"] == 2 and ok["causality"]["rows_checked"] == 2
    smaller = template(1)
    cheat = evaluate(dict(job, counted=dict(num_params=backend.count_params(smaller), matmul_flops_per_token=(
        backend.train_flops_per_token(smaller, seq, vocab)["matmul_flops_per_token"]))))
    assert cheat["status"] == "invalid" and "not the one counted" in cheat["reason"] and "val_bpb" not in cheat


# --- MLX: the same batch check through the other backend -----------------------------------------

def test_an_mlx_model_whose_rows_meet_in_a_pass_is_invalid(tmp_path):
    mx = pytest.importorskip("mlx.core")
    mnn = pytest.importorskip("mlx.nn")
    from autoresearch_portable.backends.mlx import MLXBackend

    class TinyMLX(mnn.Module):
        def __init__(self, mix: float = 0.0):
            super().__init__()
            self.wte = mnn.Embedding(VOCAB, 16)
            self.head = mnn.Linear(16, VOCAB, bias=False)
            self.mix = mix

        def __call__(self, idx):
            x = self.wte(idx)
            h = mx.cumsum(x, axis=1) / mx.arange(1, idx.shape[1] + 1)[None, :, None]
            if self.mix:
                h = h + self.mix * mx.mean(x, axis=0, keepdims=True)
            return self.head(h)

    backend = MLXBackend(plan("mlx"))
    mx.random.seed(0)
    honest = score_model(backend, exported(backend, TinyMLX(), tmp_path / "honest"), TinyData(n=6), 6, 2)
    assert honest["status"] == "ok", honest.get("reason")
    assert honest["eval_rows_per_pass"] == 4  # the graph's fixed batch (exported(): 4), not the run's 2
    assert honest["batch_check"]["rows_checked"] == 6 and honest["batch_check"]["max_change"] == 0.0
    assert backend.graph_params(exported(backend, TinyMLX(), tmp_path / "n")) == VOCAB * 16 * 2
    mixing = score_model(backend, exported(backend, TinyMLX(mix=0.01), tmp_path / "mix"), TinyData(n=6), 6, 2)
    assert mixing["status"] == "invalid" and "other rows of its batch" in mixing["reason"], mixing.get("reason")
