"""Recognising an out-of-memory failure from a process's last output, on every backend."""

from __future__ import annotations

import re

OOM_PATTERN = re.compile(
    r"out of memory|OutOfMemoryError|MemoryError|Cannot allocate memory|\[METAL\].*memory|\[metal::malloc\]"
    r"|maximum allowed buffer size",
    re.I,
)
