"""Rewrite the reference table in benchmarks/README.md from the profiles in benchmarks/results/
(so the table holds exactly what was measured, nothing typed by hand).

    python benchmarks/update_readme.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoresearch_portable import HARNESS_VERSION  # noqa: E402
from autoresearch_portable.harness.baseline.bench import (  # noqa: E402
    _preference, bundled_profiles, excess_over_floor, not_measured)
from autoresearch_portable.harness.run.summary import fmt  # noqa: E402

BEGIN, END = "<!-- table:begin -->", "<!-- table:end -->"


def markdown_table(profiles: list[dict]) -> str:
    """The README's table of bundled reference profiles, those this harness version uses first;
    devices not measured yet say so."""
    lines = [
        "| device | backend | dataset | harness | T (s) | baseline | tokens/s | MFU % | val_bpb at T | floor | excess over floor "
        "| s (bpb/doubling) | σ | file |",
        "|---|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for p in sorted(profiles, key=lambda p: (str(p.get("harness_version")) != HARNESS_VERSION, _preference(p))):
        sz = p.get("baseline_sizes") or {}
        used = "" if str(p.get("harness_version")) == HARNESS_VERSION else " (not used)"
        lines.append(
            f"| {p.get('device_name')} | {p.get('backend')} ({(p.get('plan') or {}).get('dtype', '?')}) | "
            f"{(p.get('dataset') or {}).get('name', '?')} | {p.get('harness_version')}{used} | {p['budget_seconds']:g} | "
            f"depth {sz.get('DEPTH')}, width {sz.get('MODEL_DIM')} | {fmt(p.get('tokens_per_second'), ',.0f')} | "
            f"{fmt(p.get('mfu_percent'), '.2f')} | {fmt(p.get('baseline_bpb_mean'), '.4f')} | {fmt(p.get('floor_bpb'), '.4f')} | "
            f"{fmt(excess_over_floor(p), '.4f')} | {fmt(p.get('s'), '.4f')} | {fmt(p.get('sigma'), '.4f')} | `{p.get('file')}` |")
    for m in not_measured(profiles):
        dev = m.split(":")[0]
        lines.append(f"| {dev} | — | — | — | — | — | — | — | — | — | — | — | — | not yet measured |")
    return "\n".join(lines)


def main() -> None:
    readme = ROOT / "benchmarks" / "README.md"
    text = readme.read_text()
    table = markdown_table(bundled_profiles())
    new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), BEGIN + "\n" + table + "\n" + END, text, flags=re.S)
    readme.write_text(new)
    print(table)


if __name__ == "__main__":
    main()
