"""Weights between the torch template's GPT (train_template.py) and the MLX one
(train_template_mlx.py), both ways.

Both models name their parameters alike (a torch state_dict key and an mlx
`tree_flatten(model.parameters())` key), and both store linear weights as (out, in); the table
below still maps every name explicitly, so a parameter one side does not know is an error, not a
silent skip. torch is imported only when a conversion needs it (mlx users may not have it)."""

from __future__ import annotations

import re
from typing import Any

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

# (torch state_dict key, mlx parameter key): {i} is a layer index, {proj} a projection's name
NAME_MAP: list[tuple[str, str]] = [
    ("wte.weight", "wte.weight"),
    ("value_embeds.{i}.weight", "value_embeds.{i}.weight"),
    ("blocks.{i}.attn.{proj}.weight", "blocks.{i}.attn.{proj}.weight"),
    ("blocks.{i}.mlp.{proj}.weight", "blocks.{i}.mlp.{proj}.weight"),
    ("lm_head.weight", "lm_head.weight"),
    ("resid_lambdas", "resid_lambdas"),
    ("x0_lambdas", "x0_lambdas"),
]
_FIELDS = {"i": r"\d+", "proj": r"c_q|c_k|c_v|c_proj|ve_gate|c_fc"}


def _regex(pattern: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", pattern)  # literal, field, literal, field, ...
    rx = "".join(re.escape(p) if k % 2 == 0 else f"(?P<{p}>{_FIELDS[p]})" for k, p in enumerate(parts))
    return re.compile(rx)


def _translate(name: str, forward: bool) -> str:
    for torch_pat, mlx_pat in NAME_MAP:
        src, dst = (torch_pat, mlx_pat) if forward else (mlx_pat, torch_pat)
        m = _regex(src).fullmatch(name)
        if m:
            return dst.format(**m.groupdict())
    side = ("torch", "MLX") if forward else ("MLX", "torch")
    raise KeyError(f"no {side[1]} counterpart for {side[0]} parameter {name!r}")


def torch_to_mlx_name(name: str) -> str:
    return _translate(name, forward=True)


def mlx_to_torch_name(name: str) -> str:
    return _translate(name, forward=False)


def set_parameter(module: Any, name: str, value: mx.array) -> None:
    """module["blocks"][0]["attn"]["c_q"]["weight"] = value for "blocks.0.attn.c_q.weight".
    (mlx.utils.tree_unflatten would turn value_embeds {"1": ..} into a list.)"""
    *path, leaf = name.split(".")
    for part in path:
        module = module[int(part)] if isinstance(module, list) else module[part]
    module[leaf] = value


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
        out[torch_to_mlx_name(name)] = arr
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
        out[mlx_to_torch_name(name)] = t
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
        set_parameter(mlx_model, name, a.astype(have[name].dtype))
    mx.eval(mlx_model.parameters())


def load_mlx_into_torch(torch_model: Any, mlx_model: Any) -> None:
    """Copy an MLX GPT's weights into a torch GPT of the same configuration (strict)."""
    state = mlx_state_to_torch(dict(tree_flatten(mlx_model.parameters())))
    current = torch_model.state_dict()
    state = {k: v.to(current[k].dtype) if k in current else v for k, v in state.items()}
    torch_model.load_state_dict(state, strict=True)
