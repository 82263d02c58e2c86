"""Does the loop make progress on real runs? (issue 33) Two phases:

1. Establish (real trainings on this CPU). Per budget: a workspace as `arp init DIR --budget B`
   makes it (in --workdir; a later session rebuilds it with the recorded sizes), then the
   unmodified baseline and every edit (loop_edits.EDITS: text substitutions of the baseline `arp init`
   wrote) are trained until each has --runs ok runs (the baseline --baseline-runs), round-robin, on
   data seeds 0, 1, 2, ... exactly as `arp train` runs them (experiment.plan + experiment.execute:
   the workspace's scored rows and phase limits, the separate evaluator), with early abandonment
   off so every run has a val_bpb. Every run (val_bpb, status, the evaluator's stderr, steps,
   seconds) is written to --out as soon as it ends: a stopped measurement resumes where it was,
   and a larger --runs extends it. Each edit is classified against the baseline by a Welch t-test
   (two-sided 5 %): better, worse, or neutral (no significant difference). Noise per budget: σ of
   val_bpb across seeds (pooled over all codes) holds training noise (the data order) and
   evaluation noise (every run scores freshly generated text; its size is the evaluator's stderr)
   together; the training noise alone is √(σ² − stderr²).
2. Replay (no training). --loops times, the loop program.md describes (verdict_sim.run_loop, the
   same code as the simulation): the baseline's first --loop-baseline-runs runs, then every edit
   in a random order, each run once and then kept, discarded or repeated as verdict.decide says.
   A run of code X draws one of X's recorded ok runs, without replacement within a loop (with
   replacement once X's runs are used up). Seeds are paired as in the real loop: `arp train` runs
   every new code on seeds 0, 1, 2, ..., so the k-th run of every code in a loop uses the same
   data seed (the loop's own random order of the recorded seeds; --unpaired: each code its own).
   Approximation: an edit's runs were measured on the baseline, but in the loop it starts from the
   last kept edit. Edits are taken as independent and additive: a run of X committed on top of the
   kept edits K is recorded_run(X) + Σ_{k in K} (mean(k) − mean(baseline)), i.e. X's measured
   runs shifted by the measured gains of what was kept before it. Hence a replayed set must not
   hold two edits that change the same thing (checked; mlp2_full overlaps mlp2 and full_attn).
   Edits that buy steps the same way (mlp2, half_width: less compute per token) may gain less
   together than the sum; an edit is judged against the bar by its own measured gain either way.
   Reports per edit how often it was kept and the runs spent on it; the target for neutral edits
   is 0 kept.

The real measurement (on a quiet machine; nothing else running):

    flock /work/cpu.lock python benchmarks/loop_replay.py --budgets 30,120 \\
        --out benchmarks/measured/loop-replay.json
    python benchmarks/loop_replay.py --replay-only --out benchmarks/measured/loop-replay.json

A screen for candidate edits (a few runs each, kept apart from the established runs: --out a file
of its own; --loops 0 analyses the runs without replaying them):

    flock /work/cpu.lock python benchmarks/loop_replay.py --budgets 120 --runs 2 --edits dim96,no_wd \
        --out benchmarks/measured/loop-replay-screen-120s.json
    python benchmarks/loop_replay.py --replay-only --loops 0 --out benchmarks/measured/loop-replay-screen-120s.json

--budget-mode work trains every run for a FLOP budget (the device's calibrated baseline FLOP/s x B;
run `arp calibrate` in the workspace first) instead of B wall seconds: a run's length then does not
depend on the machine's speed, which drifts on a shared VM. Its runs are kept apart, under "B-work".
The edits themselves are in loop_edits.py.

Time: runs x (budget + overhead per run). The smoke test at 5 s took 20 s per run (about 15 s of
start-up, hand-over and scoring; scoring grows with the budget, ~10 % of it). With the defaults
(baseline 12 runs, 6 edits x 10 runs = 72 runs per budget): 30 s: 72 x ~50 s ~ 1 h; 120 s:
72 x ~150 s ~ 3 h; plus `arp init`'s sizing (a few minutes per budget). Before training it prints
the runs left and its estimate. An edit chosen as better but not significant: a larger --runs
trains only the missing runs. A run the machine spoiled (noisy: others used the CPU) is run again
on its seed; three in a row stop the phase (rerun when the machine is quiet).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import verdict_sim  # noqa: E402  (the loop itself, shared with the simulation)
from loop_edits import DEFAULT_EDITS, EDITS, check_independent  # noqa: E402  (what is trained)
from transfer import ok_bpb  # noqa: E402

BASELINE = "baseline"
RUN_KEYS = ("status", "reason", "val_bpb", "val_bpb_stderr", "floor_bpb", "num_steps", "train_flops",
            "training_seconds", "total_seconds", "eval_rows", "load_summary")
MACHINE = ("noisy", "over_budget", "timeout", "interrupted")  # statuses a busy or disturbed machine causes
MAX_FAILED = 3  # failed runs of one code after which it is not tried again at that budget
MAX_BUSY = 3    # runs in a row the machine spoiled that stop the phase


# --- statistics (pure) -------------------------------------------------------------------------

def welch(edit: list[float], base: list[float]) -> dict:
    """The edit against the baseline: gain (baseline mean - edit mean: positive is better), its
    standard error, Welch's degrees of freedom and t, and the class at two-sided 5 %."""
    from autoresearch_portable.harness.baseline.normalize import t975

    if len(edit) < 2 or len(base) < 2:
        return dict(gain=None, se=None, dof=None, t=None, cls="n/a")
    va, vb = statistics.variance(edit) / len(edit), statistics.variance(base) / len(base)
    gain, se = statistics.fmean(base) - statistics.fmean(edit), math.sqrt(va + vb)
    if se == 0:  # identical runs: any difference is significant
        cls = "better" if gain > 0 else "worse" if gain < 0 else "neutral"
        return dict(gain=gain, se=0.0, dof=None, t=None, cls=cls)
    dof = (va + vb) ** 2 / (va ** 2 / (len(edit) - 1) + vb ** 2 / (len(base) - 1))
    t = gain / se
    cls = "neutral" if abs(t) <= t975(dof) else "better" if t > 0 else "worse"
    return dict(gain=gain, se=se, dof=dof, t=t, cls=cls)


def pooled(groups: list[list[float]]) -> tuple[float | None, int]:
    """σ of one value pooled within groups (each about its own mean), and its degrees of freedom."""
    ss, dof = 0.0, 0
    for v in groups:
        if len(v) >= 2:
            m = statistics.fmean(v)
            ss, dof = ss + sum((x - m) ** 2 for x in v), dof + len(v) - 1
    return (math.sqrt(ss / dof) if dof else None), dof


def noise(runs: dict[str, list[dict]]) -> dict:
    """σ of one run (seeds of the same code, pooled over all codes), the evaluation noise (the
    evaluator's stderr, root mean square) and the training noise they imply."""
    sigma, dof = pooled([ok_bpb(rs) for rs in runs.values()])
    base = ok_bpb(runs.get(BASELINE, []))
    errs = [r["val_bpb_stderr"] for rs in runs.values() for r in rs
            if r.get("status") == "ok" and isinstance(r.get("val_bpb_stderr"), (int, float))]
    ev = math.sqrt(statistics.fmean(e * e for e in errs)) if errs else None
    train = math.sqrt(max(0.0, sigma ** 2 - ev ** 2)) if sigma is not None and ev is not None else None
    return dict(sigma=sigma, sigma_dof=dof, baseline_sigma=statistics.stdev(base) if len(base) >= 2 else None,
                baseline_n=len(base), eval_stderr=ev, train_sigma=train)


def floor_noise(runs: dict[str, list[dict]]) -> dict:
    """How much of a run's noise is the difficulty of the text it was scored on. Over the ok runs
    that recorded their scored text's entropy floor (floor_bpb; runs before it was recorded did
    not): σ of one run pooled within codes on val_bpb and on val_bpb − floor_bpb (the same runs,
    the same degrees of freedom), and the σ of the floor itself across those runs. Pure."""
    have = {c: [r for r in rs if r.get("status") == "ok" and isinstance(r.get("val_bpb"), (int, float))
                and isinstance(r.get("floor_bpb"), (int, float))] for c, rs in runs.items()}
    sigma_val, dof = pooled([[r["val_bpb"] for r in rs] for rs in have.values()])
    sigma_excess, _ = pooled([[r["val_bpb"] - r["floor_bpb"] for r in rs] for rs in have.values()])
    floors = [r["floor_bpb"] for rs in have.values() for r in rs]
    return dict(runs=len(floors), dof=dof, sigma_val=sigma_val, sigma_excess=sigma_excess,
                floor_sigma=statistics.stdev(floors) if len(floors) >= 2 else None)


def analyse(b: dict) -> dict:
    """Per budget: the noise, each edit's Welch class, and the seconds a run took."""
    runs = b.get("runs", {})
    base = ok_bpb(runs.get(BASELINE, []))
    rows = {}
    for name, rs in runs.items():
        if name != BASELINE:
            v = ok_bpb(rs)
            rows[name] = dict(n=len(v), mean=statistics.fmean(v) if v else None, **welch(v, base))
    secs = [r["seconds"] for rs in runs.values() for r in rs if r.get("seconds")]
    per_run = statistics.fmean(secs) if secs else None
    return dict(baseline_mean=statistics.fmean(base) if base else None, noise=noise(runs),
                floor_noise=floor_noise(runs), edits=rows, seconds_per_run=per_run,
                overhead_per_run=per_run - b["budget_seconds"] if per_run else None)


# --- replay (pure) -----------------------------------------------------------------------------

def recorded(runs: dict[str, list[dict]]) -> dict[str, dict[int, float]]:
    """code -> {seed: val_bpb} of its ok runs."""
    return {code: {r["seed"]: r["val_bpb"] for r in rs if r.get("status") == "ok"
                   and isinstance(r.get("val_bpb"), (int, float))} for code, rs in runs.items()}


def loop_draws(rec: dict[str, dict[int, float]], rng, paired: bool = True) -> Callable[[str, list[str]], float]:
    """draw(code, kept) for one loop (module doc): the k-th run of a code takes the k-th seed of
    the loop's seed order if the code has it and has not used it, else its next unused one, else
    any of its runs; shifted by the measured gains of the kept edits."""
    base = statistics.fmean(rec[BASELINE].values())
    shift = {c: statistics.fmean(v.values()) - base for c, v in rec.items() if v}
    seeds = sorted({s for v in rec.values() for s in v})
    shared = [int(s) for s in rng.permutation(seeds)]
    orders: dict[str, list[int]] = {}
    used: dict[str, list[int]] = defaultdict(list)

    def draw(code: str, kept: list[str]) -> float:
        have, done = rec[code], used[code]
        order = shared if paired else orders.setdefault(code, [int(s) for s in rng.permutation(sorted(have))])
        k = len(done) % len(order)
        free = [s for s in order[k:] + order[:k] if s in have and s not in done]
        s = free[0] if free else int(rng.choice(sorted(have)))
        done.append(s)
        return have[s] + sum(shift[c] for c in kept)

    return draw


def replay(rec: dict[str, dict[int, float]], edits: list[str], loops: int, seed: int = 0, rounds: int = 10,
           baseline_runs: int = 3, paired: bool = True) -> list[list[dict]]:
    """`loops` loops over `edits` in random orders: per loop, verdict_sim.run_loop's rows."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(loops):
        order = [edits[i] for i in rng.permutation(len(edits))]
        out.append(verdict_sim.run_loop(order, loop_draws(rec, rng, paired), rounds, baseline_runs, None, BASELINE))
    return out


def summarize(loops: list[list[dict]], classes: dict[str, str], expect: dict[str, str]) -> dict:
    """Per edit: how often it was kept or repeated and the runs spent on it; per class (as
    chosen and as the Welch test found): how often kept. `classes`/`expect`: edit -> class."""
    by = defaultdict(list)
    for loop in loops:
        for e in loop:
            by[e["code"]].append(e)

    def mean(xs: list) -> float | None:
        return round(float(np.mean(xs)), 4) if xs else None

    edits = {c: dict(expect=expect.get(c), cls=classes.get(c), kept=mean([e["kept"] for e in es]),
                     repeated=mean([e["repeated"] for e in es]), runs=mean([e["runs"] for e in es]))
             for c, es in sorted(by.items())}

    def group(label: str, key: dict) -> float | None:
        return mean([e["kept"] for c, es in by.items() if key.get(c) == label for e in es])

    flat = [e for loop in loops for e in loop]
    return dict(loops=len(loops), edits=edits, runs_per_decision=mean([e["runs"] for e in flat]),
                kept_neutral_chosen=group("neutral", expect), kept_neutral_tested=group("neutral", classes),
                kept_better_chosen=group("better", expect), kept_better_tested=group("better", classes),
                kept_worse_tested=group("worse", classes))


# --- establish (real trainings) ----------------------------------------------------------------

def git_text(folder: Path, rev_path: str) -> str:
    return subprocess.run(["git", "show", rev_path], cwd=folder, capture_output=True, text=True, check=True).stdout


def workspace(folder: Path, b: dict, dataset: str, log) -> str:
    """The `arp init` workspace for this budget (made now if missing: with the sizes already
    measured if the JSON has them, so every session runs the same baseline); its baseline text."""
    from autoresearch_portable.detect import make_plan, probe
    from autoresearch_portable.harness.baseline.datasize import ensure_prepared
    from autoresearch_portable.harness.baseline.template import SIZE_KEYS
    from autoresearch_portable.harness.run.settings import Workspace
    from autoresearch_portable.harness.workspace import init_workspace

    if not (folder / ".arp.json").exists():
        found = probe()
        pr, plan = found.to_dict(), make_plan(found, "cpu").to_dict()
        ensure_prepared(dataset, pr, plan, b["budget_seconds"], log=log)
        log(f"arp init {folder} --budget {b['budget_seconds']:g}" + (" (the recorded sizes)" if b.get("sizes") else ""))
        init_workspace(folder, pr, plan, dataset, b["budget_seconds"], force=True, log=log, sizes=b.get("sizes"))
        b.setdefault("cpu", pr.get("cpu_model"))
    text = git_text(folder, "HEAD:train.py")
    sha = hashlib.sha256(text.encode()).hexdigest()
    if b.get("baseline_sha256") not in (None, sha):
        raise SystemExit(f"error: the baseline in {folder} is not the one measured before (remove the folder: it is "
                         f"made again with the recorded sizes)")
    ws = Workspace.load(folder)
    if b.get("eval_rows") and ws.eval_rows != b["eval_rows"]:  # made again on a machine of another speed
        log(f"scored rows: {b['eval_rows']} as measured before (this machine's sizing said {ws.eval_rows})")
        ws.eval_rows = b["eval_rows"]
        ws.save()
    b.update(baseline_sha256=sha, sizes={k: ws.sizing[k] for k in SIZE_KEYS if k in (ws.sizing or {})},
             eval_rows=ws.eval_rows)
    return text


def run_one(folder: Path, text: str, seed: int, mode: str = "wall") -> dict:
    """One run of `text` as the workspace's train.py, the way `arp train --seed S --no-abandon
    --budget-mode MODE` runs it (nothing is written to the workspace's ledger)."""
    from autoresearch_portable.harness import experiment

    (folder / "train.py").write_text(text)
    t0 = time.time()
    options = experiment.Options(seed=seed, abandon=False, budget_mode=mode)
    spec = experiment.plan(folder / "train.py", options, log=lambda m: None)
    r = experiment.execute(spec, quiet=True)
    return dict({k: r.get(k) for k in RUN_KEYS}, seed=seed, seconds=round(time.time() - t0, 1))


def code_failed(r: dict) -> bool:
    """A run that failed by the code's fault (its seed is not run again), not one the machine
    spoiled (MACHINE, or the harness's files or the Python environment changed during it). Pure."""
    return r.get("status") not in ("ok", *MACHINE) and "changed during the run" not in (r.get("reason") or "")


def todo(runs: dict[str, list[dict]], targets: dict[str, int]) -> list[str]:
    """The codes still short of their ok runs, in order (round-robin: one run each per pass). Pure."""
    return [code for code, n in targets.items() if len(ok_bpb(runs.get(code, []))) < n
            and sum(map(code_failed, runs.get(code, []))) < MAX_FAILED]


def next_seed(runs: list[dict]) -> int:
    """The first seed without a result: ok or failed by the code's fault (a run the machine spoiled,
    e.g. noisy, is run again on its seed, so that every code has the same seeds). Pure."""
    done = {r["seed"] for r in runs if r.get("status") == "ok" or code_failed(r)}
    return next(s for s in range(len(done) + 1) if s not in done)


def establish(args, out: dict, save) -> None:
    for budget in args.budgets:
        key = f"{budget:g}" + ("" if args.budget_mode == "wall" else f"-{args.budget_mode}")
        b = out["budgets"].setdefault(key, dict(budget_seconds=budget, budget_mode=args.budget_mode, runs={}))
        folder = Path(args.workdir) / f"ws-{budget:g}s"
        base = workspace(folder, b, args.dataset, lambda m: print("   ", m, flush=True))
        save()
        texts = {BASELINE: base, **{e: EDITS[e].apply(base) for e in args.edits}}
        targets = {BASELINE: args.baseline_runs, **{e: args.runs for e in args.edits}}
        left = sum(max(0, n - len(ok_bpb(b["runs"].get(c, [])))) for c, n in targets.items())
        per = analyse(b)["seconds_per_run"] or 1.25 * budget + 15
        print(f"== {key} s: sizes {b['sizes']}, {b['eval_rows']} scored rows; {left} runs to do, "
              f"about {left * per / 60:.0f} min ({per:.0f} s per run)", flush=True)
        busy = 0
        while pending := todo(b["runs"], targets):
            for code in pending:
                rs = b["runs"].setdefault(code, [])
                seed = next_seed(rs)
                r = run_one(folder, texts[code], seed, args.budget_mode)
                rs.append(r)
                save()
                busy = 0 if r["status"] == "ok" or code_failed(r) else busy + 1
                if busy >= MAX_BUSY:
                    (folder / "train.py").write_text(base)
                    raise SystemExit(f"error: {busy} runs in a row spoiled by the machine ({r['status']}: "
                                     f"{r['reason']}); run again when it is quiet (it resumes)")
                err = r["val_bpb_stderr"]
                print(f"   {code:11} seed {seed}: {r['status']} val_bpb {r['val_bpb']} ± "
                      f"{err if err is None else round(err, 4)}, {r['num_steps']} steps, {r['seconds']} s", flush=True)
        (folder / "train.py").write_text(base)


# --- output ------------------------------------------------------------------------------------

def fmt(x, spec=".4f") -> str:
    return "n/a" if x is None else format(x, spec)


def floor_line(f: dict | None) -> list[str]:
    if not f or not f["dof"]:
        return []
    return [f"the scored text's difficulty, over the {f['runs']} runs that recorded its floor: σ per run "
            f"{fmt(f['sigma_val'])} on val_bpb, {fmt(f['sigma_excess'])} on val_bpb − floor ({f['dof']} dof); "
            f"the floor itself varies by σ {fmt(f['floor_sigma'])}"]


def report(out: dict) -> str:
    lines = []
    for key, b in out["budgets"].items():
        a, rp = b.get("analysis") or analyse(b), b.get("replay") or {}
        n = a["noise"]
        lines += [f"\n== {key} s budget: baseline {fmt(a['baseline_mean'])} ({n['baseline_n']} runs, σ "
                  f"{fmt(n['baseline_sigma'])}); σ per run {fmt(n['sigma'])} ({n['sigma_dof']} dof, pooled) = "
                  f"training {fmt(n['train_sigma'])} + evaluation {fmt(n['eval_stderr'])} (evaluator's stderr); "
                  f"{fmt(a['seconds_per_run'], '.0f')} s per run",
                  *floor_line(a.get("floor_noise")),
                  f"{'edit':11} {'chosen':8} {'n':>3} {'mean':>7} {'gain':>8} {'± se':>7} {'t':>6} {'test':8} "
                  f"{'kept':>6} {'repeated':>8} {'runs':>5}"]
        for name, row in a["edits"].items():
            r = rp.get("edits", {}).get(name, {})
            lines.append(f"{name:11} {EDITS[name].expect if name in EDITS else '?':8} {row['n']:>3} "
                         f"{fmt(row['mean']):>7} {fmt(row['gain'], '+.4f'):>8} {fmt(row['se']):>7} "
                         f"{fmt(row['t'], '.2f'):>6} {row['cls']:8} {fmt(r.get('kept'), '.3f'):>6} "
                         f"{fmt(r.get('repeated'), '.3f'):>8} {fmt(r.get('runs'), '.2f'):>5}")
        if rp:
            lines.append(f"replay: {rp['loops']} loops; kept: neutral as chosen {fmt(rp['kept_neutral_chosen'], '.3f')}"
                         f" (target 0), neutral by the test {fmt(rp['kept_neutral_tested'], '.3f')}, better by the "
                         f"test {fmt(rp['kept_better_tested'], '.3f')} (as chosen {fmt(rp['kept_better_chosen'], '.3f')}), "
                         f"worse {fmt(rp['kept_worse_tested'], '.3f')}; "
                         f"{fmt(rp['runs_per_decision'], '.2f')} runs per decision")
    return "\n".join(lines)


def replay_all(args, out: dict) -> None:
    for b in out["budgets"].values():
        a = b["analysis"] = analyse(b)
        if not args.loops:  # a screen: the analysis only (its edits may overlap; few runs replay nothing useful)
            continue
        rec = {c: v for c, v in recorded(b["runs"]).items() if v}
        edits = [e for e in rec if e in EDITS and (not args.edits_given or e in args.edits)]
        if BASELINE not in rec or not edits:
            continue
        check_independent(edits)
        loops = replay(rec, edits, args.loops, args.seed, args.rounds, args.loop_baseline_runs, not args.unpaired)
        b["replay"] = dict(summarize(loops, {e: a["edits"][e]["cls"] for e in edits},
                                     {e: EDITS[e].expect for e in edits if e in EDITS}),
                           seed=args.seed, rounds=args.rounds, baseline_runs=args.loop_baseline_runs,
                           paired=not args.unpaired)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", default="30,120", help="seconds, comma-separated")
    ap.add_argument("--edits", default=None, help=f"comma-separated, of {', '.join(EDITS)}: the ones trained and "
                    f"replayed (default: train {', '.join(DEFAULT_EDITS)}; replay every edit recorded)")
    ap.add_argument("--runs", type=int, default=10, help="ok runs of every edit")
    ap.add_argument("--baseline-runs", type=int, default=12, help="ok runs of the baseline")
    ap.add_argument("--dataset", default="bundled-v2")
    ap.add_argument("--budget-mode", default="wall", choices=("wall", "work"),
                    help="work: a FLOP budget (needs `arp calibrate` in the workspace), results kept apart as B-work")
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "arp-loop-replay"),
                    help="where the workspaces are made (one per budget)")
    ap.add_argument("--out", default=str(HERE / "measured" / "loop-replay.json"))
    ap.add_argument("--replay-only", action="store_true", help="train nothing: replay the runs in --out")
    ap.add_argument("--loops", type=int, default=200, help="0: no replay, the analysis of the runs only")
    ap.add_argument("--rounds", type=int, default=10, help="repeat rounds before a verdict is final")
    ap.add_argument("--loop-baseline-runs", type=int, default=3, help="program.md's step 0: arp train --repeat 3")
    ap.add_argument("--unpaired", action="store_true", help="each code its own seed order in a loop")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.edits_given = args.edits is not None
    args.edits = [e for e in (args.edits or ",".join(DEFAULT_EDITS)).split(",") if e]
    unknown = [e for e in args.edits if e not in EDITS]
    if unknown:
        raise SystemExit(f"error: unknown edit(s) {unknown}; known: {', '.join(EDITS)}")
    path = Path(args.out)
    from autoresearch_portable.fsutil import atomic_write_json

    def save() -> None:
        out["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        atomic_write_json(path, out)

    if args.replay_only:
        if not path.exists():
            raise SystemExit(f"error: {path} not found (run the establish phase first)")
        out = json.loads(path.read_text())
    else:
        check_independent(args.edits)
        args.budgets = [float(x) for x in args.budgets.split(",") if x]
        out = json.loads(path.read_text()) if path.exists() else dict(
            dataset=args.dataset, budgets={}, started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        chosen = {e: dict(expect=EDITS[e].expect, why=EDITS[e].why) for e in args.edits}
        out["edits"] = {**out.get("edits", {}), **chosen}
        establish(args, out, save)
    replay_all(args, out)
    save()
    print(report(out))


if __name__ == "__main__":
    main()
