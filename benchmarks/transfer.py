"""How a gain carries across a ~10x compute gap (issue 32): the same edits on two simulated
devices, each sized for itself as `arp init` sizes it.

A device is NAME:threads=N:budget=SECONDS: this CPU limited to N threads (OMP_NUM_THREADS for
every process of its runs) at a wall-clock budget. Each device gets a cache folder of its own
(ARP_CACHE_DIR, the prepared dataset shared by a link), so its throughput probes, MFU peak and
baseline sizes are its own. Then, per device: the unmodified baseline --baseline-runs times, and
every edit --runs times (seeds 1, 2, ...: data order and model seed both change), in the same
confined path `arp train` uses (runner.run_training).

Edits are relative to each device's own baseline (`MODEL_DIM*0.5` halves that device's width), so
"the same edit" means the same kind of change at each scale.

    python benchmarks/transfer.py --devices small:threads=1:budget=30,large:threads=2:budget=200 \\
        --out benchmarks/measured/transfer-10x.json
    python benchmarks/transfer.py --report benchmarks/measured/transfer-10x.json   # the tables again

Every finished run is written to --out at once (a stopped benchmark resumes where it was).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# name -> (template constant, operation, operand): each a change with an effect well above the
# run-to-run noise on the bundled corpus at CPU budgets
EDITS = {
    "lr_up": ("MATRIX_LR", "*", 4),
    "lr_down": ("MATRIX_LR", "*", 0.25),
    "no_warmdown": ("WARMDOWN_FRAC", "=", 0.0),
    "half_width": ("MODEL_DIM", "*", 0.5),
    "half_depth": ("DEPTH", "*", 0.5),
    "batch_x4": ("TOTAL_BATCH_SIZE", "*", 4),
    "mlp_ratio_1": ("MLP_RATIO", "=", 1),
}


def parse_device(text: str) -> dict:
    name, *opts = text.split(":")
    dev = dict(name=name, threads=None, budget=None)
    for o in opts:
        k, _, v = o.partition("=")
        if k in ("threads", "budget") and v.replace(".", "", 1).isdigit():
            dev[k] = int(v) if k == "threads" else float(v)
    if not name or not dev["threads"] or not dev["budget"]:
        raise SystemExit(f"error: a device is NAME:threads=N:budget=SECONDS; got {text!r}")
    return dev


def edited_values(sizes: dict, template: dict, edit: str) -> dict:
    """The template constants one edit sets, from the device's own sizes and the template's
    defaults. Integers stay integers; a width stays a multiple of the head size. Pure."""
    name, op, operand = EDITS[edit]
    if op == "=":
        return {name: operand}
    value = sizes.get(name, template.get(name))
    new = value * operand
    if name == "MODEL_DIM":
        new = max(template["HEAD_DIM"], int(new) // template["HEAD_DIM"] * template["HEAD_DIM"])
    elif isinstance(value, int):
        new = max(1, int(round(new)))
    out = {name: new}
    if name == "TOTAL_BATCH_SIZE":  # keep the device batch; accumulation makes up the rest
        out["DEVICE_BATCH_SIZE"] = sizes["DEVICE_BATCH_SIZE"]
    return out


def constants(text: str) -> dict:
    """The module-level `NAME = literal` constants of a train.py. Pure."""
    import ast

    out = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def template_defaults() -> dict:
    return constants((ROOT / "train_template.py").read_text())


def use_device(dev: dict, cache_root: Path) -> None:
    """Point this process (and the runs it starts) at the device's threads and cache folder."""
    os.environ.update(OMP_NUM_THREADS=str(dev["threads"]), MKL_NUM_THREADS=str(dev["threads"]))
    from autoresearch_portable import paths

    os.environ.pop("ARP_CACHE_DIR", None)
    shared = paths.cache_dir() / "data"
    folder = cache_root / dev["name"]
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "data").exists():
        (folder / "data").symlink_to(shared, target_is_directory=True)
    os.environ["ARP_CACHE_DIR"] = str(folder)


def run_one(pr: dict, plan: dict, dataset: str, sizes: dict, values: dict, budget: float, seed: int) -> dict:
    from autoresearch_portable.harness.baseline.calibrate import BASE_MODEL_SEED, baseline_source
    from autoresearch_portable.harness.run.launch import run_training
    from autoresearch_portable.harness.baseline.template import render_template

    text = render_template(baseline_source(plan, sizes, BASE_MODEL_SEED + seed), values)
    with tempfile.TemporaryDirectory(prefix="arp-transfer-") as tmp:
        path = Path(tmp) / "train.py"
        path.write_text(text)
        r = run_training(path, probe=pr, plan=plan, dataset=dataset, budget_seconds=budget, seed=seed, quiet=True)
    return {k: r.get(k) for k in ("status", "reason", "val_bpb", "val_bpb_stderr", "train_flops", "num_steps",
                                  "training_seconds", "wall_seconds", "confined")}


def measure(args, out: dict, save) -> None:
    from autoresearch_portable.detect import make_plan, probe
    from autoresearch_portable.harness.baseline.template import size_for_device

    template = template_defaults()
    for spec in args.devices:
        dev = parse_device(spec)
        use_device(dev, Path(args.cache))
        found = probe()
        pr, plan = found.to_dict(), make_plan(found, "cpu").to_dict()
        d = next((x for x in out["devices"] if x["name"] == dev["name"]), None)
        if d is None:
            print(f"== {dev['name']}: sizing for {dev['budget']:g}s on {dev['threads']} thread(s)", flush=True)
            sizes = size_for_device(pr, plan, out["dataset"], dev["budget"], log=lambda m: print("   ", m, flush=True))
            d = dict(name=dev["name"], threads=dev["threads"], budget_seconds=dev["budget"],
                     sizes={k: sizes[k] for k in ("DEPTH", "MODEL_DIM", "DEVICE_BATCH_SIZE", "TOTAL_BATCH_SIZE")},
                     measured_flops_per_second=sizes["measured_flops_per_second"], cpu=pr.get("cpu_model"),
                     cpu_flags=sorted(f for f in pr.get("cpu_flags") or [] if f.startswith(("avx", "amx"))))
            out["devices"].append(d)
            save()
        print(f"== {dev['name']}: sizes {d['sizes']}", flush=True)
        plan_runs = [("baseline", {}, s) for s in range(1, args.baseline_runs + 1)]
        for rep in range(1, args.runs + 1):
            plan_runs += [(e, edited_values(d["sizes"], template, e), rep) for e in args.edits]
        for edit, values, seed in plan_runs:
            edit_runs = out["detail"].setdefault(edit, dict(values={}, runs={}))
            edit_runs["values"][dev["name"]] = values
            done = edit_runs["runs"].setdefault(dev["name"], [])
            if any(r["seed"] == seed for r in done):
                continue
            t0 = time.time()
            r = run_one(pr, plan, out["dataset"], d["sizes"], values, dev["budget"], seed)
            r.update(seed=seed, seconds=round(time.time() - t0, 1))
            print(f"   {edit:12} seed {seed}: {r['status']} val_bpb {r['val_bpb']} "
                  f"{(r['train_flops'] or 0):.3g} FLOPs {r['num_steps']} steps {r['seconds']}s", flush=True)
            done.append(r)
            save()


def ok_bpb(runs: list[dict]) -> list[float]:
    return [r["val_bpb"] for r in runs if r.get("status") == "ok" and isinstance(r.get("val_bpb"), (int, float))]


def analyse(out: dict) -> dict:
    """Per device: the baseline's mean, σ and FLOPs; per edit and device: Δbpb and the excess
    ratio against that device's own baseline mean, each with its standard error; per edit: the
    difference across the devices (second minus first) and whether the signs agree. Pure."""
    floor = out["floor_bpb"]
    devices = [d["name"] for d in out["devices"]]
    base = {}
    for name in devices:
        runs = out["detail"].get("baseline", {}).get("runs", {}).get(name, [])
        vals, flops = ok_bpb(runs), [r["train_flops"] for r in runs if r.get("status") == "ok"]
        if len(vals) >= 2:
            base[name] = dict(mean=statistics.fmean(vals), sigma=statistics.stdev(vals), n=len(vals),
                              train_flops=statistics.fmean(flops))
    rows = []
    for edit, e in out["detail"].items():
        if edit == "baseline":
            continue
        row = dict(edit=edit, per_device={})
        for name in devices:
            vals = ok_bpb(e["runs"].get(name, []))
            b = base.get(name)
            if not vals or not b:
                continue
            m = statistics.fmean(vals)
            # the edit's mean and the baseline's mean are both estimates: σ of each from the
            # baseline's runs (the edit's own few runs give a poor σ)
            se = b["sigma"] * math.sqrt(1 / len(vals) + 1 / b["n"])
            excess = b["mean"] - floor
            row["per_device"][name] = dict(val_bpb=m, n=len(vals), delta=m - b["mean"], delta_se=se,
                                           ratio=(m - floor) / excess, ratio_se=se / excess)
        if len(row["per_device"]) == len(devices) == 2:
            a, b2 = (row["per_device"][n] for n in devices)
            row.update(delta_diff=b2["delta"] - a["delta"], delta_diff_se=math.hypot(a["delta_se"], b2["delta_se"]),
                       ratio_diff=b2["ratio"] - a["ratio"], ratio_diff_se=math.hypot(a["ratio_se"], b2["ratio_se"]),
                       sign_agrees=(a["delta"] > 0) == (b2["delta"] > 0))
        rows.append(row)
    gap = None
    if len(base) == 2:
        f = [base[n]["train_flops"] for n in devices]
        gap = math.log2(f[1] / f[0])
    return dict(baseline=base, rows=rows, log2_flop_gap=gap)


def transfer_term(rows: list[dict], gap: float) -> float | None:
    """The measured spread of the excess ratio carried across the gap, per doubling of compute:
    the root mean square of (ratio difference beyond what the runs' own noise explains) over the
    edits, divided by log2 of the FLOP ratio. Pure."""
    excess = [max(0.0, r["ratio_diff"] ** 2 - r["ratio_diff_se"] ** 2) for r in rows if "ratio_diff" in r]
    if not excess or not gap:
        return None
    return math.sqrt(statistics.fmean(excess)) / abs(gap)


def markdown(out: dict, a: dict) -> str:
    devices = [d["name"] for d in out["devices"]]
    lines = ["| device | threads | budget (s) | baseline sizes (depth × width, batch) | baseline FLOPs | "
             "baseline val_bpb (mean ± σ, n) |", "|---|---:|---:|---|---:|---|"]
    for d in out["devices"]:
        b, s = a["baseline"].get(d["name"]), d["sizes"]
        base = f"{b['mean']:.4f} ± {b['sigma']:.4f} ({b['n']})" if b else "n/a"
        flops = f"{b['train_flops']:.3g}" if b else "n/a"
        lines.append(f"| {d['name']} | {d['threads']} | {d['budget_seconds']:g} | {s['DEPTH']} × {s['MODEL_DIM']}, "
                     f"{s['TOTAL_BATCH_SIZE']} tokens | {flops} | {base} |")
    lines += ["", "| edit | " + " | ".join(f"Δbpb {n}" for n in devices) + " | Δbpb difference | "
              + " | ".join(f"ratio {n}" for n in devices) + " | ratio difference | sign agrees |",
              "|---|" + "---:|" * (2 * len(devices) + 2) + "---|"]
    for r in a["rows"]:
        pd = r["per_device"]
        cells = [f"{pd[n]['delta']:+.4f} ± {pd[n]['delta_se']:.4f}" if n in pd else "n/a" for n in devices]
        ratios = [f"{pd[n]['ratio']:.3f} ± {pd[n]['ratio_se']:.3f}" if n in pd else "n/a" for n in devices]
        dd = f"{r['delta_diff']:+.4f} ± {r['delta_diff_se']:.4f}" if "delta_diff" in r else "n/a"
        rd = f"{r['ratio_diff']:+.3f} ± {r['ratio_diff_se']:.3f}" if "ratio_diff" in r else "n/a"
        sign = ("yes" if r["sign_agrees"] else "**no**") if "sign_agrees" in r else "n/a"
        lines.append(f"| {r['edit']} | " + " | ".join(cells) + f" | {dd} | " + " | ".join(ratios) + f" | {rd} | {sign} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", default="small:threads=1:budget=30,large:threads=2:budget=200")
    ap.add_argument("--edits", default=",".join(EDITS), help=f"comma-separated, of {', '.join(EDITS)}")
    ap.add_argument("--runs", type=int, default=2, help="runs of each edit on each device")
    ap.add_argument("--baseline-runs", type=int, default=4)
    ap.add_argument("--dataset", default="bundled-v2")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "arp-transfer-cache"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "measured" / "transfer-10x.json"))
    ap.add_argument("--report", metavar="JSON", help="print the tables of an earlier --out, run nothing")
    args = ap.parse_args()
    if args.report:
        out = json.loads(Path(args.report).read_text())
    else:
        args.devices = args.devices.split(",")
        args.edits = [e for e in args.edits.split(",") if e]
        unknown = [e for e in args.edits if e not in EDITS]
        if unknown:
            raise SystemExit(f"error: unknown edit(s) {unknown}; known: {', '.join(EDITS)}")
        path = Path(args.out)
        from autoresearch_portable import data
        from autoresearch_portable.harness.baseline.calibrate import dataset_identity

        out = json.loads(path.read_text()) if path.exists() else dict(
            dataset=args.dataset, floor_bpb=dataset_identity(data.load(args.dataset))["floor_bpb"], devices=[],
            detail={}, started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))

        def save() -> None:
            from autoresearch_portable.fsutil import atomic_write_json

            a = analyse(out)
            for d in out["devices"]:
                if d["name"] in a["baseline"]:
                    d["train_flops"] = a["baseline"][d["name"]]["train_flops"]
            # the summary form: every edit (the baseline too) with its val_bpb values per device
            out["edits"] = [dict(name=e, values=v["values"], runs={n: ok_bpb(rs) for n, rs in v["runs"].items()})
                            for e, v in out["detail"].items()]
            out["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            atomic_write_json(path, out)

        measure(args, out, save)
    a = analyse(out)
    if a["log2_flop_gap"] is not None:
        term = transfer_term(a["rows"], a["log2_flop_gap"])
        print(f"\ncompute gap: {2 ** a['log2_flop_gap']:.1f}x ({a['log2_flop_gap']:.2f} doublings); "
              f"transfer term of the excess ratio: {term if term is None else round(term, 4)} per doubling")
    print(markdown(out, a))


if __name__ == "__main__":
    main()
