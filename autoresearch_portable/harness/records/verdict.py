"""After every ok run, one decision: `keep`, `discard` or `repeat N`. program.md's rule is "do what
the verdict says". Pure functions: records in, a Decision out.

* Groups. Runs of the same code (the same train.py hash) are one group; its value is the mean of
  all its runs (the one number per commit the verdict, `arp results` and results.tsv show).
* Noise. σ of one run is pooled from the calibration's repeats at this budget (if the device has
  one) and from every group in the ledger that ran more than once at this budget on this device:
  their degrees of freedom add up, so the band narrows as the night goes on.
* The bar. Only commits still on the branch count (a discarded commit that was reset away is not
  the bar). Walking them in ledger order, the first group is the bar; a later group replaces it
  only when it beats it significantly (the keep test below). The bar moves only on a real win.
* The decision, for this run's group against the bar, with gain = bar mean - group mean and
  se = σ √(1/n + 1/n_bar): keep when gain > t·se (t: Student's t, one-sided 2.5 %, for σ's degrees
  of freedom); repeat N when gain > REPEAT_SE·se but not yet that (N: the fewest further runs of
  this code after which a gain this size would pass, at most MAX_REPEAT; the code runs at most
  MAX_RUNS times in all); discard otherwise.
  With σ unknown (no calibration, nothing repeated), `repeat 2`: the runs measure it.

benchmarks/verdict_sim.py replays this rule on simulated ledgers: how often a neutral edit is kept
(the false-keep rate) and how often a real gain of 1 σ or 2 σ is, and the runs spent per decision."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from autoresearch_portable.harness.records import ledger
from autoresearch_portable.harness.baseline.normalize import t975

REPEAT_SE = 1.0    # a gain above one standard error of the difference is worth more runs
MAX_REPEAT = 4     # runs asked for at once
MAX_RUNS = 9       # runs of one code after which a gain still inside the band is too small to resolve
UNKNOWN_NOISE_RUNS = 2


@dataclass
class Group:
    code: str                     # train.py sha256 (or the commit when no hash was recorded)
    commit: str | None
    values: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / self.n

    @property
    def spread(self) -> float | None:
        if self.n < 2:
            return None
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (self.n - 1))


def _key(result: dict) -> tuple:
    # runs of another harness version are not comparable: its trainer or evaluator differed
    return (result.get("harness_version"), result.get("dataset"), result.get("budget_seconds"),
            result.get("budget_mode"), result.get("backend"), result.get("device"))


def code_of(rec: dict) -> str:
    m = rec.get("metrics") or rec
    return str(rec.get("train_py_sha256") or m.get("train_py_sha256") or rec.get("git_commit") or "?")


def groups(records: list[dict], result: dict) -> list[Group]:
    """Trusted ok runs comparable with `result` (harness version, dataset, budget, mode, device),
    grouped by code, in order of first appearance."""
    found: dict[str, Group] = {}
    for rec in records:
        m = rec.get("metrics") or {}
        if rec.get("status") != "ok" or rec.get(ledger.UNTRUSTED) or not isinstance(m.get("val_bpb"), (int, float)):
            continue
        if _key(dict(m, harness_version=rec.get("harness_version", m.get("harness_version")))) != _key(result):
            continue
        g = found.setdefault(code_of(rec), Group(code_of(rec), rec.get("git_commit")))
        g.values.append(float(m["val_bpb"]))
    return list(found.values())


@dataclass(frozen=True)
class Noise:
    """σ of one run and the degrees of freedom it was measured with."""
    sigma: float
    dof: int

    @property
    def t(self) -> float:
        return t975(self.dof)


def calibrated_noise(result: dict) -> Noise | None:
    """The calibration's σ as `results.annotate` recorded it on the run, if the device has one."""
    sigma, dof = result.get("calibrated_sigma"), result.get("calibrated_sigma_dof")
    if isinstance(sigma, (int, float)) and isinstance(dof, int) and dof >= 1:
        return Noise(float(sigma), dof)
    return None


def pooled_noise(gs: list[Group], calibrated: Noise | None = None) -> Noise | None:
    """σ pooled over the calibration and every repeated group: sums of squares and degrees of
    freedom add up."""
    ss, dof = (calibrated.sigma**2 * calibrated.dof, calibrated.dof) if calibrated else (0.0, 0)
    for g in gs:
        if g.n >= 2:
            m = g.mean
            ss += sum((v - m) ** 2 for v in g.values)
            dof += g.n - 1
    return Noise(math.sqrt(ss / dof), dof) if dof else None


def se(n: int, n_bar: int, noise: Noise) -> float:
    return noise.sigma * math.sqrt(1 / n + 1 / n_bar)


def beats(g: Group, bar: Group, noise: Noise | None) -> bool:
    """The keep test: g's mean is below the bar's by more than t standard errors."""
    return noise is not None and bar.mean - g.mean > noise.t * se(g.n, bar.n, noise)


def on(commit: str | None, branch: set[str] | None) -> bool:
    """Is the commit (a prefix, as the ledger keeps it) on the branch? No branch known: yes."""
    if branch is None:
        return True
    return bool(commit) and any(full.startswith(commit) for full in branch)


def find_bar(gs: list[Group], noise: Noise | None, branch: set[str] | None, exclude: str | None = None) -> Group | None:
    """The best significantly better group among commits on the branch (module doc)."""
    bar = None
    for g in gs:
        if g.code == exclude or not on(g.commit, branch):
            continue
        if bar is None or beats(g, bar, noise):
            bar = g
    return bar


@dataclass
class Decision:
    action: str                 # keep | discard | repeat
    runs: int                   # repeat: how many more runs of this code
    why: str
    mean: float                 # this code's value: the mean of all its runs
    n: int
    bar_mean: float | None = None
    bar_commit: str | None = None
    bar_n: int | None = None
    gain: float | None = None   # bar mean - mean: positive is better
    band: float | None = None   # the gain the keep test needs
    sigma: float | None = None
    dof: int | None = None

    @property
    def word(self) -> str:
        return f"repeat {self.runs}" if self.action == "repeat" else self.action

    def to_dict(self) -> dict:
        return dict(asdict(self), word=self.word)


def runs_to_decide(gain: float, n: int, n_bar: int, noise: Noise) -> int | None:
    """The fewest further runs of this code after which `gain` would pass the keep test (σ and
    its degrees of freedom as now, the bar as it is); None if more than MAX_REPEAT would not."""
    for extra in range(1, MAX_REPEAT + 1):
        if gain > noise.t * se(n + extra, n_bar, noise):
            return extra
    return None


def decide(records: list[dict], result: dict, calibrated: Noise | None = None, branch: set[str] | None = None
           ) -> Decision | None:
    """The decision for `result` (just run, not yet in `records`) against the bar. `branch`: the
    commits on the workspace's branch (None outside git: every commit counts)."""
    if result.get("status") != "ok" or result.get("val_bpb") is None:
        return None
    before = groups(records, result)
    code = code_of(result)
    same = next((g for g in before if g.code == code), None)
    this = Group(code, result.get("git_commit"), (same.values if same else []) + [float(result["val_bpb"])])
    noise = pooled_noise([g for g in before if g.code != code] + [this], calibrated)
    bar = find_bar(before, noise, branch, exclude=code)
    out = dict(mean=this.mean, n=this.n, sigma=noise.sigma if noise else None, dof=noise.dof if noise else None)
    if bar is None:
        why = ("no other code on this branch to beat at this budget on this device: this code is the bar" if same else
               "the first result at this budget on this device: the bar the next edits must beat")
        return Decision("keep", 0, why, **out)
    gain = bar.mean - this.mean
    out.update(bar_mean=bar.mean, bar_commit=bar.commit, bar_n=bar.n, gain=gain)
    if noise is None:
        return Decision("repeat", UNKNOWN_NOISE_RUNS, "run-to-run noise unknown (no calibration, nothing repeated): "
                        f"{UNKNOWN_NOISE_RUNS} more runs of this code measure it", **out)
    s = se(this.n, bar.n, noise)
    out.update(band=noise.t * s)
    if gain > noise.t * s:
        return Decision("keep", 0, "better than the bar by more than the band", **out)
    if gain > REPEAT_SE * s and this.n < MAX_RUNS:
        extra = runs_to_decide(gain, this.n, bar.n, noise)
        if extra is not None:
            return Decision("repeat", extra, f"better than the bar, inside the band: {extra} more run(s) of this code "
                            f"decide a gain this size", **out)
        extra = min(MAX_REPEAT, MAX_RUNS - this.n)
        return Decision("repeat", extra, f"better than the bar by more than its noise, inside the band: {extra} more "
                        f"run(s) of this code narrow it", **out)
    if gain > REPEAT_SE * s:
        return Decision("discard", 0, f"still inside the band after {this.n} runs: too small to resolve at this budget",
                        **out)
    if gain > 0:
        return Decision("discard", 0, "better than the bar by less than its noise", **out)
    return Decision("discard", 0, "not better than the bar", **out)


def describe(d: Decision) -> str:
    """The lines printed after a run (and kept in the ledger)."""
    runs = f"{d.n} run{'s' if d.n != 1 else ''}"
    noise = (f"σ {d.sigma:.4f} per run ({d.dof} degrees of freedom)" if d.sigma is not None else
             "σ unknown")
    if d.bar_mean is None:
        what = f"this code: val_bpb {d.mean:.6f} ({runs})"
    else:
        what = (f"this code: val_bpb {d.mean:.6f} ({runs}); the bar: {d.bar_mean:.6f} "
                f"(commit {d.bar_commit or '-'}, {d.bar_n} run{'s' if d.bar_n != 1 else ''}); gain {d.gain:+.6f}"
                + (f", band {d.band:.6f}" if d.band is not None else ""))
    how = {"keep": "keep the commit", "discard": "git reset --hard HEAD~1",
           "repeat": f"arp train --repeat {d.runs}" if d.runs > 1 else "arp train --again"}[d.action]
    return f"{what}; {noise}\nverdict: {d.word} ({d.why}): {how}"
