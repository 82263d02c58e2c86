"""benchmarks/scaling.py's pure parts: the grid, the pruning rule, the frontier and the checks
(the sweep itself is a benchmark, run by hand)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("scaling", Path(__file__).resolve().parent.parent / "benchmarks" / "scaling.py")
scaling = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scaling)

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
    a = scaling.analyse(pts(law), FLOOR)
    assert a["fit"]["alpha"] == pytest.approx(0.1, abs=1e-9) and a["fit"]["A"] == pytest.approx(5.0)
    assert a["excess_at_1e17"] == pytest.approx(5.0 * 1e17 ** -0.1)
    c = a["checks"]
    assert c["doublings_covered"] == pytest.approx(6.0) and c["at_least_6_doublings"]
    assert c["no_flattening"] and c["still_falling"] and c["power_law_holds"] and c["passed"]
    assert [p["size"] for p in a["frontier"]] == ["s"] * 4 + ["b"] * 3  # the best point per level, by compute


def test_flattening_in_the_last_two_doublings_fails():
    top = 2.0**43
    law = lambda c: 5.0 * c ** -0.1 if c < top / 4 * 0.99 else 5.0 * (top / 8) ** -0.1  # noqa: E731  flat at the end
    c = scaling.analyse(pts(law), FLOOR)["checks"]
    assert c["no_flattening"] is False and c["still_falling"] is False and c["passed"] is False
    assert any(r["flattening"] for r in c["last_2_doublings"])


def test_too_little_excess_at_1e17_fails():
    c = scaling.analyse(pts(lambda c: 5e3 * c ** -0.4), FLOOR)["checks"]  # 5e3 * 1e17^-0.4 = 8e-4
    assert c["power_law_holds"] and not c["excess_at_1e17_at_least_0_05"] and not c["passed"]


def test_too_few_levels_say_so():
    a = scaling.analyse(pts(lambda c: 5.0 * c ** -0.1, levels=[0]), FLOOR)
    assert a["fit"] is None and "fewer than 2" in a["checks"]["note"]
    c = scaling.analyse(pts(lambda c: 5.0 * c ** -0.1, levels=[0, 1, 2]), FLOOR)["checks"]
    assert c["power_law_holds"] is None and c["passed"] is False


def test_grid_and_pruning():
    sizes = [(1, 64), (2, 128)]
    fpt = {(1, 64): 2.0**10, (2, 128): 2.0**12}
    grid = scaling.plan_grid(sizes, fpt, 2.0**33, 3, 1024, 50, 10**9)
    # 1024 tokens per step: 1x64 at 2^33..2^30 FLOPs makes 8192..1024 steps, 2x128 2048..256
    assert sorted((p["size"], p["steps"]) for p in grid if p["level"] == 3) == [("1x64", 1024), ("2x128", 256)]
    assert [p["flops"] for p in grid] == sorted(p["flops"] for p in grid) and len(grid) == 8
    assert len(scaling.plan_grid(sizes, fpt, 2.0**33, 3, 1024, 2000, 10**9)) == 4  # >= 2000 steps: 3 + 1
    assert len(scaling.plan_grid(sizes, fpt, 2.0**33, 3, 1024, 50, 2**22)) == 7  # one epoch: 1x64 at level 0 is out
    small = dict(level=2, size="1x64", params=1e6, flops=1e9, val_bpb=1.0)
    big = dict(level=2, size="2x128", params=4e6, flops=1e9, val_bpb=0.9)
    assert scaling.dominated(dict(level=1, size="1x64"), [small, big]) == "2x128 already beat 1x64 at 1e+09 FLOPs"
    assert scaling.dominated(dict(level=1, size="2x128"), [small, big]) is None
    assert scaling.dominated(dict(level=1, size="1x64"), [small, dict(big, val_bpb=1.1)]) is None
    with pytest.raises(SystemExit, match="DEPTHxWIDTH"):
        scaling.parse_size("2x100")


def test_two_part_law_fits_what_the_bound_leaves():
    """excess = known(C) + A*C^-alpha: a slowly falling known part plus a fast power law fails the
    single power law (it flattens) but passes the two-part law, and extrapolates both parts."""
    known = lambda c: 0.08 * (c / 1e17) ** -0.02  # noqa: E731
    law = lambda c: known(c) + 2e4 * c ** -0.4  # noqa: E731
    a = scaling.analyse(pts(law), FLOOR, known=known)
    assert a["checks"]["no_flattening"] is False and a["checks"]["passed"] is False
    two = a["two_part"]
    assert two["checks"]["bound_holds"] and two["checks"]["power_law_holds"] and two["checks"]["passed"]
    assert two["fit"]["alpha"] == pytest.approx(0.4, abs=1e-6)
    assert two["excess_at_1e17"] == pytest.approx(0.08 + 2e4 * 1e17 ** -0.4, rel=1e-6)


def test_two_part_law_refuses_a_bound_above_the_measured_excess():
    a = scaling.analyse(pts(lambda c: 5.0 * c ** -0.1), FLOOR, known=lambda c: 1.0)
    assert a["two_part"]["checks"] == {"passed": False, "bound_holds": False} and a["two_part"]["below_bound"]


def test_relevel_counts_levels_from_the_new_top():
    old = [dict(size="s", level=k, flops=2.0**43 / 2**k * 1.003) for k in range(3)]
    assert [p["level"] for p in scaling.relevel(old, 2.0**44)] == [1, 2, 3]
    assert [p["level"] for p in scaling.relevel(old, 2.0**43)] == [0, 1, 2]
