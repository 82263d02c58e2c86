"""The pure half of benchmarks/scaling.py: the sweep's grid, its pruning rule, the compute
frontier, the power-law fits and their checks, the knowledge-base bound, and the held-out test of
a finished sweep by a doubling measured later. No training, no files: tested in
tests/test_scaling_analysis.py."""

from __future__ import annotations

import math
from typing import Callable

import curvefit  # benchmarks/curvefit.py, beside this file

TARGET_FLOPS = 1e17
MIN_EXCESS_AT_TARGET = 0.05
# The shape of the top of the sweep: the law is fitted over its top TAIL_DOUBLINGS doublings, and the
# last CHECKED_DOUBLINGS of them are checked against the law fitted over the doublings before them.
TAIL_DOUBLINGS = 4
CHECKED_DOUBLINGS = 2


def plan_grid(sizes: list, flops_per_token: dict, max_flops: float, doublings: int, batch_tokens: int,
              min_steps: int, max_tokens: int) -> list[dict]:
    """The points to train, cheapest first: every size at every level C_max/2^k where it makes at
    least min_steps steps and at most max_tokens tokens."""
    points = []
    for k in range(doublings + 1):
        level = max_flops / 2**k
        for size in sizes:
            steps = round(level / flops_per_token[size] / batch_tokens)
            if steps < min_steps or steps * batch_tokens > max_tokens:
                continue
            points.append(dict(level=k, size=f"{size[0]}x{size[1]}", depth=size[0], width=size[1], steps=steps,
                               tokens=steps * batch_tokens, flops=steps * batch_tokens * flops_per_token[size]))
    return sorted(points, key=lambda p: p["flops"])


def dominated(p: dict, scored: list[dict]) -> str | None:
    """Why training p is pointless, or None: at some lower compute level a bigger model already
    beat p's size (the compute-optimal size only grows with compute)."""
    for q in scored:
        if q["level"] <= p["level"] or q["size"] != p["size"] or q.get("val_bpb") is None:
            continue
        for r in scored:
            if (r["level"] == q["level"] and r.get("val_bpb") is not None and r["params"] > q["params"]
                    and r["val_bpb"] < q["val_bpb"]):
                return f"{r['size']} already beat {p['size']} at {q['flops']:.3g} FLOPs"
    return None


def relevel(points: list[dict], top: float) -> list[dict]:
    """The points with `level` counted from the compute `top` (a sweep extended upwards or
    downwards: levels are top/2^k whatever run measured them)."""
    return [dict(p, level=round(math.log2(top / p["flops"]))) for p in points]


def frontier(points: list[dict]) -> list[dict]:
    """The best scored point at each compute level, by compute."""
    best: dict[int, dict] = {}
    for p in points:
        if p.get("val_bpb") is not None and (p["level"] not in best or p["val_bpb"] < best[p["level"]]["val_bpb"]):
            best[p["level"]] = p
    return sorted(best.values(), key=lambda p: p["flops"])


def power_law(points: list[dict], value: Callable[[dict], float], target: float = TARGET_FLOPS) -> dict:
    """value = A*C^-alpha fitted over `points`: the fit (with alpha's standard error), its value at
    `target` and a 2-sigma range for it (none from 2 points)."""
    fit = curvefit.fit_power_law([p["flops"] for p in points], [value(p) for p in points])
    at = curvefit.power_law_excess(fit, target)
    se = curvefit.power_law_log_se(fit, target) if len(points) > 2 else float("nan")
    alpha_se = fit["log_resid_sd"] / math.sqrt(fit["sxx"]) if len(points) > 2 else float("nan")
    return dict(fit=dict(A=fit["A"], alpha=fit["alpha"], alpha_se=alpha_se, log_resid_sd=fit["log_resid_sd"], n=fit["n"],
                         flops_range=[points[0]["flops"], points[-1]["flops"]]),
                at=at, range_2sigma=[at * math.exp(-2 * se), at * math.exp(2 * se)] if math.isfinite(se) else None)


def law_checks(front: list[dict], value: Callable[[dict], float], target: float = TARGET_FLOPS) -> dict:
    """The power law over the top TAIL_DOUBLINGS doublings of the frontier (`tail`: the regime the
    sweep ends in, the one an extrapolation continues) and over the whole frontier (`whole`: its
    first doublings, where a small model learns the short-range part in a few hundred steps, fall
    much faster), each with its value at `target`; and the checks: doublings covered, and whether
    the last CHECKED_DOUBLINGS doublings follow the law fitted over the tail's doublings before
    them (a point above its prediction by more than 2 sigma of its eval noise and the prediction's
    error is flattening) while the excess still falls across them by more than 2 sigma."""
    top = front[-1]["flops"]
    span = math.log2(top / front[0]["flops"])
    checks: dict = dict(doublings_covered=span, at_least_6_doublings=span >= 6 - 0.01)  # counted FLOPs land a hair off the levels
    tail = [p for p in front if p["flops"] >= top / 2**TAIL_DOUBLINGS * 0.99]
    late = [p for p in tail if p["flops"] > top / 2**CHECKED_DOUBLINGS * 1.01]  # the points the checked doublings added
    early = [p for p in tail if p not in late]
    if len(early) >= 2 and late:
        held = curvefit.fit_power_law([p["flops"] for p in early], [value(p) for p in early])
        rows = []
        for p in late:
            pred = curvefit.power_law_excess(held, p["flops"])
            pred_se = pred * curvefit.power_law_log_se(held, p["flops"]) if len(early) > 2 else 0.0
            noise = math.hypot(p.get("excess_stderr") or 0.0, pred_se)
            rows.append(dict(flops=p["flops"], value=value(p), predicted=pred, noise=noise,
                             flattening=value(p) - pred > 2 * noise))
        base, last = early[-1], front[-1]
        fall_noise = math.hypot(base.get("excess_stderr") or 0.0, last.get("excess_stderr") or 0.0)
        checks.update(last_2_doublings=rows, law_checked_from=[early[0]["flops"], base["flops"]],
                      no_flattening=not any(r["flattening"] for r in rows),
                      still_falling=value(last) < value(base) - 2 * fall_noise)
        checks["power_law_holds"] = checks["no_flattening"] and checks["still_falling"]
    else:
        checks.update(power_law_holds=None, note=f"too few compute levels in the top {TAIL_DOUBLINGS} doublings to test the last {CHECKED_DOUBLINGS}")
    whole = power_law(front, value, target)
    law = power_law(tail, value, target) if len(tail) >= 2 else whole
    return dict(law, whole=whole, checks=checks)


def analyse(points: list[dict], floor: float, target: float = TARGET_FLOPS,
            min_excess: float = MIN_EXCESS_AT_TARGET, known: Callable[[float], float] | None = None) -> dict:
    """Fit, extrapolation and checks over the frontier of the scored points (law_checks); the
    excess at `target` must be >= min_excess by both the tail's law and the whole sweep's. With
    `known` (the knowledge-base bound at a compute, benchmarks/capacity.py) also the two-part law
    excess = known(C) + A*C^-alpha: the power law fitted to what the bound does not explain."""
    front = frontier(points)
    out: dict = dict(frontier=[dict(level=p["level"], size=p["size"], flops=p["flops"], excess=p["excess"]) for p in front])
    if len(front) < 2:
        return dict(out, fit=None, excess_at_1e17=None, checks=dict(note="fewer than 2 compute levels scored"))

    def verdict(law: dict, offset: float = 0.0) -> dict:
        c = dict(law["checks"], excess_at_1e17_at_least_0_05=min(law["at"], law["whole"]["at"]) + offset >= min_excess)
        c["passed"] = bool(c["at_least_6_doublings"] and c["excess_at_1e17_at_least_0_05"] and c.get("power_law_holds"))
        return c

    one = law_checks(front, lambda p: p["excess"], target)
    out.update(fit=dict(one["fit"], law=f"excess = A * C^-alpha, C in training FLOPs, over the top {TAIL_DOUBLINGS} doublings"),
               excess_at_1e17=one["at"], excess_at_1e17_range_2sigma=one["range_2sigma"],
               whole_sweep=dict(one["whole"], law="the same law over the whole frontier"), checks=verdict(one))
    if known is not None:
        rest = {id(p): p["excess"] - known(p["flops"]) for p in front}
        below = [dict(flops=p["flops"], excess=p["excess"], bound=known(p["flops"])) for p in front if rest[id(p)] <= 0]
        if below:  # the measured excess went under the bound: the bound (or its capacity law) is wrong
            out["two_part"] = dict(below_bound=below, checks=dict(passed=False, bound_holds=False))
        else:
            two = law_checks(front, lambda p: rest[id(p)], target)
            out["two_part"] = dict(law="excess = bound(C) + A * C^-alpha, bound from benchmarks/capacity.py",
                                   fit=two["fit"], bound_at_1e17=known(target), excess_at_1e17=known(target) + two["at"],
                                   whole_sweep_excess_at_1e17=known(target) + two["whole"]["at"],
                                   checks=dict(verdict(two, known(target)), bound_holds=True))
    return out


def held_out(sweep: dict, later: dict) -> dict:
    """A finished sweep's law tested on doublings measured after it (another run, maybe another
    machine or dtype): for each size `later` trained at two adjacent levels, its excess ratio over
    that doubling against the law's 2^-alpha. A fixed size falls no faster than the frontier (it
    nears its own capacity), so one size at or below the law's ratio within 2 sigma shows the
    frontier kept falling as the law says (`passed`). Where `later` repeats a (size, level) of the
    sweep, the difference is reported (`same_point`): how far the two machines' points sit apart."""
    alpha, alpha_se = sweep["fit"]["alpha"], sweep["fit"].get("alpha_se") or 0.0
    predicted = 2.0 ** -alpha
    predicted_se = predicted * math.log(2) * alpha_se
    pts = [p for p in later["points"] if p.get("excess") is not None]
    rows = []
    for p in pts:
        below = [q for q in pts if q["size"] == p["size"] and abs(math.log2(p["flops"] / q["flops"]) - 1) < 0.02]
        if not below:
            continue
        q = below[0]
        ratio = p["excess"] / q["excess"]
        noise = math.hypot(ratio * math.hypot((p.get("excess_stderr") or 0) / p["excess"], (q.get("excess_stderr") or 0) / q["excess"]),
                           predicted_se)
        rows.append(dict(size=p["size"], flops=[q["flops"], p["flops"]], excess=[q["excess"], p["excess"]], ratio=ratio,
                         predicted_ratio=predicted, noise=noise, flattening=ratio - predicted > 2 * noise))
    same = [dict(size=p["size"], flops=p["flops"], excess=p["excess"], sweep_excess=q["excess"], difference=p["excess"] - q["excess"])
            for p in pts for q in sweep["points"]
            if q.get("excess") is not None and q["size"] == p["size"] and abs(math.log2(p["flops"] / q["flops"])) < 0.02]
    return dict(law=dict(alpha=alpha, alpha_se=alpha_se, ratio_per_doubling=predicted), doublings=rows, same_point=same,
                machine=dict(device=later.get("device"), dtype=later.get("dtype"), threads=later.get("threads")),
                passed=bool(rows) and any(not r["flattening"] for r in rows))


def knowledge_bound(bytes_per_token: float, levels: list[float], target: float = TARGET_FLOPS):
    """The excess that corpus v2's knowledge base alone leaves at each compute level and at the
    target, for any model (benchmarks/capacity.py: <= 2 bits per parameter, best split of C into N and D):
    (the record for the JSON, the bound as a function of C)."""
    import capacity  # benchmarks/capacity.py, beside this file

    shares = capacity.shares()

    def known(c: float) -> float:
        return capacity.excess_bound(c, shares, bytes_per_token)[0]

    at = {f"{c:.4g}": dict(zip(("excess", "params"), capacity.excess_bound(c, shares, bytes_per_token)))
          for c in sorted(set(levels) | {target})}
    return dict(law="no model trained with C FLOPs stores more than 2 bits/param of the knowledge base "
                    "(benchmarks/capacity.py); excess >= the popularity mass of what it cannot store",
                bytes_per_token=bytes_per_token, bits_per_param=capacity.BITS_PER_PARAM,
                shares=[vars(s) for s in shares], at=at, at_1e17=at[f"{target:.4g}"]["excess"]), known


