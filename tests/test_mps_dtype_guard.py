"""MPS cannot be run here, so what would crash on it is caught on the CPU instead: evaluation
(`score_rows` with its causality copies, `forward_logits`; on the live model and on the exported
graph the evaluator loads) and one full training step of the torch template run under a
TorchDispatchMode that records every op on a dtype MPS lacks and every op MPS has no kernel for.
The plan is the MPS plan (fp32, no autocast, SDPA with a window mask, eager), on the CPU device."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from autoresearch_portable.backends.torch_common import TorchBackend
from autoresearch_portable.detect.plan import make_plan
from autoresearch_portable.detect.probe import DeviceProbe

ROOT = Path(__file__).resolve().parent.parent

# What MPS does not have, with where that is stated:
# * float64 and complex128: "Cannot convert a MPS Tensor to float64 dtype as the MPS framework
#   doesn't support float64. Please use float32 instead." (torch/mps; pytorch issue #77764).
MPS_MISSING_DTYPES = {torch.float64, torch.complex128}
# * operators without an MPS kernel in torch 2.5-2.13 (NotImplementedError "The operator ... is
#   not currently implemented for the MPS device"): linalg_qr (pytorch #177370, #141287),
#   _linalg_eigh (#151874, registered only in 2026), _linalg_svd (#77764: falls back to the CPU),
#   and the GradScaler's _amp_foreach_non_finite_check_and_unscale_ (#141287). The Muon step
#   orthogonalizes with Polar Express matmuls precisely so that it needs none of them.
MPS_MISSING_OPS = {
    "aten::linalg_qr", "aten::_linalg_eigh", "aten::_linalg_svd", "aten::linalg_svd",
    "aten::_amp_foreach_non_finite_check_and_unscale_",
}
# * in-place ops whose operands mix float dtypes are rejected on MPS (seen by the PyTorch-MPS
#   port; SPEC section 7), so an in-place op must see one float dtype.


class MPSGuard(TorchDispatchMode):
    """Records (op, reason) for every op that would fail on MPS."""

    def __init__(self):
        super().__init__()
        self.violations: list[tuple[str, str]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func._schema.name
        if name in MPS_MISSING_OPS:
            self.violations.append((name, "no MPS kernel"))
        tensors = [t for t in _flatten((args, kwargs, out)) if isinstance(t, torch.Tensor)]
        bad = {str(t.dtype) for t in tensors if t.dtype in MPS_MISSING_DTYPES}
        if kwargs.get("dtype") in MPS_MISSING_DTYPES:
            bad.add(str(kwargs["dtype"]))
        if bad:
            self.violations.append((name, f"dtype {', '.join(sorted(bad))}"))
        if name.endswith("_") and tensors and tensors[0].is_floating_point():
            mixed = {t.dtype for t in tensors if t.is_floating_point() and t.dim() > 0}
            if len(mixed) > 1:
                self.violations.append((name, f"in-place with mixed dtypes {sorted(map(str, mixed))}"))
        return out


def _flatten(x):
    if isinstance(x, (list, tuple)):
        for item in x:
            yield from _flatten(item)
    elif isinstance(x, dict):
        for item in x.values():
            yield from _flatten(item)
    else:
        yield x


def mps_plan_on_cpu():
    probe = DeviceProbe.from_dict(json.loads((ROOT / "tests" / "probes" / "m1_nomlx.json").read_text()))
    plan = make_plan(probe, "mps", {})
    return dataclasses.replace(plan, device="cpu")


T, VOCAB = 64, 256
SIZES = dict(DEPTH=4, MODEL_DIM=64, HEAD_DIM=32, DEVICE_BATCH_SIZE=2, TOTAL_BATCH_SIZE=2 * T)


@pytest.fixture(scope="module")
def template():
    # the loader lives with the MLX backend (it imports mlx); the template itself is pure torch
    pytest.importorskip("mlx.core")
    from template_loader import load_template

    backend = TorchBackend(mps_plan_on_cpu())
    ns = load_template(ROOT / "train_template.py", backend, T, VOCAB, SIZES)
    torch.manual_seed(0)
    model = ns["GPT"](VOCAB, T, SIZES["DEPTH"], SIZES["MODEL_DIM"], SIZES["HEAD_DIM"])
    model.init_weights()
    return ns, backend, model


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, VOCAB, size=(n, T + 1)).astype(np.int64)


def test_mps_plan_is_what_this_test_assumes():
    plan = mps_plan_on_cpu()
    assert (plan.backend, plan.dtype, plan.dtype_mode, plan.compile) == ("mps", "float32", "none", False)


def test_the_guard_catches_float64_and_mixed_in_place_ops():
    with MPSGuard() as guard:
        torch.ones(3).double()
    assert [v for v in guard.violations if "float64" in v[1]]
    with MPSGuard() as guard:
        torch.ones(3).add_(torch.ones(3, dtype=torch.bfloat16))
    assert [v for v in guard.violations if "mixed" in v[1]]


def evaluate_under_guard(backend, model):
    from autoresearch_portable.harness.score.evalset import perturbed_copies

    token_bytes = np.random.default_rng(1).integers(0, 4, size=VOCAB)
    scored = rows(4)
    copies, cuts = perturbed_copies(scored, np.random.default_rng(3))
    with MPSGuard() as guard:
        nats, nbytes, change = backend.score_rows(model, scored, token_bytes, 2**20, copies, cuts)
        logits = backend.forward_logits(model, rows(2)[:, :-1])
    assert guard.violations == []
    assert nats.dtype == np.float64 and nbytes.dtype == np.int64  # wide types on the host only
    assert np.all(np.isfinite(nats)) and np.all(change < 1e-4) and logits.shape == (2, T, VOCAB)


def test_evaluation_uses_no_dtype_or_op_mps_lacks(template):
    _, backend, model = template
    evaluate_under_guard(backend, model)


def test_evaluation_of_the_exported_model_uses_no_dtype_or_op_mps_lacks(template, tmp_path):
    _, backend, model = template
    backend.export_model(model, tmp_path, T, 2)
    evaluate_under_guard(backend, backend.load_model(tmp_path))  # what the evaluator process runs


def test_a_training_step_uses_no_dtype_or_op_mps_lacks(template):
    ns, backend, model = template
    optimizers = ns["build_optimizers"](model)
    x = torch.from_numpy(rows(2, seed=2))
    with MPSGuard() as guard:
        with backend.autocast():
            loss = model(x[:, :-1], x[:, 1:])
        loss.backward()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
        loss.item()
    assert guard.violations == []
