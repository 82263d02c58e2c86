"""The torch template's Muon updates same-shape matrices together: one Polar-Express call per
shape, not per matrix (eager MPS pays per kernel launch). That it computes the same update as
one matrix at a time is checked by the MLX parity test, whose Muon goes matrix by matrix."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autoresearch_portable.backends.torch_common import TorchBackend
from autoresearch_portable.detect.plan import Plan

ROOT = Path(__file__).resolve().parent.parent


def test_muon_orthogonalizes_once_per_shape():
    pytest.importorskip("mlx.core")  # the template loader lives with the MLX backend
    from template_loader import load_template

    plan = Plan(backend="cpu", device="cpu", dtype="float32", dtype_mode="none", grad_scaler=False,
                attention="sdpa_mask", compile=False, pin_memory=False, peak_flops=None, peak_flops_source="test")
    ns = load_template(ROOT / "train_template.py", TorchBackend(plan), 32, 64, dict(DEPTH=4, MODEL_DIM=64, HEAD_DIM=32))
    model = ns["GPT"](64, 32, 4, 64, 32)
    model.init_weights()
    muon = ns["build_optimizers"](model)[1]
    shapes = {tuple(p.shape) for p in model.blocks.parameters() if p.ndim == 2}
    assert len(muon.param_groups) == len(shapes) == 4  # attention (64x64), MLP in, MLP out, gate
    calls = []
    kernel = ns["polar_express_kernel"]
    ns["polar_express_kernel"] = lambda g: calls.append(tuple(g.shape)) or kernel(g)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    before = {n: p.detach().clone() for n, p in model.blocks.named_parameters()}
    muon.step()
    assert len(calls) == 4 and sorted(c[0] for c in calls) == [2, 4, 4, 16]  # matrices per shape
    assert all(not torch.equal(before[n], p) for n, p in model.blocks.named_parameters() if p.ndim == 2)
