"""The summary block. The first lines are exactly the original's (agents grep "^val_bpb:");
ours follow."""

from __future__ import annotations

import math
from typing import Any

from autoresearch_portable.harness.normalize import format_gain, format_normalized, gain_label


def fmt(value: Any, spec: str, na: str = "n/a") -> str:
    """The one number formatter of every table and summary: `na` for a missing value (None or
    NaN), a string as it is, anything else through `spec` (or as str() if `spec` does not fit)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return na
    if isinstance(value, str):
        return value
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def format_summary(r: dict[str, Any]) -> str:
    rows = [
        ("val_bpb", fmt(r.get("val_bpb"), ".6f")),
        ("training_seconds", fmt(r.get("training_seconds"), ".1f")),
        ("total_seconds", fmt(r.get("total_seconds"), ".1f")),
        ("peak_vram_mb", fmt(r.get("peak_memory_mb"), ".1f")),
        ("mfu_percent", fmt(r.get("mfu_percent"), ".2f")),
        # the original's one decimal, more digits below a million tokens (short runs read 0.0 otherwise)
        ("total_tokens_M", fmt(r.get("total_tokens") and r["total_tokens"] / 1e6,
                                ".1f" if (r.get("total_tokens") or 0) >= 1e6 else ".4f")),
        ("num_steps", fmt(r.get("num_steps"), "d")),
        ("num_params_M", fmt(r.get("num_params") and r["num_params"] / 1e6, ".1f")),
        ("depth", fmt(r.get("depth"), "d")),
        ("backend", fmt(r.get("backend"), "")),
        ("device", fmt(r.get("device"), "")),
        ("budget_mode", fmt(r.get("budget_mode"), "")),
        ("train_flops", fmt(r.get("train_flops"), ".4g")),
        ("val_bpb_stderr", fmt(r.get("val_bpb_stderr"), ".6f")),
        (gain_label(r), format_gain(r)),  # compute_multiplier, excess_ratio or delta_bpb: the metric's gain
        ("normalized_bpb", format_normalized(r)),
        ("floor_bpb", fmt(r.get("floor_bpb"), ".6f")),
        ("eval_tokens", fmt(r.get("eval_tokens"), "d")),
        ("verified", _verified(r)),
        ("machine_load", _load(r)),
        ("confined", fmt(r.get("confined"), "")),  # harness/confine.py: what train.py could reach
    ]
    lines = ["---"] + [f"{k + ':':<18}{v}" if len(k) < 18 else f"{k}: {v}" for k, v in rows]
    status = r.get("status") or "crash"
    reason = r.get("reason")
    lines.append(f"status:           {status}" + (f" ({reason})" if reason and status != "ok" else ""))
    return "\n".join(lines)


def _load(r: dict[str, Any]) -> str:
    """Whether other work disturbed the run, with the measured figure."""
    if r.get("load_summary") is None:
        return "n/a"
    return ("busy: " if r.get("load_noisy") else "quiet: ") + r["load_summary"]


def _verified(r: dict[str, Any]) -> str:
    """Whether the score came from the separate evaluator (and what it scored)."""
    if r.get("verified"):
        return f"yes ({r.get('eval_source', 'evaluator')}; causality and batch independence checked on every scored row)"
    if r.get("val_bpb") is not None:
        return "no (scored inside train.py's process)"
    return "n/a"
