"""The bundled benchmark: its definition (`benchmarks/standard.json`), the measured reference
profiles shipped with the package (`benchmarks/results/*.json`), choosing the reference for
normalized_bpb, and `arp bench` (a calibration on the bundled corpus, then a side-by-side table).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from autoresearch_portable import HARNESS_VERSION, paths
from autoresearch_portable.errors import UserError
from autoresearch_portable.fsutil import atomic_write_json, read_json
from autoresearch_portable.harness.baseline import calibrate as cal
from autoresearch_portable.harness.baseline import normalize
from autoresearch_portable.harness.run.summary import fmt, table
from autoresearch_portable.harness.run import summary

# fields of a profile that go into a bundle file (the rest, e.g. the local path, stays local)
BUNDLE_DROP = ("path", "reused")


def benchmarks_dir() -> Path:
    """`benchmarks/` of a source checkout, or its copy inside an installed wheel
    (autoresearch_portable/assets/benchmarks). ARP_BENCHMARKS_DIR overrides (tests)."""
    override = os.environ.get("ARP_BENCHMARKS_DIR")
    if override:
        return Path(override)
    here = Path(__file__).resolve().parents[2]  # the package
    for candidate in (here / "assets" / "benchmarks", here.parent / "benchmarks"):
        if (candidate / "standard.json").exists():
            return candidate
    raise UserError("the bundled benchmark files are missing from this installation (benchmarks/standard.json)")


def definition(quick: bool = False) -> dict:
    d = json.loads((benchmarks_dir() / "standard.json").read_text())
    run = dict(d["quick"] if quick else d["standard"])
    run.update(name=d["name"] + ("-quick" if quick else ""), dataset=d["dataset"], quick=quick)
    return run


def bundled_profiles() -> list[dict]:
    """Every reference profile shipped with the package (whatever its version)."""
    try:
        folder = benchmarks_dir() / "results"
    except UserError:
        return []
    out = []
    for f in sorted(folder.glob("*.json")):
        p = read_json(f)
        if p is None or not all(k in p for k in ("a", "s", "budget_seconds")):
            continue  # other measurements kept beside the profiles
        p["file"] = f.name
        out.append(p)
    return out


def _preference(p: dict) -> tuple:
    """Lower sorts first: an H100 reference, then other CUDA GPUs, then torch CPU, then the rest."""
    name = str(p.get("device_name", ""))
    backend = p.get("backend")
    return (
        0 if "H100" in name else 1,
        0 if backend == "cuda" else 1,
        0 if backend == "cpu" else 1,
        1 if p.get("quick") else 0,
        p.get("file", ""),
    )


def usable_references(dataset_id: dict, profiles: list[dict] | None = None) -> tuple[list[dict], str]:
    """Bundled profiles for this dataset (same versions) and harness version, best reference
    first; when none fits, an empty list and the reason."""
    profiles = bundled_profiles() if profiles is None else profiles
    fits, why = [], []
    for p in profiles:
        reason = cal.stale_reason(p, dataset_id) or cal.normalization_refusal(p)
        if reason:
            why.append(f"{p.get('file', p.get('name'))}: {reason}")
        else:
            fits.append(p)
    fits.sort(key=_preference)
    if fits:
        return fits, ""
    if not profiles:
        return [], "no bundled reference profiles in this installation"
    same = [w for w in why if dataset_id["name"] in w or "harness" in w or "changed" in w]
    return [], f"no bundled reference profile for dataset {dataset_id['name']!r} at harness version {HARNESS_VERSION}" + (
        f" ({same[0]})" if same else "")


def reference_for(dataset_id: dict) -> tuple[dict | None, str]:
    refs, why = usable_references(dataset_id)
    return (refs[0], "") if refs else (None, why)


# --- bundle format -----------------------------------------------------------------------------

def to_bundle(profile: dict, *, bench_name: str | None = None, command: str | None = None) -> dict:
    """A profile in the bundle's format: everything measured, nothing local."""
    out = {k: v for k, v in profile.items() if k not in BUNDLE_DROP and k != "file"}
    dev = dict(out.get("device") or {})
    for k in ("hostname", "user", "home"):
        dev.pop(k, None)
    out["device"] = dev
    if bench_name:
        out["benchmark"] = bench_name
    if command:
        out["measured_with"] = command
    out.setdefault("name", reference_name(out))
    return out


def reference_name(p: dict) -> str:
    """e.g. "AMD EPYC (2 cores), torch cpu bfloat16, T=300s"."""
    dev = p.get("device") or {}
    cores = dev.get("usable_cores") or dev.get("logical_cores")
    backend = p.get("backend")
    kind = "mlx" if backend == "mlx" else f"torch {backend}"
    where = f" ({cores} cores)" if cores and backend in ("cpu", "mlx") and not (dev.get("gpus")) else ""
    dtype = (p.get("plan") or {}).get("dtype", "")
    return f"{p.get('device_name', 'device')}{where}, {kind} {dtype}, T={p.get('budget_seconds', 0):g}s".replace("  ", " ")


# --- arp bench ---------------------------------------------------------------------------------

def bench_profile_path(probe: dict, plan: dict, dataset_name: str, quick: bool) -> Path:
    from autoresearch_portable.harness.run.peak import device_key

    name = cal.profile_filename(device_key(probe, plan), dataset_name)
    return paths.profiles_dir() / "bench" / (name[:-5] + ("--quick" if quick else "") + ".json")


def run_bench(probe: dict, plan: dict, *, quick: bool = False, force: bool = False, log: Callable = print,
              sizes: dict | None = None, runner: Callable | None = None, quiet: bool = True) -> dict:
    """The standard benchmark on this device: a calibration under the benchmark's definition.
    The standard (non-quick) run reuses this device's calibration when that one was made under
    the same definition, and becomes the calibration when the device has none."""
    d = definition(quick)
    from autoresearch_portable import data

    ds_id = cal.dataset_identity(data.load(d["dataset"]))
    path = bench_profile_path(probe, plan, d["dataset"], quick)
    active = cal.profile_path(probe, plan, ds_id["name"])
    if not quick and not force and not path.exists() and active.exists():
        p, _ = cal.load_profile(active, ds_id)
        if p and float(p["budget_seconds"]) == float(d["budget_seconds"]) and p.get("repeats", 0) >= d["repeats"]:
            log(f"using this device's calibration {active.name}: it was made under the standard benchmark's definition")
            path = active
    profile = cal.calibrate(probe, plan, d["dataset"], d["budget_seconds"], d["repeats"], force=force,
                            sizes=sizes, path=path, log=log, runner=runner, quiet=quiet,
                            min_steps=0 if quick else cal.MIN_STEPS)  # a quick bench is a CI smoke, not a profile
    profile["benchmark"] = d["name"]
    profile["quick"] = quick
    if not quick and not active.exists():
        atomic_write_json(active, {k: v for k, v in profile.items() if k not in BUNDLE_DROP})
        log(f"also stored as this device's calibration: {active}")
    return profile


def bench_row(p: dict, ref: dict | None, *, label: str | None = None) -> dict:
    """One row of the side-by-side table. The normalized score is the baseline's own mean
    val_bpb at T put through the normalization (g ~ 0 by construction: it shows where the
    device's baseline sits on the reference scale, with the device's noise band)."""
    row = dict(
        label=label or normalize.profile_label(p),
        backend=p.get("backend"),
        budget_seconds=p.get("budget_seconds"),
        tokens_per_second=p.get("tokens_per_second"),
        flops_per_second=p.get("flops_per_second"),
        mfu_percent=p.get("mfu_percent"),
        baseline_bpb=p.get("baseline_bpb_mean"),
        s=p.get("s"),
        sigma=p.get("sigma"),
        floor_bpb=p.get("floor_bpb"),
        excess_bpb=excess_over_floor(p),
        depth=(p.get("baseline_sizes") or {}).get("DEPTH"),
        width=(p.get("baseline_sizes") or {}).get("MODEL_DIM"),
    )
    if ref is not None and p.get("flops_at_budget") and ref.get("flops_at_budget"):
        row["compute_gap"] = normalize.compute_gap(p["flops_at_budget"], ref["flops_at_budget"])
    if ref is not None and p.get("baseline_bpb_mean") is not None:
        n = normalize.normalize(p["baseline_bpb_mean"], p, reference=ref)
        row.update(gain=summary.short_gain(n), normalized_bpb=n.get("normalized_bpb"),
                   normalized_bpb_band=n.get("normalized_bpb_band"))
    return row


def excess_over_floor(p: dict) -> float | None:
    """The baseline's distance above the entropy floor: how much a device has left to learn (the
    yardstick saturates when this nears 0), or None without a floor."""
    b, f = p.get("baseline_bpb_mean"), p.get("floor_bpb")
    return None if b is None or f is None else b - f


def format_table(rows: list[dict], ref_label: str | None, missing: list[str] | None = None) -> str:
    cols = [
        ("device", lambda r: r["label"]),
        ("T s", lambda r: fmt(r["budget_seconds"], "g")),
        ("model", lambda r: f"d{r['depth']}w{r['width']}" if r.get("depth") else "?"),
        ("tok/s", lambda r: fmt(r["tokens_per_second"], ",.0f")),
        ("GFLOP/s", lambda r: fmt(r["flops_per_second"] and r["flops_per_second"] / 1e9, ",.1f")),
        ("MFU %", lambda r: fmt(r["mfu_percent"], ".2f")),
        ("bpb@T", lambda r: fmt(r["baseline_bpb"], ".4f")),
        ("excess", lambda r: fmt(r.get("excess_bpb"), ".4f")),
        ("s/doubling", lambda r: fmt(r["s"], ".4f")),
        ("sigma", lambda r: fmt(r["sigma"], ".4f")),
        ("gap", lambda r: "n/a" if r.get("compute_gap") is None else f"{2 ** r['compute_gap']:.3g}x"),
        ("gain", lambda r: r.get("gain") or "n/a"),  # the device's own baseline against its curve: ~0 by construction
        ("normalized_bpb", lambda r: "n/a" if r.get("normalized_bpb") is None else
         f"{r['normalized_bpb']:.4f} ± {r['normalized_bpb_band']:.4f}"),
    ]
    lines = [table([name for name, _ in cols], [[fn(r) for _, fn in cols] for r in rows], left={0}), ""]
    lines.append(f"normalized_bpb on the scale of: {ref_label}" if ref_label else
                 "normalized_bpb: n/a (no bundled reference profile for this dataset and harness version)")
    for r in rows[:1] if ref_label else []:  # this device against the scale's reference
        if r.get("compute_gap") is not None:
            lines.append(f"gap = baseline compute against the reference; {r['label']}: {normalize.gap_note(r['compute_gap'])}")
    floor = next((r["floor_bpb"] for r in rows if r.get("floor_bpb")), None)
    if floor:
        lines.append(f"entropy floor of the validation split: {floor:.4f} bpb")
    for m in missing or []:
        lines.append(m)
    return "\n".join(lines)


EXPECTED_REFERENCES = (
    ("H100", lambda p: "H100" in str(p.get("device_name", ""))),
    ("CPU, torch", lambda p: p.get("backend") == "cpu"),
    ("CPU, mlx", lambda p: p.get("backend") == "mlx"),
)


def not_measured(profiles: list[dict]) -> list[str]:
    """Reference devices the project wants and has not measured yet."""
    return [f"{dev}: not yet measured" for dev, has in EXPECTED_REFERENCES if not any(has(p) for p in profiles)]


def report(profile: dict, profiles: list[dict] | None = None) -> str:
    """The side-by-side table: this device first, then each bundled reference for the dataset."""
    refs, why = usable_references(profile["dataset"], profiles)
    ref = refs[0] if refs else None
    rows = [bench_row(profile, ref, label=f"this device: {normalize.profile_label(profile)}")]
    rows += [bench_row(p, ref, label=f"{p.get('name') or normalize.profile_label(p)}") for p in refs]
    missing = not_measured(bundled_profiles() if profiles is None else profiles)
    if why:
        missing = [f"references: {why}"] + missing
    head = f"benchmark {profile.get('benchmark', '?')}: baseline on dataset {profile['dataset']['name']}, " \
           f"T={profile['budget_seconds']:g}s, {profile.get('repeats', 0) + 1} runs at T"
    return head + "\n\n" + format_table(rows, ref and (ref.get("name") or normalize.profile_label(ref)), missing)
