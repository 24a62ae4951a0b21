"""Each image's Python requirements resolve for its platform (linux x86_64, CPython 3.11) on PyPI.

``pip install --dry-run --only-binary=:all: --platform manylinux_2_*_x86_64 --python-version 3.11
--report`` resolves what the Dockerfile would install, reading only package metadata, with this
machine's pip configuration switched off (its local wheel folders and caps must not stand in for
PyPI). What this can check: that the pins exist as Linux x86_64 wheels and agree with each other
(torch, torchvision, vLLM, transformers, DeepSpeed, ...) and which CUDA build PyPI's torch is.
DeepSpeed and kfp-server-api publish only source distributions: they (and kfp / kfp-kubernetes,
which pull kfp-server-api in) are left out of the binary resolution, their own requirements (from
their metadata in this venv) go in instead, and each is checked to have a release on the index that
satisfies the requirement. What it cannot: PyTorch's own wheel index (not reachable from here; the
Dockerfile needs it only for a CPU-only image), the rollout image's base (``vllm/vllm-openai``, a
registry image), system packages, and whether the image builds (no Docker engine here). Marked ``index``: it needs PyPI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = [pytest.mark.index, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
#: python:3.11-slim-bookworm has glibc 2.36: every manylinux tag up to 2_36 installs there (pip does not
#: widen an explicit --platform to older tags by itself)
TAGS = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)]
TAGS += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
PLATFORM = [a for t in TAGS for a in ("--platform", t)] + ["--python-version", "3.11", "--implementation", "cp"]


#: source-only on PyPI, and the packages whose requirements lead to one
SOURCE_ONLY = {"deepspeed", "kfp-server-api"}
EXPANDED = SOURCE_ONLY | {"kfp", "kfp-kubernetes"}


def _name(req: str) -> str:
    import re

    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].strip().lower()


def pip_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}


def source_only(requirements: list[str]) -> tuple[list[str], list[str]]:
    """(the requirements with EXPANDED packages replaced by their own requirements; the replaced ones)."""
    from importlib.metadata import requires

    kept, dropped, todo = [], [], list(requirements)
    while todo:
        r = todo.pop()
        if _name(r) not in EXPANDED:
            kept.append(r)
        elif _name(r) not in {_name(d) for d in dropped}:
            dropped.append(r)
            todo += [d for d in requires(_name(r)) or [] if "extra ==" not in d]
    return kept, dropped


def on_index(requirement: str) -> bool:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "index",
            "versions",
            _name(requirement),
            "--index-url",
            "https://pypi.org/simple",
        ],
        env=pip_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    from packaging.requirements import Requirement

    versions = out.stdout.partition("Available versions:")[2].replace(",", " ").split()
    return out.returncode == 0 and any(Requirement(requirement).specifier.contains(v) for v in versions)


def project_requirements(extras: list[str]) -> list[str]:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return list(meta["dependencies"]) + [r for e in extras for r in meta["optional-dependencies"][e]]


def resolve(requirements: list[str], tmp_path: Path) -> dict[str, str]:
    """name -> version pip would install, for the image's platform."""
    binary, sources = source_only(requirements)
    missing = [r for r in sources if not on_index(r)]
    if missing:
        pytest.fail(f"no release on the index satisfies {missing}")
    req = tmp_path / "requirements.txt"
    req.write_text("\n".join(binary) + "\n")
    report = tmp_path / "report.json"
    env = pip_env()
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--only-binary=:all:",
        *PLATFORM,
        "--index-url",
        "https://pypi.org/simple",
        "--report",
        str(report),
        "-r",
        str(req),
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=840)
    if out.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed:\n{out.stderr[-4000:]}")
    return {
        i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }


def image_pins(name: str) -> list[str]:
    lines = (REPO / "requirements" / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_trainer_image_resolves_with_cuda_torch_and_vllm(tmp_path):
    got = resolve(project_requirements(["gpu"]) + image_pins("ovr-image.txt"), tmp_path)
    assert got["torch"] == "2.13.0" and got["torchvision"] == "0.28.0" and got["vllm"] == "0.32.0"
    assert any(n.startswith("nvidia-") and n.endswith("-cu13") for n in got), "PyPI's torch is no longer CUDA 13"
    assert {"hjson", "py-cpuinfo", "ninja"} <= set(got) and "flash-attn" not in got  # DeepSpeed's own requirements
    assert got["transformers"].startswith("5.")


def test_reward_image_resolves_without_torch(tmp_path):
    got = resolve(image_pins("reward-image.txt"), tmp_path)
    assert {"fastapi", "uvicorn", "math-verify"} <= set(got) and "torch" not in got
