"""ruff holds the code style: lint rules and formatting as configured in pyproject.toml ([tool.ruff])."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RUFF = [sys.executable, "-m", "ruff"]


def _ruff(repo_root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*RUFF, *args], cwd=repo_root, capture_output=True, text=True, check=False)


def test_ruff_finds_nothing(repo_root):
    out = _ruff(repo_root, "check", "--output-format", "concise", ".")
    assert out.returncode == 0, out.stdout + out.stderr


def test_code_is_formatted(repo_root):
    out = _ruff(repo_root, "format", "--check", ".")
    assert out.returncode == 0, "run `ruff format .`:\n" + out.stdout + out.stderr


def test_ruff_fails_on_a_bad_file(repo_root, tmp_path):
    """The check can fail: an unused import and a badly formatted line in a scratch file are reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nx=[1,\n  2]\n")
    lint = _ruff(repo_root, "check", "--no-cache", str(bad))
    fmt = _ruff(repo_root, "format", "--no-cache", "--check", str(bad))
    assert lint.returncode != 0 and "F401" in lint.stdout
    assert fmt.returncode != 0
