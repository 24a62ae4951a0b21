"""The architecture's layers are held by import-linter (contract: layers.toml), not by review."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGES = ("ovr", "components", "pipelines", "services")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), str(root / "layers.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_the_code_keeps_its_layers(repo_root):
    out = _lint_imports(repo_root)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "2 kept, 0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("ovr/config/_probe.py", "from ovr.rl import trainer\n", "Layers"),  # core importing a stage
        ("ovr/data/_probe.py", "import ovr.eval.report\n", "Layers"),  # the old data -> eval circle
        ("ovr/rl/_probe.py", "from components import runtime\n", "Layers"),  # a stage importing a shell
        ("ovr/store_probe.py", "import kubernetes\n", "Only the modules"),  # Kubernetes outside ovr.k8s
    ],
)
def test_a_back_import_breaks_the_contract(repo_root, tmp_path, module, line, contract):
    """A copy of the tree with one bad module added fails the check, naming the module."""
    for package in PACKAGES:
        shutil.copytree(repo_root / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo_root / "layers.toml", tmp_path / "layers.toml")
    if module == "ovr/store_probe.py":  # a new top-level module must be inside a forbidden source
        text = (tmp_path / "layers.toml").read_text().replace('"ovr.store",', '"ovr.store", "ovr.store_probe",')
        (tmp_path / "layers.toml").write_text(text)
    (tmp_path / module).write_text(line)
    out = _lint_imports(tmp_path)
    assert out.returncode != 0
    probe = module.removesuffix(".py").replace("/", ".")
    assert probe in out.stdout and f"{contract}" in out.stdout and "BROKEN" in out.stdout, out.stdout[-3000:]
