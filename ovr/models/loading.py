"""Load a Qwen2.5-VL policy and its processor from a local folder or the store (S3/MinIO).

The same code loads the real Qwen2.5-VL-7B-Instruct and the tiny offline model: both are
``save_pretrained`` folders read through transformers' Auto classes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ovr.config import ModelConfig, StoreConfig

CACHE = Path(".ovr/cache/models")


def resolve_model_path(model: ModelConfig, store: StoreConfig, cache: Path = CACHE) -> Path:
    """A local folder holding the model named by ``model.path``.

    * a local folder is used in place (built first when ``build_tiny_if_missing``);
    * ``s3://bucket/key`` is downloaded once into ``cache`` (the store verifies hashes when the
      prefix was committed with a manifest; plain uploads are copied as listed).
    """
    path = model.path
    if path.startswith("s3://"):
        from ovr.store import MANIFEST, Store

        bucket, _, key = path.removeprefix("s3://").partition("/")
        store_cfg = store.model_copy(update={"uri": f"s3://{bucket}"})
        dest = cache / hashlib.sha256(path.encode()).hexdigest()[:16]
        if (dest / "config.json").is_file():
            return dest
        s3 = Store.from_config(store_cfg)
        if s3.exists(f"{key}/{MANIFEST}"):
            return s3.download(key, dest)
        keys = s3.list(key.rstrip("/") + "/")
        if not keys:
            raise FileNotFoundError(f"no model under {path}")
        for k in keys:
            s3.get_file(k, dest / k[len(key.rstrip("/")) + 1 :])
        return dest
    local = Path(path)
    if not (local / "config.json").is_file():
        if model.build_tiny_if_missing:
            from ovr.models.tiny import make_tiny

            return make_tiny(local, seed=model.tiny_seed)
        raise FileNotFoundError(f"no model at {local} (config.json missing)")
    return local


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_policy(path: str | Path, model: ModelConfig | None = None, device: str = "cpu"):
    """``Qwen2_5_VLForConditionalGeneration`` (through the Auto class) from a local folder."""
    from transformers import AutoModelForImageTextToText

    from ovr.models.attention import attach, resolve

    model = model or ModelConfig()
    policy = AutoModelForImageTextToText.from_pretrained(
        str(path), dtype=torch_dtype(model.dtype), attn_implementation=resolve(model.attn_implementation)
    )
    return attach(policy).to(device)


def load_processor(path: str | Path, max_pixels: int | None = None):
    """The checkpoint's processor, its images bounded to ``max_pixels`` (``model.max_pixels``)."""
    from transformers import AutoProcessor

    return bound_pixels(AutoProcessor.from_pretrained(str(path)), max_pixels)


def bound_pixels(processor, max_pixels: int | None):
    """Lower the image processor's largest resize target to ``max_pixels`` (never raise it: the
    replicas apply the same min to the same checkpoint, so both sides count the same image tokens)."""
    image = getattr(processor, "image_processor", None)
    if max_pixels is None or image is None:
        return processor
    own = image.size.get("longest_edge") if hasattr(image.size, "get") else None
    if own is None or max_pixels < own:
        image.size = {**dict(image.size), "longest_edge": max_pixels}
    return processor
