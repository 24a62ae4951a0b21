"""Make PyPI's CUDA-linked torch companions usable beside a CPU build of torch.

This is the one place that deals with the problem. PyPI's torchvision, torchaudio and torchcodec
wheels are linked against CUDA builds of torch. Beside ``torch==2.13.0+cpu``:

* torchvision fails to import (``operator torchvision::nms does not exist``) because
  ``torchvision/_meta_registrations.py`` registers fake kernels for the C++ ``nms``/``qnms``
  operators its CPU-less extension never defined. We guard those two registrations so they are
  skipped when the operator is missing; everything transformers needs (transforms, io of images,
  the video processor classes) keeps working.
* torchaudio and torchcodec fail at import with missing CUDA symbols; nothing in ovr or in vLLM's
  image path needs them, and their presence makes transformers/vLLM try (and crash) importing them,
  so they are uninstalled.

Run with the interpreter of the venv to fix: ``VENV/bin/python scripts/env/fix_cpu_torch_extras.py``.
Idempotent: a second run changes nothing. Exits non-zero if torchvision still cannot be imported.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

GUARD = "# ovr: guarded for CPU torch"


def _is_cpu_torch() -> bool:
    import torch

    return torch.version.cuda is None


def patch_torchvision() -> str:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.submodule_search_locations is None:
        return "torchvision not installed"
    path = Path(next(iter(spec.submodule_search_locations))) / "_meta_registrations.py"
    text = path.read_text()
    if GUARD in text:
        return "torchvision already patched"
    pattern = re.compile(r'^@torch\.library\.register_fake\("torchvision::(nms|qnms)"\)\n', re.M)
    if not pattern.search(text):
        return "torchvision needs no patch"
    new = pattern.sub(
        lambda m: (
            f'@(torch.library.register_fake("torchvision::{m.group(1)}") '
            f'if hasattr(torch.ops.torchvision, "{m.group(1)}") '
            f"else (lambda f: f))  {GUARD}\n"
        ),
        text,
    )
    path.write_text(new)
    return f"patched {path}"


def remove_cuda_only_extras() -> list[str]:
    present = [n for n in ("torchaudio", "torchcodec") if importlib.util.find_spec(n) is not None]
    if present:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", *present], check=True)
    return present


def main() -> int:
    if not _is_cpu_torch():
        print("fix_cpu_torch_extras: torch is a CUDA build, nothing to do")
        return 0
    print("fix_cpu_torch_extras:", patch_torchvision())
    removed = remove_cuda_only_extras()
    if removed:
        print("fix_cpu_torch_extras: removed", ", ".join(removed))
    check = subprocess.run(
        [sys.executable, "-c", "import torchvision, torchvision.transforms.v2"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        print(check.stderr, file=sys.stderr)
        print("fix_cpu_torch_extras: torchvision still fails to import", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
