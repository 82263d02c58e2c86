"""What `arp train` adds to a finished run (budget modes' FLOP budgets, normalized metrics), and
the ledger views: `arp results` and `arp compare`. Whether a run beats the best is verdict.py's."""

from __future__ import annotations

import math
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any

from autoresearch_portable.errors import UserError
from autoresearch_portable.harness.baseline import calibrate as cal
from autoresearch_portable.harness.records import ledger
from autoresearch_portable.harness.baseline import normalize
from autoresearch_portable.harness.records.ledger import LedgerRecords, parse_ledger
from autoresearch_portable.harness.run.summary import fmt, table
from autoresearch_portable.harness.run import summary



# --- normalization of a finished run -------------------------------------------------------------

def annotate(result: dict, probe: dict, plan: dict, dataset_id: dict, baseline: list[dict] | None = None) -> dict:
    """Add the normalized metrics to a run's result (in place) when this device has a current
    profile; else, against `baseline` (the ok runs of the workspace's unmodified baseline at this
    budget: baseline_runs), provisional ones; otherwise a note saying why they are n/a. Returns the
    result."""
    if result.get("status") != "ok" or result.get("val_bpb") is None:
        return result
    from autoresearch_portable.harness.baseline.bench import reference_for

    profile, note = cal.find_profile(probe, plan, dataset_id)
    ref, why = reference_for(dataset_id)  # read once: the provisional prior and the scale both use it
    if profile is None:
        prov = provisional_profile(baseline or [], dataset_id, ref)
        if prov is None or result.get("budget_mode", "wall") != "wall" or result.get("budget_seconds") != prov["budget_seconds"]:
            result["normalization_note"] = note
            return result
        profile, note = prov, prov["provisional"]
    # its σ is the verdict's noise even where its curve is not trusted for normalized results
    # (a provisional profile's is not: the verdict keeps its own, unchanged rule)
    if "provisional" not in profile:
        result.update(calibrated_sigma=float(profile["sigma"]), calibrated_sigma_dof=normalize.runs_at_budget(profile) - 1)
    refused = cal.normalization_refusal(profile)
    c_base = normalize.baseline_compute(profile, result.get("budget_seconds"), result.get("budget_mode", "wall"),
                                        result.get("flop_budget"))
    if refused and not normalize.at_own_budget(profile, c_base):  # only the curve is refused: its own budget needs none
        result["normalization_note"] = refused
        return result
    n = normalize.normalize(
        float(result["val_bpb"]), profile,
        budget_seconds=result.get("budget_seconds"), budget_mode=result.get("budget_mode", "wall"),
        flop_budget=result.get("flop_budget"), reference=ref,
    )
    if ref is None:
        n["normalized_note"] = why
    if "provisional" in profile:
        n = {k: v for k, v in n.items() if k not in ("calibrated_sigma", "calibrated_sigma_dof")}
        n["provisional"] = profile["provisional"]
    result.update(n)
    return result


def baseline_runs(records: list[dict], baseline_sha256: str | None, probe: dict, plan: dict, dataset_id: dict,
                  budget_seconds: float) -> list[dict]:
    """The metrics of the ledger's ok, signed runs of the unmodified baseline (arp init's train.py,
    by normalized hash) on this device, dataset and harness version, at this budget in wall mode.
    Pure."""
    from autoresearch_portable import HARNESS_VERSION
    from autoresearch_portable.harness.run.peak import device_key

    key, out = device_key(probe, plan), []
    for rec in records if baseline_sha256 else []:
        m = rec.get("metrics") or {}
        if (rec.get("status") == "ok" and not rec.get(ledger.UNTRUSTED) and rec.get("train_py_norm_sha256") == baseline_sha256
                and str(rec.get("harness_version")) == HARNESS_VERSION and m.get("dataset") == dataset_id["name"]
                and m.get("budget_mode", "wall") == "wall" and m.get("budget_seconds") == budget_seconds
                and _finite(m.get("val_bpb")) and _finite(m.get("train_flops"))
                and device_key(rec.get("device") or {}, rec.get("plan") or {}) == key):
            out.append(m)
    return out


def provisional_profile(runs: list[dict], dataset_id: dict, reference: dict | None = None) -> dict | None:
    """A profile from the unmodified baseline's runs at one budget, before `arp calibrate`: their
    mean val_bpb and FLOPs at that budget (no curve: it scores runs at that budget only). Sigma:
    their sample deviation from two runs on; from one, a stated prior, the reference's sigma scaled
    by the ratio of this run's evaluation error to the reference's (with the reference's degrees
    of freedom), or without a reference the run's evaluation error itself (one degree of
    freedom). Pure; None without runs."""
    if not runs:
        return None
    vals = [float(r["val_bpb"]) for r in runs]
    n, T = len(runs), float(runs[0]["budget_seconds"])
    p = dict(budget_seconds=T, flops_at_budget=statistics.fmean(float(r["train_flops"]) for r in runs),
             baseline_bpb_mean=statistics.fmean(vals), floor_bpb=dataset_id.get("floor_bpb"), repeats=n - 1,
             name=f"this device's baseline ({n} run{'s' if n > 1 else ''} at {T:g}s)")
    if n >= 2:
        p["sigma"], how = normalize.sample_std(vals), f"σ from {n} runs"
    else:
        se = float(runs[0].get("val_bpb_stderr") or 0.0)
        ref_se = [pt["val_bpb_stderr"] for pt in (reference or {}).get("points") or []
                  if pt.get("fraction") == 1.0 and _finite(pt.get("val_bpb_stderr"))]
        if reference and ref_se and se > 0:
            p.update(sigma=float(reference["sigma"]) * se / statistics.fmean(ref_se),
                     sigma_dof=normalize.runs_at_budget(reference) - 1)
            how = "σ a prior: the reference's, scaled by this run's evaluation error"
        else:
            p.update(sigma=se, sigma_dof=1)
            how = "σ a prior: the run's evaluation error"
        if not p["sigma"] > 0:
            return None
    p["provisional"] = (f"provisional: against {p['name']}, {how}; `arp calibrate` measures the baseline's noise and "
                        f"its curve (other budgets, work mode, early abandonment)")
    return p


# --- arp results -------------------------------------------------------------------------------

def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def ledger_path(path: str | Path) -> Path:
    """A ledger file, or the ledger of a workspace folder (its results/ledger.jsonl)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results" / "ledger.jsonl" if (path / "results").is_dir() else path / "ledger.jsonl"
    return path


def workspace_folder(path: str | Path) -> Path:
    """The workspace a ledger belongs to (the folder above its results/)."""
    p = ledger_path(path).resolve().parent
    return p.parent if p.name == "results" else p


def load_ledger(path: str | Path) -> LedgerRecords:
    path = ledger_path(path)
    if not path.exists():
        raise UserError(f"no ledger at {path} (run `arp train` in a workspace first)")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read the ledger {path}: {e.strerror or e}") from None
    return parse_ledger(data)


def skipped_note(records: list[dict], name: str = "the ledger") -> str | None:
    n = getattr(records, "skipped", 0)
    if not n:
        return None
    return f"{name}: {n} unreadable line{'s' if n != 1 else ''} skipped (not a run record: damaged or edited by hand)"


def row(rec: dict) -> dict[str, Any]:
    m = rec.get("metrics") or {}
    return dict(
        time=rec.get("time"),
        commit=rec.get("git_commit"),
        # a line the harness did not sign (or that was edited) never counts as a result
        status="untrusted" if rec.get(ledger.UNTRUSTED) else rec.get("status"),
        val_bpb=m.get("val_bpb"),
        val_bpb_stderr=m.get("val_bpb_stderr"),
        metric=m.get("metric"),
        compute_multiplier=m.get("compute_multiplier"),
        doublings=m.get("doublings"),
        doublings_band=m.get("doublings_band"),
        excess_ratio=m.get("excess_ratio"),
        excess_ratio_band=m.get("excess_ratio_band"),
        delta_bpb=m.get("delta_bpb"),
        delta_bpb_band=m.get("delta_bpb_band"),
        significant=m.get("significant"),
        normalized_bpb=m.get("normalized_bpb"),
        normalized_bpb_band=m.get("normalized_bpb_band"),
        normalized_reference=m.get("normalized_reference"),
        baseline_flops=m.get("baseline_flops"),
        num_steps=m.get("num_steps"),
        budget_seconds=m.get("budget_seconds"),
        budget_mode=m.get("budget_mode"),
        flop_budget=m.get("flop_budget"),
        backend=m.get("backend") or (rec.get("plan") or {}).get("backend"),
        device=m.get("device"),
        node=(rec.get("cluster") or {}).get("node") if isinstance(rec.get("cluster"), dict) else None,
        reason=rec.get("reason"),
    )


_f = partial(fmt, na="-")  # the one formatter, with the ledger table's blank


def _short_time(t: str | None) -> str:
    if not t:
        return "-"
    try:
        return time.strftime("%m-%d %H:%M", time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return t[:16]


def gain_notes(rows: list[dict]) -> list[str]:
    """What the gain column means for the runs shown (one line per kind of gain among them)."""
    kinds = sorted({g[0] for r in rows if (g := summary.gain_of(r))})
    if not kinds:
        return []
    return [summary.GAIN_NOTE[k] for k in kinds] + ["~ = within the noise band (not significant)"]


def _normalized(r: dict) -> str:
    if r.get("normalized_bpb") is None:
        return "n/a"
    return f"{r['normalized_bpb']:.4f}±{r['normalized_bpb_band']:.4f}" if r.get("normalized_bpb_band") is not None else f"{r['normalized_bpb']:.4f}"


# --- arp compare -------------------------------------------------------------------------------

def matched_budget(groups: list[list[dict]]) -> float | None:
    """The FLOP budget every group has an ok matched-mode run at (the largest such), or None. Pure.
    Runs at the same matched budget trained the same compute, whatever the device: their raw
    val_bpb compares directly."""
    budgets = None
    for rows in groups:
        have = {f"{r['flop_budget']:.6g}" for r in rows if r["status"] == "ok" and r.get("budget_mode") == "matched"
                and _finite(r.get("flop_budget")) and _finite(r["val_bpb"])}
        budgets = have if budgets is None else budgets & have
    return max((float(b) for b in budgets), default=None) if budgets else None


def compare_rows(ledgers: dict[str, list[dict]]) -> list[dict]:
    """One row per ledger and device: runs, ok runs, the first ok run (usually the baseline) and
    the best run, with their normalized columns. When every device has matched-mode runs at one
    FLOP budget, those are compared on raw val_bpb (basis "matched"), the first way to compare
    machines; otherwise the best is the lowest normalized_bpb (basis "normalized")."""
    groups: dict[tuple, list[dict]] = {}
    for name, records in ledgers.items():
        for rec in records:
            r = row(rec)
            groups.setdefault((name, r["device"], r["backend"]), []).append(r)
    flops = matched_budget(list(groups.values()))
    out = []
    for (name, device, backend), rows in groups.items():
        ok = [r for r in rows if r["status"] == "ok" and _finite(r["val_bpb"])]
        if flops is not None:
            same = [r for r in ok if r.get("budget_mode") == "matched" and f"{r['flop_budget']:.6g}" == f"{flops:.6g}"]
            best = min(same, key=lambda r: r["val_bpb"])
        else:
            best_norm = [r for r in ok if _finite(r["normalized_bpb"])]
            best = min(best_norm, key=lambda r: r["normalized_bpb"]) if best_norm else (
                min(ok, key=lambda r: r["val_bpb"]) if ok else None)
        out.append(dict(ledger=name, device=device, backend=backend, runs=len(rows), ok=len(ok),
                        first=ok[0] if ok else None, best=best, basis="matched" if flops is not None else "normalized",
                        matched_flops=flops))
    return out


def format_compare(ledgers: dict[str, list[dict]]) -> str:
    rows = compare_rows(ledgers)
    header = ["ledger", "device", "runs", "ok", "first val_bpb", "best val_bpb", "best commit", "gain",
              "normalized_bpb", "budget"]
    body = []
    for r in rows:
        f, b = r["first"] or {}, r["best"] or {}
        body.append([
            r["ledger"], f"{r['device'] or '?'} ({r['backend'] or '?'})", str(r["runs"]), str(r["ok"]),
            _f(f.get("val_bpb"), ".6f"), _f(b.get("val_bpb"), ".6f"), b.get("commit") or "-",
            summary.short_gain(b) if b else "-", _normalized(b) if b else "-",
            f"{_f(b.get('budget_seconds'), 'g')}s {b.get('budget_mode') or ''}".strip() if b else "-",
        ])
    refs = sorted({r["best"]["normalized_reference"] for r in rows if r["best"] and r["best"].get("normalized_reference")})
    notes = [note for name, recs in ledgers.items() if (note := skipped_note(recs, name))]
    if rows and rows[0]["basis"] == "matched":
        notes += [f"matched: every device has runs at the same {rows[0]['matched_flops']:.4g} training FLOPs "
                  "(--budget-mode matched); best = lowest val_bpb among them, and raw val_bpb compares directly"]
    else:
        notes += ["best = lowest normalized_bpb where the device was calibrated, else lowest val_bpb; "
                  "raw val_bpb is comparable only between runs of the same device and budget "
                  "(or at the same FLOPs: run each device with --budget-mode matched)"]
    notes += gap_notes({r["ledger"]: (r["best"] or {}).get("baseline_flops") for r in rows})
    if refs:
        notes.append("normalized_bpb on the scale of: " + "; ".join(refs))
        if len(refs) > 1:
            notes.append("warning: the ledgers used different reference profiles; their normalized_bpb are not on one scale")
    return table(header, body, left={0, 1, 6}) + "\n\n" + "\n".join(notes)


def gap_notes(baseline_flops: dict[str, float | None]) -> list[str]:
    """For each pair of ledgers whose devices' baseline compute is known: the compute gap between
    them and whether a comparison across it is inside the measured range. Pure."""
    known = [(name, c) for name, c in baseline_flops.items() if _finite(c) and c > 0]
    return [f"{a} vs {b}: {normalize.gap_note(normalize.compute_gap(ca, cb))}"
            for i, (a, ca) in enumerate(known) for b, cb in known[i + 1:]]


def plot_progress(ledgers: dict[str, list[dict]], out: str | Path) -> str:
    """`arp compare --plot`: per ledger, every ok run's normalized_bpb (val_bpb where a device was
    not calibrated) by experiment number, with the running best as a step line (plot.py)."""
    from autoresearch_portable.harness.records.plot import plot_data, write_plot

    normalized_everywhere = all(
        row(r)["normalized_bpb"] is not None for recs in ledgers.values() for r in recs if r.get("status") == "ok")
    key = "normalized_bpb" if normalized_everywhere else "val_bpb"
    return write_plot({name: plot_data(recs, set(), None, key) for name, recs in ledgers.items()}, out,
                      key + (" (reference scale)" if key == "normalized_bpb" else " (raw)"))
