"""scripts/setup.sh picks a Python >= 3.10 (a stock macOS `python3` is often 3.9), or says in one
line that there is none. Fake interpreters on a bare PATH stand in for a Mac's."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parent.parent / "scripts" / "setup.sh"
BASH = shutil.which("bash")


def which_python(tmp_path: Path, versions: dict[str, str], python_env: str | None = None):
    """Run `setup.sh --which-python` with only fake interpreters (name -> version) on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("dirname"), bin_dir / "dirname")
    for name, version in versions.items():
        fake = bin_dir / name
        fake.write_text(f"#!/bin/sh\necho {version}\n")
        fake.chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    if python_env:
        env["PYTHON"] = python_env
    return subprocess.run([BASH, str(SETUP), "--which-python"], capture_output=True, text=True, env=env, timeout=30)


@pytest.mark.skipif(BASH is None or shutil.which("dirname") is None, reason="needs bash and dirname")
class TestPythonChoice:
    def test_stock_mac_python3_39_is_passed_over_for_a_newer_one(self, tmp_path):
        r = which_python(tmp_path, {"python3": "3.9", "python3.11": "3.11"})
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "python3.11"

    def test_the_newest_listed_version_wins(self, tmp_path):
        r = which_python(tmp_path, {"python3": "3.12", "python3.10": "3.10", "python3.13": "3.13"})
        assert r.stdout.strip() == "python3.13"

    def test_a_new_enough_python3_is_used(self, tmp_path):
        r = which_python(tmp_path, {"python3": "3.12"})
        assert r.returncode == 0 and r.stdout.strip() == "python3"

    def test_only_an_old_python_is_one_clear_line_and_exit_2(self, tmp_path):
        r = which_python(tmp_path, {"python3": "3.9"})
        assert r.returncode == 2 and r.stdout == ""
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
        assert "3.10 or newer" in lines[0] and "python3 is 3.9" in lines[0]

    def test_no_python_at_all(self, tmp_path):
        r = which_python(tmp_path, {})
        assert r.returncode == 2 and "none of" in r.stderr and len(r.stderr.strip().splitlines()) == 1

    def test_an_explicit_python_is_checked_too(self, tmp_path):
        r = which_python(tmp_path, {"python3.12": "3.12", "old": "3.8"}, python_env="old")
        assert r.returncode == 2 and "old is 3.8" in r.stderr
