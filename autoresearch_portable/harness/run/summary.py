"""The summary block. The first lines are exactly the original's (agents grep "^val_bpb:");
ours follow. And the formatting every table shares (fmt, table, the gain's cell)."""

from __future__ import annotations

import math
from typing import Any

GAIN_KEY = {"delta": "delta_bpb", "excess_ratio": "excess_ratio"}  # the ledger's name of a curve-free gain
DEFAULT_GAIN = "excess_ratio"  # the gain line's name on a run not normalized (what normalize.py reports)


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


def table(header: list[str], body: list[list[str]], left: set[int]) -> str:
    """A plain text table: the columns in `left` left-aligned, the others right-aligned."""
    rows = [header] + [[str(c) for c in row] for row in body]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


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
        ("confined", fmt(r.get("confined"), "")),  # harness/run/confine.py: what train.py could reach
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


# --- the gain and normalized_bpb lines (harness/baseline/normalize.py computes them) ----------------------------------------------------------

def gain_of(r: dict) -> tuple[str, float, float | None] | None:
    """(ledger key, value, band) of a scored run's gain under the metric it was scored with: the
    excess ratio, delta_bpb or (log-linear and power metrics, and ledgers written before the
    switch) the compute multiplier. None when the run was not normalized."""
    key = GAIN_KEY.get(r.get("metric") or "")
    if key and isinstance(r.get(key), (int, float)):
        return key, float(r[key]), r.get(f"{key}_band")
    if isinstance(r.get("compute_multiplier"), (int, float)):
        return "compute_multiplier", float(r["compute_multiplier"]), r.get("doublings_band")
    return None


def gain_label(r: dict) -> str:
    """The summary line's name for the gain: what the run was scored with, else what a calibrated run would be."""
    g = gain_of(r)
    return g[0] if g else DEFAULT_GAIN


def short_gain(r: dict) -> str:
    """The gain in a table cell: "-1.7%" (excess over the floor, against the baseline's), "+0.0050"
    (bpb), "1.070x" (compute); "~" marks a run within the noise band; "n/a" when not normalized."""
    g = gain_of(r)
    if g is None:
        return "n/a"
    key, v, _ = g
    mark = "" if r.get("significant") else "~"
    if key == "excess_ratio":
        return f"{mark}{_percent(v):+.1f}%"
    if key == "delta_bpb":
        return f"{mark}{v:+.4f}"
    return f"{mark}{v:.3f}x"


def _percent(ratio: float) -> float:
    """The ratio as a change in percent, with no "-0.0"."""
    p = 100 * (ratio - 1)
    return 0.0 if round(p, 1) == 0 else p


GAIN_NOTE = {
    "excess_ratio": "gain = change of the excess over the entropy floor against this device's baseline (negative is better)",
    "delta_bpb": "gain = val_bpb minus this device's baseline's (negative is better)",
    "compute_multiplier": "gain = compute the baseline would need to match the run, as a multiple",
}


def format_gain(r: dict) -> str:
    """The gain summary line's value (the line is named by gain_label)."""
    g = gain_of(r)
    if g is None:
        return f"n/a ({r.get('normalization_note') or 'run `arp calibrate`'})"
    key, v, band = g
    verdict = "significant" if r.get("significant") else "not significant"
    sig = f"at {r['band_sigmas']:.3g}σ: {verdict}" if r.get("band_sigmas") else verdict
    if key == "excess_ratio":
        text = f"{v:.4f}" + (f" ± {band:.4f}" if band is not None else "")
        text += f" ({_percent(v):+.1f}% excess over the floor vs the baseline, {sig})"
    elif key == "delta_bpb":
        text = f"{v:+.6f}" + (f" ± {band:.6f}" if band is not None else "") + f" bpb vs the baseline ({sig})"
    else:  # compute_multiplier: the log-linear and power metrics, and ledgers written before the switch
        text = f"{v:.3f}"
        if r.get("doublings") is not None and band is not None:
            text += f" (doublings {r['doublings']:+.3f} ± {band:.3f} {sig})"
    if r.get("metric_note"):
        text += f" [{r['metric_note']}]"
    if r.get("extrapolated"):
        text += " [extrapolated: this budget is far from the calibration's]"
    if r.get("provisional"):  # against the workspace's baseline runs, before `arp calibrate`
        text += f" [{r['provisional']}]"
    return text


def format_normalized(r: dict) -> str:
    """The normalized_bpb summary line's value."""
    nb = r.get("normalized_bpb")
    if nb is None:
        if gain_of(r) is not None:
            return f"n/a ({r.get('normalized_note') or 'no bundled reference profile for this dataset'})"
        return f"n/a ({r.get('normalization_note') or 'run `arp calibrate`'})"
    if isinstance(nb, str):
        return nb
    band = r.get("normalized_bpb_band")
    text = f"{nb:.6f}"
    if band is not None:
        text += f" ± {band:.6f}"
    return text + f" (ref: {r.get('normalized_reference', '?')})" + (" [provisional]" if r.get("provisional") else "")
