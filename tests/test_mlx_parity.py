"""Parity of the MLX trainer (train_template_mlx.py) with the torch one (train_template.py).

Both templates' definitions are loaded without training (tests/template_loader.py),
the torch model's weights are copied into the MLX model (tests/mlx_convert.py), and logits, loss,
gradients, one Muon step and one AdamW step must agree. CPU, fp32, tiny shapes: mlx's CPU device
is slow, and these tests check numerics, not speed (Metal is not available on the CI machine).
On a Mac, ARP_MLX_TEST_DEVICE=gpu runs the MLX side on Metal (benchmarks/mac_check.sh does)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")
torch = pytest.importorskip("torch")

from mlx.utils import tree_flatten, tree_unflatten  # noqa: E402

from autoresearch_portable.backends.mlx import MLXBackend  # noqa: E402
from mlx_convert import (  # noqa: E402
    load_mlx_into_torch,
    load_torch_into_mlx,
    mlx_state_to_torch,
    torch_state_to_mlx,
)
from template_loader import load_template  # noqa: E402
from autoresearch_portable.backends.torch_common import TorchBackend  # noqa: E402
from autoresearch_portable.detect.plan import Plan  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TORCH_TEMPLATE = ROOT / "train_template.py"
MLX_TEMPLATE = ROOT / "train_template_mlx.py"

DEPTH, DIM, HEAD_DIM, VOCAB, T = 2, 64, 32, 256, 64
BASE = dict(DEPTH=DEPTH, MODEL_DIM=DIM, HEAD_DIM=HEAD_DIM)
# full causal only; the default S/L pattern (S = T/2 = 32); a short window of 6 on layer 0
ATTENTION_CASES = {
    "full": dict(WINDOW_PATTERN="L"),
    "sssl": dict(WINDOW_PATTERN="SSSL"),
    "short": dict(WINDOW_PATTERN="SL", SHORT_WINDOW_FRAC=0.1),
}


def make_plan(backend: str, dtype: str = "float32", compile: bool = False) -> Plan:
    return Plan(
        backend=backend, device=os.environ.get("ARP_MLX_TEST_DEVICE", "cpu") if backend == "mlx" else "cpu", dtype=dtype,
        dtype_mode="explicit" if backend == "mlx" and dtype != "float32" else "none",
        grad_scaler=False, attention="mlx_fast" if backend == "mlx" else "sdpa_mask",
        compile=compile, pin_memory=False, peak_flops=None, peak_flops_source="test",
    )


def load_pair(constants: dict, mlx_dtype: str = "float32", compile: bool = False):
    """(torch namespace, mlx namespace) of the two templates with the same constants."""
    c = {**BASE, **constants}
    nt = load_template(TORCH_TEMPLATE, TorchBackend(make_plan("cpu")), T, VOCAB, c)
    nm = load_template(MLX_TEMPLATE, MLXBackend(make_plan("mlx", mlx_dtype, compile)), T, VOCAB, c)
    return nt, nm


def random_torch_model(nt, seed: int = 0):
    """The torch GPT with every weight random (init_weights zeroes the output projections, which
    would hide most of the model from a parity check)."""
    torch.manual_seed(seed)
    model = nt["GPT"](VOCAB, T, DEPTH, DIM, HEAD_DIM)
    model.init_weights()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lambdas"):
                p.uniform_(0.5, 1.5)
            elif name.startswith(("wte", "value_embeds")):
                p.normal_(0, 1)
            else:
                p.normal_(0, p.size(-1) ** -0.5)
    return model


def mlx_twin(nm, torch_model):
    model = nm["GPT"](VOCAB, T, DEPTH, DIM, HEAD_DIM)
    load_torch_into_mlx(model, torch_model.state_dict())
    return model


def batch(seed: int = 1, rows: int = 2):
    tokens = np.random.default_rng(seed).integers(0, VOCAB, size=(rows, T + 1))
    return tokens[:, :-1], tokens[:, 1:]


def assert_close(a, b, rtol=1e-4, atol=1e-5, what=""):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(1.0, float(np.abs(a).max()))
    err = float(np.abs(a - b).max())
    assert err <= atol * scale + rtol * float(np.abs(a).max()), f"{what}: max abs diff {err:.3g} (scale {scale:.3g})"


# --------------------------------------------------------------------------------------------
# weight conversion


def test_conversion_round_trip_is_exact():
    nt, nm = load_pair(ATTENTION_CASES["sssl"])
    tm = random_torch_model(nt)
    mm = mlx_twin(nm, tm)
    back = nt["GPT"](VOCAB, T, DEPTH, DIM, HEAD_DIM)
    load_mlx_into_torch(back, mm)
    for name, p in tm.state_dict().items():
        assert torch.equal(p, back.state_dict()[name]), name
    # every parameter of each side has a counterpart: the flat names agree one to one
    assert set(torch_state_to_mlx(tm.state_dict())) == {k for k, _ in tree_flatten(mm.parameters())}
    assert set(mlx_state_to_torch(mm)) == set(tm.state_dict())


def test_conversion_rejects_unknown_or_missing_parameters():
    nt, nm = load_pair(ATTENTION_CASES["full"])
    tm = random_torch_model(nt)
    mm = nm["GPT"](VOCAB, T, DEPTH, DIM, HEAD_DIM)
    state = dict(tm.state_dict())
    state["blocks.0.attn.c_extra.weight"] = torch.zeros(DIM, DIM)
    with pytest.raises(KeyError):
        load_torch_into_mlx(mm, state)
    state = dict(tm.state_dict())
    del state["x0_lambdas"]
    with pytest.raises(KeyError):
        load_torch_into_mlx(mm, state)


def test_parameter_counts_match():
    nt, nm = load_pair(ATTENTION_CASES["sssl"])
    tm = random_torch_model(nt)
    assert nm["K"].count_params(mlx_twin(nm, tm)) == nt["K"].count_params(tm)


# --------------------------------------------------------------------------------------------
# forward, loss and gradients


@pytest.mark.parametrize("case", sorted(ATTENTION_CASES))
def test_logits_loss_and_gradients_match_torch(case):
    nt, nm = load_pair(ATTENTION_CASES[case])
    tm = random_torch_model(nt)
    mm = mlx_twin(nm, tm)
    x, y = batch()
    windows = tm.windows
    assert mm.windows == windows
    if case == "full":
        assert windows == [None] * DEPTH
    else:
        assert windows[0] is not None and windows[0] < T - 1 and windows[-1] is None

    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    t_logits = tm(tx).detach().numpy()
    m_logits = np.array(mm(mx.array(x.astype(np.int32))))
    assert m_logits.dtype == np.float32
    assert_close(t_logits, m_logits, what="logits")

    t_loss = tm(tx, ty)
    t_loss.backward()
    loss_and_grad = nm["nn"].value_and_grad(mm, lambda a, b: mm(a, b))
    m_loss, m_grads = loss_and_grad(mx.array(x.astype(np.int32)), mx.array(y.astype(np.int32)))
    assert abs(t_loss.item() - m_loss.item()) <= 1e-5 * abs(t_loss.item())
    m_grads = dict(tree_flatten(m_grads))
    for name, p in tm.named_parameters():
        assert_close(p.grad.numpy(), np.array(m_grads[name]), rtol=1e-3, atol=1e-5, what=f"grad {name}")


def test_harness_eval_path_matches_torch():
    """forward_logits and score_rows, the harness's way to the model, agree across backends."""
    nt, nm = load_pair(ATTENTION_CASES["sssl"])
    tm = random_torch_model(nt)
    mm = mlx_twin(nm, tm)
    kt, km = nt["K"], nm["K"]
    rows = np.random.default_rng(3).integers(0, VOCAB, size=(3, T + 1))
    token_bytes = np.random.default_rng(4).integers(0, 4, size=VOCAB)
    assert_close(kt.forward_logits(tm, rows[:, :-1]), km.forward_logits(mm, rows[:, :-1]), what="forward_logits")
    t_nats, t_bytes = kt.score_rows(tm, rows, token_bytes, 2**30)[:2]
    m_nats, m_bytes = km.score_rows(mm, rows, token_bytes, 2**30)[:2]
    np.testing.assert_array_equal(t_bytes, m_bytes)
    np.testing.assert_allclose(t_nats, m_nats, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# optimizers


def _random_grads(model, seed):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(p.shape, generator=g) * 0.1 for n, p in model.named_parameters()}


def _mlx_grads(grads):
    return tree_unflatten(list(torch_state_to_mlx(grads).items()))


@pytest.mark.parametrize("which", ["adamw", "muon"])
def test_optimizer_steps_match_torch(which):
    """Two steps of one optimizer (the second at half LR) on identical gradients."""
    nt, nm = load_pair(ATTENTION_CASES["sssl"])
    tm = random_torch_model(nt)
    mm = mlx_twin(nm, tm)
    t_opt = dict(zip(["adamw", "muon"], nt["build_optimizers"](tm)))[which]
    m_opt = dict(zip(["adamw", "muon"], nm["build_optimizers"](mm)))[which]
    updated = set()
    for step, lrm in enumerate([1.0, 0.5]):
        grads = _random_grads(tm, seed=10 + step)
        for name, p in tm.named_parameters():
            p.grad = grads[name].clone()
        for group in t_opt.param_groups:
            group["lr"] = group["base_lr"] * lrm
        t_opt.step()
        params = dict(tree_flatten(mm.trainable_parameters()))
        new = m_opt.update(params, dict(tree_flatten(_mlx_grads(grads))), mx.array(lrm))
        for name, value in new.items():
            nm["set_parameter"](mm, name, value)
        mx.eval(mm.parameters())
        updated |= set(new)
    m_params = dict(tree_flatten(mm.parameters()))
    expected = {n for n, p in tm.named_parameters() if (n.startswith("blocks.") and p.ndim == 2) == (which == "muon")}
    assert updated == expected
    for name, p in tm.named_parameters():
        assert_close(p.detach().numpy(), np.array(m_params[name]), rtol=1e-4, atol=1e-5, what=f"{which} {name}")


@pytest.mark.slow
def test_compiled_training_steps_match_eager():
    """The template's make_steps, compiled (mx.compile with the model and optimizer state as
    inputs/outputs: the default on Metal) and eager, give the same parameters after two full
    steps. Slow on a fresh machine only: mlx's CPU device JIT-compiles each fused kernel with the
    system C++ compiler (~60 kernels here, about a minute cold; cached under $TMPDIR/mlx)."""
    results = []
    for compile_ in (False, True):
        nt, nm = load_pair(ATTENTION_CASES["sssl"], compile=compile_)
        tm = random_torch_model(nt)
        mm = mlx_twin(nm, tm)
        opts = nm["build_optimizers"](mm)
        grad_step, update_step = nm["make_steps"](mm, opts)
        losses = []
        for step in range(2):
            x, y = batch(seed=20)  # the same batch twice: the second loss must be lower
            loss, grads = grad_step(mx.array(x.astype(np.int32)), mx.array(y.astype(np.int32)))
            update_step(grads, mx.array(1.0))
            mx.eval(loss, mm.parameters(), [o.state for o in opts])
            losses.append(loss.item())
        results.append((losses, {k: np.array(v) for k, v in tree_flatten(mm.parameters())}))
    (l0, p0), (l1, p1) = results
    np.testing.assert_allclose(l0, l1, rtol=1e-5)
    assert l0[1] < l0[0]
    for name in p0:
        assert_close(p0[name], p1[name], rtol=1e-4, atol=1e-5, what=name)


# --------------------------------------------------------------------------------------------
# dtype and FLOPs


def test_bf16_residual_stream_stays_bf16():
    """With a bf16 plan the residual stream is bf16 everywhere (no silent fp32 promotion by a
    weight or scalar parameter), logits and loss are fp32, gradients fp32 (master weights)."""
    nt, nm = load_pair(ATTENTION_CASES["sssl"], mlx_dtype="bfloat16")
    mm = mlx_twin(nm, random_torch_model(nt))
    seen = []
    Block = nm["Block"]
    original = Block.__call__

    def recording(self, x, ve, window):
        out = original(self, x, ve, window)
        seen.append((x.dtype, None if ve is None else ve.dtype, out.dtype))
        return out

    Block.__call__ = recording
    try:
        x, y = batch()
        logits = mm(mx.array(x.astype(np.int32)))
        loss_and_grad = nm["nn"].value_and_grad(mm, lambda a, b: mm(a, b))
        loss, grads = loss_and_grad(mx.array(x.astype(np.int32)), mx.array(y.astype(np.int32)))
    finally:
        Block.__call__ = original
    assert len(seen) >= DEPTH
    for x_dtype, ve_dtype, out_dtype in seen:
        assert x_dtype == mx.bfloat16 and out_dtype == mx.bfloat16
        assert ve_dtype is None or ve_dtype == mx.bfloat16
    assert logits.dtype == mx.float32 and loss.dtype == mx.float32
    assert np.isfinite(loss.item())
    for name, g in tree_flatten(grads):
        assert g.dtype == mx.float32, name
    for name, p in tree_flatten(mm.parameters()):
        assert p.dtype == mx.float32, name


@pytest.mark.parametrize("case", ["full", "sssl"])
def test_train_flops_match_torch_harness(case):
    nt, nm = load_pair(ATTENTION_CASES[case])
    tm = random_torch_model(nt)
    mm = mlx_twin(nm, tm)
    t = nt["K"].train_flops_per_token(tm, T, VOCAB)
    m = nm["K"].train_flops_per_token(mm, T, VOCAB)
    for key in ("flops_per_token", "matmul_flops_per_token", "attention_flops_per_token"):
        assert m[key] == pytest.approx(t[key], rel=0.02), key
    assert m["attention_flops_per_token"] > 0


def test_bf16_model_tracks_fp32_torch_within_bf16_tolerance():
    """The bf16 MLX model (what an M2+ Mac runs) against the fp32 torch reference: logits within
    bf16 rounding, and two bf16 training steps on one batch lower its loss. (Eager: compiled
    bf16 would cost another minute of cold CPU kernel compilation; the compiled path is checked
    in fp32 above.)"""
    nt, nm = load_pair(ATTENTION_CASES["sssl"], mlx_dtype="bfloat16")
    tm = random_torch_model(nt)
    mm = mlx_twin(nm, tm)
    x, y = batch()
    t_logits = tm(torch.from_numpy(x)).detach().numpy()
    m_logits = np.array(mm(mx.array(x.astype(np.int32))))
    err = np.abs(t_logits - m_logits)
    scale = float(np.abs(t_logits).max())
    assert err.max() <= 0.1 * scale and err.mean() <= 0.01 * scale, (err.max(), err.mean(), scale)
    opts = nm["build_optimizers"](mm)
    grad_step, update_step = nm["make_steps"](mm, opts)
    xs, ys = mx.array(x.astype(np.int32)), mx.array(y.astype(np.int32))
    losses = []
    for _ in range(2):
        loss, grads = grad_step(xs, ys)
        update_step(grads, mx.array(1.0))
        mx.eval(loss, mm.parameters(), [o.state for o in opts])
        losses.append(loss.item())
    assert np.isfinite(losses).all() and losses[1] < losses[0]


def test_causality_check_catches_an_mlx_model_that_sees_the_future():
    """The evaluator's causality check through the MLX backend: the template's model passes; the
    same model on a backend whose attention forgot the causal mask is caught."""
    from autoresearch_portable.harness.score.evalset import perturbed_copies
    from autoresearch_portable.harness.score.passes import causality_tolerance

    class Leaky(MLXBackend):
        def attention(self, q, k, v, window):
            return mx.fast.scaled_dot_product_attention(q, k, v, scale=q.shape[-1] ** -0.5)

    c = {**BASE, **ATTENTION_CASES["sssl"]}
    nt, _ = load_pair(c)
    weights = random_torch_model(nt).state_dict()
    rows = np.random.default_rng(7).integers(1, VOCAB, size=(3, T + 1))
    copies, cuts = perturbed_copies(rows, np.random.default_rng(8))
    token_bytes = np.ones(VOCAB, dtype=np.int64)
    for backend, causal in ((MLXBackend(make_plan("mlx")), True), (Leaky(make_plan("mlx")), False)):
        model = load_template(MLX_TEMPLATE, backend, T, VOCAB, c)["GPT"](VOCAB, T, DEPTH, DIM, HEAD_DIM)
        load_torch_into_mlx(model, weights)
        _, _, change = backend.score_rows(model, rows, token_bytes, 2**28, copies, cuts)
        assert bool((change <= causality_tolerance(backend.plan.dtype)).all()) is causal


def test_mlx_export_hands_over_the_same_model(tmp_path):
    """mx.export_function + weights: the imported graph computes the trained model's logits, for
    any number of rows (the graph has a fixed batch: 3 rows run as a pass of 2 and one padded)."""
    c = {**BASE, **ATTENTION_CASES["sssl"]}
    nt, _ = load_pair(c)
    backend = MLXBackend(make_plan("mlx"))
    model = load_template(MLX_TEMPLATE, backend, T, VOCAB, c)["GPT"](VOCAB, T, DEPTH, DIM, HEAD_DIM)
    load_torch_into_mlx(model, random_torch_model(nt).state_dict())
    rows = np.random.default_rng(3).integers(1, VOCAB, size=(3, T))
    live = backend.forward_logits(model, rows)
    backend.export_model(model, str(tmp_path), T, 2)
    loaded = backend.load_model(str(tmp_path))
    np.testing.assert_allclose(backend.forward_logits(loaded, rows), live, rtol=0, atol=1e-5)
    np.testing.assert_allclose(backend.forward_logits(model, rows), live, rtol=0, atol=0)  # model intact
