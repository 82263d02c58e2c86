"""benchmarks/scaling.py's pure parts: the grid, the pruning rule, the frontier and the checks
(the sweep itself is a benchmark, run by hand)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scaling = _load("scaling")  # the sweep (imports scaling_law from beside it)
sl = _load("scaling_law")

FLOOR = 0.26


def pts(excess_of, levels=range(7), c_max=2.0**43, sizes=(("s", 1e6), ("b", 4e6)), se=0.002):
    """Scored points at levels c_max/2^k; per size a multiplier on the law's excess."""
    out = []
    for k in levels:
        c = c_max / 2**k
        for i, (name, params) in enumerate(sizes):
            e = excess_of(c) * (1.0 if (i == 1) == (k < 3) else 1.3)  # b wins at the top, s at the bottom
            out.append(dict(level=k, size=name, params=params, flops=c, val_bpb=FLOOR + e, excess=e, excess_stderr=se))
    return out


def test_a_power_law_passes_every_check():
    law = lambda c: 5.0 * c ** -0.1  # noqa: E731  excess at 1e17: 5e-1.7 = 0.0995
    a = sl.analyse(pts(law), FLOOR)
    assert a["fit"]["alpha"] == pytest.approx(0.1, abs=1e-9) and a["fit"]["A"] == pytest.approx(5.0)
    assert a["excess_at_1e17"] == pytest.approx(5.0 * 1e17 ** -0.1)
    c = a["checks"]
    assert c["doublings_covered"] == pytest.approx(6.0) and c["at_least_6_doublings"]
    assert c["no_flattening"] and c["still_falling"] and c["power_law_holds"] and c["passed"]
    assert [p["size"] for p in a["frontier"]] == ["s"] * 4 + ["b"] * 3  # the best point per level, by compute


def test_flattening_in_the_last_two_doublings_fails():
    top = 2.0**43
    law = lambda c: 5.0 * c ** -0.1 if c < top / 2 * 0.99 else 5.0 * (top / 4) ** -0.1  # noqa: E731  flat at the end
    c = sl.analyse(pts(law), FLOOR)["checks"]
    assert c["no_flattening"] is False and c["still_falling"] is False and c["passed"] is False
    assert any(r["flattening"] for r in c["last_2_doublings"])


def test_too_little_excess_at_1e17_fails():
    c = sl.analyse(pts(lambda c: 5e3 * c ** -0.4), FLOOR)["checks"]  # 5e3 * 1e17^-0.4 = 8e-4
    assert c["power_law_holds"] and not c["excess_at_1e17_at_least_0_05"] and not c["passed"]


def test_too_few_levels_say_so():
    a = sl.analyse(pts(lambda c: 5.0 * c ** -0.1, levels=[0]), FLOOR)
    assert a["fit"] is None and "fewer than 2" in a["checks"]["note"]
    c = sl.analyse(pts(lambda c: 5.0 * c ** -0.1, levels=[0, 1, 2]), FLOOR)["checks"]
    assert c["power_law_holds"] is None and c["passed"] is False


def test_grid_and_pruning():
    sizes = [(1, 64), (2, 128)]
    fpt = {(1, 64): 2.0**10, (2, 128): 2.0**12}
    grid = sl.plan_grid(sizes, fpt, 2.0**33, 3, 1024, 50, 10**9)
    # 1024 tokens per step: 1x64 at 2^33..2^30 FLOPs makes 8192..1024 steps, 2x128 2048..256
    assert sorted((p["size"], p["steps"]) for p in grid if p["level"] == 3) == [("1x64", 1024), ("2x128", 256)]
    assert [p["flops"] for p in grid] == sorted(p["flops"] for p in grid) and len(grid) == 8
    assert len(sl.plan_grid(sizes, fpt, 2.0**33, 3, 1024, 2000, 10**9)) == 4  # >= 2000 steps: 3 + 1
    assert len(sl.plan_grid(sizes, fpt, 2.0**33, 3, 1024, 50, 2**22)) == 7  # one epoch: 1x64 at level 0 is out
    small = dict(level=2, size="1x64", params=1e6, flops=1e9, val_bpb=1.0)
    big = dict(level=2, size="2x128", params=4e6, flops=1e9, val_bpb=0.9)
    assert sl.dominated(dict(level=1, size="1x64"), [small, big]) == "2x128 already beat 1x64 at 1e+09 FLOPs"
    assert sl.dominated(dict(level=1, size="2x128"), [small, big]) is None
    assert sl.dominated(dict(level=1, size="1x64"), [small, dict(big, val_bpb=1.1)]) is None
    with pytest.raises(SystemExit, match="DEPTHxWIDTH"):
        scaling.parse_size("2x100")


def test_two_part_law_fits_what_the_bound_leaves():
    """excess = known(C) + A*C^-alpha: a slowly falling known part plus a fast power law fails the
    single power law (it flattens) but passes the two-part law, and extrapolates both parts."""
    known = lambda c: 0.08 * (c / 1e17) ** -0.02  # noqa: E731
    law = lambda c: known(c) + 2e4 * c ** -0.4  # noqa: E731
    a = sl.analyse(pts(law), FLOOR, known=known)
    assert a["checks"]["no_flattening"] is False and a["checks"]["passed"] is False
    two = a["two_part"]
    assert two["checks"]["bound_holds"] and two["checks"]["power_law_holds"] and two["checks"]["passed"]
    assert two["fit"]["alpha"] == pytest.approx(0.4, abs=1e-6)
    assert two["excess_at_1e17"] == pytest.approx(0.08 + 2e4 * 1e17 ** -0.4, rel=1e-6)


def test_two_part_law_refuses_a_bound_above_the_measured_excess():
    a = sl.analyse(pts(lambda c: 5.0 * c ** -0.1), FLOOR, known=lambda c: 1.0)
    assert a["two_part"]["checks"] == {"passed": False, "bound_holds": False} and a["two_part"]["below_bound"]


def test_relevel_counts_levels_from_the_new_top():
    old = [dict(size="s", level=k, flops=2.0**43 / 2**k * 1.003) for k in range(3)]
    assert [p["level"] for p in sl.relevel(old, 2.0**44)] == [1, 2, 3]
    assert [p["level"] for p in sl.relevel(old, 2.0**43)] == [0, 1, 2]


def test_a_fast_start_does_not_hide_a_steady_tail():
    """The first doublings (a small model learning the short-range part) fall much faster than the
    top: the law is the tail's, the whole sweep's fit is reported beside it, and the last two
    doublings are checked against the tail's doublings before them, not against the fast start."""
    top = 2.0**43
    tail = lambda c: 0.3 * (c / top) ** -0.06  # noqa: E731
    bent = lambda c: tail(c) if c >= top / 16 * 0.99 else tail(c) * (top / 16 / c) ** 0.2  # noqa: E731
    a = sl.analyse(pts(bent, levels=range(9)), FLOOR)
    assert a["fit"]["alpha"] == pytest.approx(0.06, abs=1e-9) and a["fit"]["n"] == 5
    assert a["excess_at_1e17"] == pytest.approx(tail(1e17))
    assert a["whole_sweep"]["fit"]["alpha"] > 0.12  # the fast start steepens the whole sweep's fit
    assert a["whole_sweep"]["at"] < a["excess_at_1e17"] / 2
    c = a["checks"]
    assert c["no_flattening"] and c["still_falling"] and c["passed"]
    assert [r["flops"] for r in c["last_2_doublings"]] == [top / 2, top]
    assert c["law_checked_from"] == [top / 16, top / 4]


def test_enough_excess_at_1e17_is_asked_of_both_laws():
    """A tail that leaves plenty at 1e17 does not pass when the whole sweep's law leaves less."""
    top = 2.0**43
    tail = lambda c: 0.06 * (c / 1e17) ** -0.05  # noqa: E731  0.06 at 1e17
    bent = lambda c: tail(c) if c >= top / 16 * 0.99 else tail(c) * (top / 16 / c) ** 1.5  # noqa: E731
    a = sl.analyse(pts(bent, levels=range(9), se=0.001), FLOOR)
    assert a["excess_at_1e17"] == pytest.approx(0.06) and a["whole_sweep"]["at"] < 0.05
    assert a["checks"]["power_law_holds"] and not a["checks"]["excess_at_1e17_at_least_0_05"]
    assert not a["checks"]["passed"]


def later_sweep(excess_at, levels, c_top, size="2x128", se=0.003):
    return dict(points=[dict(size=size, level=k, flops=c_top / 2**k, excess=excess_at(c_top / 2**k), excess_stderr=se)
                        for k in levels])


def test_a_held_out_doubling_that_follows_the_law_passes():
    steady = lambda c: 5.0 * c ** -0.1  # noqa: E731
    sweep = sl.analyse(pts(steady), FLOOR)
    sweep["points"] = pts(steady)
    top = 2.0**43
    # measured later on another machine whose points sit 0.01 higher: the ratio is what is compared
    ho = sl.held_out(sweep, later_sweep(lambda c: steady(c) + 0.01, [0, 1], 2 * top, size="b"))
    (row,) = ho["doublings"]
    assert row["flops"] == [top, 2 * top] and row["predicted_ratio"] == pytest.approx(2**-0.1)
    assert not row["flattening"] and ho["passed"]
    (same,) = ho["same_point"]  # the later run repeated the sweep's top point with the same size
    assert same["flops"] == top and same["difference"] == pytest.approx(0.01)


def test_a_held_out_doubling_that_flattens_fails():
    steady = lambda c: 5.0 * c ** -0.1  # noqa: E731
    sweep = sl.analyse(pts(steady), FLOOR)
    sweep["points"] = pts(steady)
    top = 2.0**43
    flat = sl.held_out(sweep, later_sweep(lambda c: steady(min(c, top)), [0, 1], 2 * top))
    assert flat["doublings"][0]["ratio"] == pytest.approx(1.0) and flat["doublings"][0]["flattening"]
    assert not flat["passed"]
    assert not sl.held_out(sweep, later_sweep(steady, [0], 2 * top))["passed"]  # no doubling measured: nothing shown
