"""Uniform averaging of checkpoints (the recipe's final model: the mean of several late ones).

>>> average_models([Path("ckpt/step-800/actor"), Path("ckpt/step-900/actor")], Path("final"))  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch


def load_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a ``save_pretrained`` folder (sharded or not)."""
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors weights in {folder}")
    out: dict[str, torch.Tensor] = {}
    for f in files:
        out.update(load_file(str(f)))
    return out


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating tensors (in float32, cast back); other tensors must agree."""
    if not states:
        raise ValueError("nothing to average")
    keys = set(states[0])
    for s in states[1:]:
        if set(s) != keys:
            raise ValueError(f"checkpoints hold different tensors: {sorted(keys ^ set(s))[:5]}")
    out = {}
    for k in states[0]:
        ref = states[0][k]
        if ref.is_floating_point():
            out[k] = (sum(s[k].float() for s in states) / len(states)).to(ref.dtype)
        else:
            if any(not torch.equal(s[k], ref) for s in states[1:]):
                raise ValueError(f"non-float tensor {k} differs between checkpoints")
            out[k] = ref
    return out


def _tensor_files(folder: Path) -> dict[str, object]:
    """Tensor name -> the open safetensors file holding it (read lazily, one tensor at a time)."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors weights in {folder}")
    where = {}
    for f in files:
        handle = safe_open(str(f), framework="pt")
        where |= dict.fromkeys(handle.keys(), handle)
    return where


def average_models(folders: list[Path], out_dir: Path) -> Path:
    """Average the weights of model folders into ``out_dir`` (config/tokenizer from the last one),
    reading one tensor of each folder at a time: memory holds the average, not every checkpoint."""
    from safetensors.torch import save_file

    folders = [Path(f) for f in folders]
    sources = [_tensor_files(f) for f in folders]
    for src in sources[1:]:
        if set(src) != set(sources[0]):
            raise ValueError(f"checkpoints hold different tensors: {sorted(set(src) ^ set(sources[0]))[:5]}")
    avg = {}
    for k in sources[0]:
        avg |= average_state_dicts([{k: src[k].get_tensor(k)} for src in sources])
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(folders[-1], out_dir, ignore=shutil.ignore_patterns("*.safetensors", "*.safetensors.index.json"))
    save_file(
        {k: v.contiguous() for k, v in avg.items()}, str(out_dir / "model.safetensors"), metadata={"format": "pt"}
    )
    return out_dir
