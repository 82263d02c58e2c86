"""Early abandonment, measured: after `arp calibrate` in a fresh workspace, 4 deliberately bad edits
and 4 neutral or good ones, each committed and run with `arp train` as an agent would. Reports the
share of wall time saved on the bad ones (launch to exit of `arp train`, against the median of the
runs that went the whole budget) and how many neutral/good ones were wrongly abandoned.

    flock /work/cpu.lock python benchmarks/abandon.py [--budget 60] [--out FILE] [--full-bad]

--full-bad also runs each bad edit to the end (`--no-abandon --again`), to show it really was bad.
--no-abandon runs every edit to the end and replays the abandonment rule on the recorded traces
(for tuning the rule; the numbers it prints are simulated, not measured).
A cache of its own (ARP_CACHE_DIR, default <workdir>/cache) keeps the user's profiles untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

LRS = ("MATRIX_LR", "EMBEDDING_LR", "UNEMBEDDING_LR", "SCALAR_LR")


def _scale(text: str, names, factor: float) -> str:
    for name in names:
        text = re.sub(rf"^({name} = )([0-9.e-]+)", lambda m: f"{m.group(1)}{float(m.group(2)) * factor!r}", text, count=1, flags=re.M)
    return text


def _set(text: str, name: str, value) -> str:
    new, n = re.subn(rf"^({name} = )[^#\n]*?(\s*#.*)?$", lambda m: f"{m.group(1)}{value!r}{m.group(2) or ''}", text, count=1, flags=re.M)
    assert n == 1, name
    return new


def _width_quarter(text: str) -> str:
    dim = int(re.search(r"^MODEL_DIM = (\d+)", text, re.M).group(1))
    head = int(re.search(r"^HEAD_DIM = (\d+)", text, re.M).group(1))
    return _set(_set(text, "MODEL_DIM", dim // 4), "HEAD_DIM", min(head, dim // 4))


def _broken_schedule(text: str) -> str:
    old = "lrm = lr_multiplier(rt.progress)"
    assert old in text
    return text.replace(old, "lrm = lr_multiplier(min(1.0, 10 * rt.progress))  # progress in the wrong units")


BAD = {
    "all learning rates x10": lambda t: _scale(t, LRS, 10.0),
    "all learning rates /10": lambda t: _scale(t, LRS, 0.1),
    "broken schedule (LR decays to 0 by 10% of the budget)": _broken_schedule,
    "width /4": _width_quarter,
}
GOOD = {
    "another model seed (neutral)": lambda t: _set(t, "SEED", 7),
    "longer warmdown 0.5 -> 0.6": lambda t: _set(t, "WARMDOWN_FRAC", 0.6),
    "Muon LR x1.25": lambda t: _scale(t, ("MATRIX_LR",), 1.25),
    "weight decay 0.2 -> 0.1": lambda t: _set(t, "WEIGHT_DECAY", 0.1),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=60)
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--workdir", default="/tmp/arp-abandon")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--keep-profile", action="store_true", help="reuse the calibration in the cache if there is one")
    ap.add_argument("--full-bad", action="store_true")
    ap.add_argument("--no-abandon", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    work = Path(args.workdir)
    env = dict(os.environ, ARP_CACHE_DIR=args.cache or str(work / "cache"))
    arp = [sys.executable, "-m", "autoresearch_portable"]
    be = ["--backend", args.backend]
    b = ["--budget", f"{args.budget:g}"]
    t_all = time.time()
    subprocess.run([*arp, "prepare"], check=True, env=env)
    ws = work / "ws"
    shutil.rmtree(ws, ignore_errors=True)
    subprocess.run([*arp, "init", str(ws), *b, *be], check=True, env=env)
    t_cal = time.time()
    subprocess.run([*arp, "calibrate", *b, *be, *([] if args.keep_profile else ["--force"])], check=True, env=env)
    calibrate_seconds = time.time() - t_cal
    os.environ["ARP_CACHE_DIR"] = env["ARP_CACHE_DIR"]  # read the profile and ledger as arp does
    from autoresearch_portable import data
    from autoresearch_portable.detect import make_plan, probe
    from autoresearch_portable.harness.run import abandon
    from autoresearch_portable.harness.baseline import calibrate
    from autoresearch_portable.harness.records import ledger

    pr = probe()
    profile, note = calibrate.find_profile(pr.to_dict(), make_plan(pr, args.backend).to_dict(),
                                           calibrate.dataset_identity(data.load("bundled")))
    assert profile is not None, note
    sizing = json.loads((ws / ".arp.json").read_text())["sizing"]
    same = all(sizing.get(k) == profile["baseline_sizes"].get(k) for k in abandon.CURVE_SIZE_KEYS)
    print(f"calibrated baseline {profile['baseline_sizes']}, workspace baseline the same: {same}", flush=True)
    base = (ws / "train.py").read_text()
    git = lambda *a: subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *a], cwd=ws,
                                    check=True, capture_output=True)
    runs = []

    def run(name: str, kind: str, edit, extra=()) -> dict:
        (ws / "train.py").write_text(edit(base))
        git("commit", "-qam", name)
        t = time.time()
        r = subprocess.run([*arp, "train", *b, *be, *extra], cwd=ws, env=env, capture_output=True, text=True)
        wall = time.time() - t
        rec = ledger.read(ws / "results" / "ledger.jsonl")[-1]
        git("reset", "-q", "--hard", "HEAD~1")
        m = rec["metrics"]
        watch = m.get("abandon_watch") or {}
        out = dict(edit=name, kind=kind, extra=list(extra), status=rec["status"], wall_seconds=round(wall, 1),
                   val_bpb=m.get("val_bpb"), abandon_progress=m.get("abandon_progress"), abandon_gap=m.get("abandon_gap"),
                   abandon_margin=m.get("abandon_margin"), worst_ratio=(watch.get("worst") or {}).get("ratio"),
                   loss_trace=m.get("loss_trace"), exit_code=r.returncode)
        print(f"{kind:5s} {name:55s} {out['status']:10s} wall {wall:6.1f}s val_bpb {out['val_bpb']} "
              f"worst gap/margin {out['worst_ratio']}", flush=True)
        runs.append(out)
        return out

    mode = ["--no-abandon"] if args.no_abandon else []
    for name, edit in GOOD.items():
        run(name, "good", edit, mode)
    for name, edit in BAD.items():
        run(name, "bad", edit, mode)
    if args.full_bad and not args.no_abandon:
        for name, edit in BAD.items():
            run(name, "bad-full", edit, ("--no-abandon", "--again"))
    full = [r["wall_seconds"] for r in runs if r["status"] != "abandoned" and r["kind"] in ("good", "bad", "bad-full")]
    ref = statistics.median(full) if full else None
    bad = [r for r in runs if r["kind"] == "bad"]
    good = [r for r in runs if r["kind"] == "good"]
    summary = dict(
        budget_seconds=args.budget, calibrate_seconds=round(calibrate_seconds, 1), total_seconds=round(time.time() - t_all, 1),
        full_run_wall_seconds=ref, baseline_bpb_mean=profile["baseline_bpb_mean"], sigma=profile["sigma"],
        bad_abandoned=sum(r["status"] == "abandoned" for r in bad), good_wrongly_abandoned=sum(r["status"] == "abandoned" for r in good),
        bad_wall_saved_share=(1 - sum(r["wall_seconds"] for r in bad) / (len(bad) * ref)) if ref else None,
        rule=abandon.Rule().__dict__, runs=runs,
    )
    if args.no_abandon:  # replay the rule on the recorded traces: what it would have decided
        baseline = abandon.make_baseline(profile["loss_trace"]["runs"])
        for r in runs:
            d = next((d for n in range(1, abandon.BINS + 1)
                      if (d := abandon.decide(r["loss_trace"], n, baseline)) is not None and d.abandon), None)
            r["replay"] = d.to_dict() if d else None
        summary["replay_bad_abandoned"] = sum(r["replay"] is not None for r in bad)
        summary["replay_good_abandoned"] = sum(r["replay"] is not None for r in good)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
