"""Weights between the torch template's GPT (train_template.py) and the MLX one
(train_template_mlx.py), both ways.

Both models name their parameters alike (a torch state_dict key is the mlx
`tree_flatten(model.parameters())` key) and store linear weights as (out, in), so a conversion
keeps every name; it is strict: a parameter one side does not have, or has in another shape, is
an error, not a silent skip. torch is imported only when a conversion needs it (mlx users may
not have it)."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten, tree_map_with_path


def torch_state_to_mlx(state_dict: dict) -> dict[str, mx.array]:
    """torch state_dict -> flat {mlx name: mx.array} (same dtype where numpy has it)."""
    import torch  # noqa: PLC0415

    out = {}
    for name, t in state_dict.items():
        t = t.detach().cpu()
        if t.dtype == torch.bfloat16:
            arr = mx.array(t.float().numpy()).astype(mx.bfloat16)
        else:
            arr = mx.array(t.numpy())
        out[name] = arr
    return out


def mlx_state_to_torch(params: dict[str, mx.array]) -> dict:
    """flat {mlx name: mx.array} (or a model) -> torch state_dict."""
    import torch  # noqa: PLC0415

    if not isinstance(params, dict) or any(not isinstance(v, mx.array) for v in params.values()):
        params = dict(tree_flatten(params.parameters()))
    out = {}
    for name, a in params.items():
        if a.dtype == mx.bfloat16:
            t = torch.from_numpy(np.array(a.astype(mx.float32))).to(torch.bfloat16)
        else:
            t = torch.from_numpy(np.array(a))
        out[name] = t
    return out


def load_torch_into_mlx(mlx_model: Any, state_dict: dict) -> None:
    """Copy a torch GPT's weights into an MLX GPT of the same configuration (strict: same
    names, same shapes, every parameter of the MLX model set)."""
    new = torch_state_to_mlx(state_dict)
    have = dict(tree_flatten(mlx_model.parameters()))
    if set(new) != set(have):
        raise KeyError(f"parameter names differ: only torch {sorted(set(new) - set(have))}, "
                       f"only mlx {sorted(set(have) - set(new))}")
    for name, a in new.items():
        if tuple(a.shape) != tuple(have[name].shape):
            raise ValueError(f"{name}: torch shape {tuple(a.shape)} vs mlx {tuple(have[name].shape)}")
    # leaf by leaf in the model's own structure (tree_unflatten would turn a dict keyed "1", "3"
    # into a list)
    mlx_model.update(tree_map_with_path(lambda name, old: new[name].astype(old.dtype), mlx_model.parameters()))
    mx.eval(mlx_model.parameters())


def load_mlx_into_torch(torch_model: Any, mlx_model: Any) -> None:
    """Copy an MLX GPT's weights into a torch GPT of the same configuration (strict)."""
    state = mlx_state_to_torch(dict(tree_flatten(mlx_model.parameters())))
    current = torch_model.state_dict()
    state = {k: v.to(current[k].dtype) if k in current else v for k, v in state.items()}
    torch_model.load_state_dict(state, strict=True)
