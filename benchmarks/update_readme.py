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

from autoresearch_portable.harness.bench import bundled_profiles, markdown_table  # noqa: E402

BEGIN, END = "<!-- table:begin -->", "<!-- table:end -->"


def main() -> None:
    readme = ROOT / "benchmarks" / "README.md"
    text = readme.read_text()
    table = markdown_table(bundled_profiles())
    new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), BEGIN + "\n" + table + "\n" + END, text, flags=re.S)
    readme.write_text(new)
    print(table)


if __name__ == "__main__":
    main()
