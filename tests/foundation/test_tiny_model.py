"""The tiny offline Qwen2.5-VL: real classes, reloadable, trainable, deterministic."""

from __future__ import annotations

import hashlib

import pytest
import torch

from ovr.models.chat import hf_messages, pil_images
from ovr.schema import ImageRef, Sample


def _image_sample() -> Sample:
    import io

    from PIL import Image, ImageDraw

    img = Image.new("RGB", (112, 112), "white")
    ImageDraw.Draw(img).ellipse((20, 20, 60, 60), fill="red")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return Sample(
        id="s1",
        source="t",
        split="rl",
        modality="image",
        prompt="<image>How many circles? Answer in \\boxed{}.",
        images=[ImageRef.from_bytes(buf.getvalue())],
        answer="1",
    )


def test_reload_forward_backward_generate(tiny_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor, Qwen2_5_VLForConditionalGeneration

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    proc = AutoProcessor.from_pretrained(tiny_model_dir)
    assert isinstance(model, Qwen2_5_VLForConditionalGeneration)
    cfg = model.config
    assert not cfg.tie_word_embeddings
    assert cfg.text_config.hidden_size // cfg.text_config.num_attention_heads in (32, 64)
    assert cfg.vision_config.out_hidden_size == cfg.text_config.hidden_size
    assert max(cfg.image_token_id, cfg.video_token_id, cfg.vision_start_token_id) < cfg.text_config.vocab_size

    sample = _image_sample()
    text = proc.apply_chat_template(hf_messages(sample), add_generation_prompt=True, tokenize=False)
    assert text.count("<|image_pad|>") == 1 and text.endswith("<|im_start|>assistant\n")
    enc = proc(text=[text], images=pil_images(sample), return_tensors="pt")
    n_image_tokens = int((enc["input_ids"] == cfg.image_token_id).sum())
    assert n_image_tokens == 16  # 112x112 -> 8x8 patches -> 2x2 merge

    out = model(**enc, labels=enc["input_ids"])
    assert torch.isfinite(out.loss) and out.loss.item() > 0
    out.loss.backward()
    assert model.model.visual.patch_embed.proj.weight.grad is not None  # gradient reaches vision
    gen = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert gen.shape[1] == enc["input_ids"].shape[1] + 5 or gen[0, -1].item() in model.generation_config.eos_token_id


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path):
    from ovr.models.tiny import make_tiny

    digest = lambda p: hashlib.sha256((p / "model.safetensors").read_bytes()).hexdigest()  # noqa: E731
    a, b, c = (make_tiny(tmp_path / n, seed=s) for n, s in (("a", 3), ("b", 3), ("c", 4)))
    assert digest(a) == digest(b) != digest(c)
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()


def test_cli_make_tiny(tmp_path):
    from typer.testing import CliRunner

    from ovr.cli import app

    res = CliRunner().invoke(app, ["models", "make-tiny", str(tmp_path / "m"), "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "m" / "model.safetensors").is_file()
    assert (tmp_path / "m" / "chat_template.jinja").is_file()


def test_resolve_model_path_builds_tiny_and_rejects_missing(tmp_path):
    from ovr.config import ModelConfig, StoreConfig
    from ovr.models.loading import resolve_model_path

    store = StoreConfig(uri=str(tmp_path / "store"))
    built = resolve_model_path(ModelConfig(path=str(tmp_path / "t"), build_tiny_if_missing=True), store)
    assert (built / "config.json").is_file()
    with pytest.raises(FileNotFoundError, match="no model"):
        resolve_model_path(ModelConfig(path=str(tmp_path / "missing")), store)
