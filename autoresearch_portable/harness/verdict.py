"""Is this run better than the best so far? Answered above the noise, from the ledger.

Runs of the same code (the same train.py hash) form a group: their mean is the group's value and
their spread measures run-to-run noise. The noise of one run, σ, comes from calibration (the
baseline repeated at T) where there is one, else from the spread within groups that ran more
than once; without either, only the run's evaluation error is known and the verdict says so.
The band is Student's t (95%, two-sided) for σ's degrees of freedom times the standard error of
the difference: σ from 3 runs is itself uncertain, and ±2σ of it would call noise a win.

The best is the best *confirmed* group, walking the ledger in order: the first group is the
starting point; a later group with a lower mean replaces it only if it ran at least twice, or if
its lead exceeds twice the band on its own. A single lucky run therefore never becomes the bar
every later run is judged against. Pure functions: records in, text out."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from autoresearch_portable.harness import ledger
from autoresearch_portable.harness.normalize import BAND_SIGMAS, t975


@dataclass
class Group:
    code: str                     # train.py sha256 (or the commit when no hash was recorded)
    commit: str | None
    values: list[float] = field(default_factory=list)
    stderrs: list[float] = field(default_factory=list)

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

    @property
    def stderr(self) -> float:
        """The mean's evaluation error alone."""
        ses = [s for s in self.stderrs if s is not None and math.isfinite(s)]
        return math.sqrt(sum(s * s for s in ses)) / self.n if ses else 0.0


def _key(result: dict) -> tuple:
    # runs of another harness version are not comparable: its trainer or evaluator differed
    return (result.get("harness_version"), result.get("dataset"), result.get("budget_seconds"),
            result.get("budget_mode"), result.get("backend"), result.get("device"))


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
        code = str(rec.get("train_py_sha256") or m.get("train_py_sha256") or rec.get("git_commit") or "?")
        g = found.setdefault(code, Group(code, rec.get("git_commit")))
        g.values.append(float(m["val_bpb"]))
        g.stderrs.append(m.get("val_bpb_stderr"))
    return list(found.values())


@dataclass(frozen=True)
class Noise:
    """σ of one run and the degrees of freedom it was measured with."""
    sigma: float
    dof: int

    @property
    def t(self) -> float:
        return t975(self.dof)


def pooled_sigma(gs: list[Group]) -> Noise | None:
    """Run-to-run σ from repeated code: pooled variance within groups."""
    ss, dof = 0.0, 0
    for g in gs:
        if g.n >= 2:
            m = g.mean
            ss += sum((v - m) ** 2 for v in g.values)
            dof += g.n - 1
    return Noise(math.sqrt(ss / dof), dof) if dof else None


def band(a: Group, b: Group, noise: Noise | None) -> float:
    """The 95% band of the difference of two group means: t x its standard error with σ known
    from `noise`, else 2 x the evaluation errors alone."""
    if noise is not None:
        return noise.t * noise.sigma * math.sqrt(1 / a.n + 1 / b.n)
    return BAND_SIGMAS * math.sqrt(a.stderr**2 + b.stderr**2)


def confirmed_best(gs: list[Group], noise: Noise | None) -> Group | None:
    best = None
    for g in gs:
        if best is None:
            best = g
        elif g.mean < best.mean and (g.n >= 2 or best.mean - g.mean > 2 * band(g, best, noise)):
            best = g
    return best


def calibrated_noise(result: dict) -> Noise | None:
    """The calibration's σ as `results.annotate` recorded it on the run, if the device has one."""
    sigma, dof = result.get("calibrated_sigma"), result.get("calibrated_sigma_dof")
    if isinstance(sigma, (int, float)) and isinstance(dof, int) and dof >= 1:
        return Noise(float(sigma), dof)
    return None


def verdict(records: list[dict], result: dict, calibrated: Noise | None = None) -> str | None:
    """Lines for the user after a run: this run against the best confirmed result, and what it
    would take to be sure. `calibrated`: σ from this device's calibration (calibrated_noise)."""
    if result.get("status") != "ok" or result.get("val_bpb") is None:
        return None
    before = groups(records, result)
    noise, source = calibrated, "calibration"
    if noise is None:
        noise, source = pooled_sigma(before), "repeated runs in this ledger"
    best = confirmed_best(before, noise)
    code = str(result.get("train_py_sha256") or "?")
    this = Group(code, result.get("git_commit"), [float(result["val_bpb"])], [result.get("val_bpb_stderr")])
    lines = []
    same = next((g for g in before if g.code == code), None)
    if same is not None:
        this = Group(code, this.commit, same.values + this.values, same.stderrs + this.stderrs)
        lines.append(f"same code as {same.n} earlier run(s): now {this.n} runs, mean {this.mean:.6f}"
                     + (f" ± {this.spread:.6f} (spread)" if this.spread is not None else ""))
    said = (f"σ {noise.sigma:.6f} per run from {source} ({noise.dof} degrees of freedom, band t={noise.t:.2f})"
            if noise is not None else
            "run-to-run noise unknown (only the evaluation error is counted): measure it with "
            "`arp train --repeat 3` on the baseline, or `arp calibrate`")
    if best is None:
        return "\n".join(lines + [f"vs ledger: first ok run at this budget on this device (nothing to beat yet); {said}"])
    if best.code == code:
        return "\n".join(lines + [f"vs ledger: this code is the best confirmed result ({this.n} runs); {said}"])
    diff = best.mean - this.mean
    width = band(this, best, noise)
    where = f"best confirmed {best.mean:.6f} ({best.commit or '?'}, {best.n} run{'s' if best.n > 1 else ''})"
    if noise is None and diff > 0:
        lines.append(f"vs ledger: lower than the {where} by {diff:.6f} (evaluation band {width:.6f}); not a "
                     f"confirmed win: {said}")
    elif diff > 2 * width or (diff > width and this.n >= 2):
        lines.append(f"vs ledger: beats the {where} by {diff:.6f} > band {width:.6f}: a confirmed win; {said}")
    elif diff > width:
        lines.append(f"vs ledger: beats the {where} by {diff:.6f} > band {width:.6f}, but by less than twice the band: "
                     f"confirm it with `arp train --repeat 2` before keeping it; {said}")
    elif diff > 0:
        lines.append(f"vs ledger: lower than the {where} by {diff:.6f}, within the band {width:.6f}: not significant "
                     f"(noise, not a win); {said}")
    else:
        lines.append(f"vs ledger: does not beat the {where} ({diff:+.6f}; band {width:.6f}); {said}")
    return "\n".join(lines)
