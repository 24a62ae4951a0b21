"""Build the tiny offline Qwen2.5-VL used by tests and the local demo.

It is the real ``Qwen2_5_VLForConditionalGeneration`` with a tiny config, a byte-level BPE
tokenizer trained here with Qwen's special tokens and chat template, and a real Qwen2-VL image
(and video) processor with small pixel bounds. Everything is deterministic for a seed, so two
builds with the same seed give byte-identical weight files.

Constraints (see design.md "Tiny Qwen2.5-VL gotchas"): ``mrope_section`` sums to head_dim/2, the
vision ``out_hidden_size`` equals the text ``hidden_size``, every special token id lies inside the
small vocab, embeddings are untied, and the text head_dim is 32 (vLLM's CPU attention rejects 16).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

# Qwen2.5-VL's special tokens, in Qwen's order; the ids follow the BPE vocabulary.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2-VL's chat template (string or multi-part content, images and videos as placeholders).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinySpec:
    """Sizes of the tiny model. Defaults give ~2.6M parameters: fast on 2 CPU cores, able to learn
    the position-free procedural tasks (shape_colour, count_shapes) within minutes."""

    vocab_target: int = 1024  # BPE merges stop here; special tokens come after
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 4
    num_heads: int = 4  # head_dim = 32
    num_kv_heads: int = 2
    mrope_section: tuple[int, int, int] = (4, 6, 6)  # sums to head_dim / 2
    vision_hidden: int = 64
    vision_depth: int = 2
    vision_heads: int = 2
    vision_intermediate: int = 128
    min_pixels: int = 28 * 28 * 4
    max_pixels: int = 28 * 28 * 16  # at most 16 image tokens after the 2x2 merge
    max_position_embeddings: int = 4096


def _corpus(seed: int) -> list[str]:
    """Text the tokenizer is trained on: the vocabulary of ovr's procedural tasks and prompts."""
    rng = random.Random(seed)
    words = """
        the a an of to and is are in on at how many what which value answer final step first then so
        therefore wait let me check recheck retry alternatively however think compute count shapes
        circles squares triangles red green blue yellow purple orange black white bar chart tallest
        shortest larger smaller bigger angle degrees length side triangle sum difference product total
        plus minus times divided equals number image picture question solve find please put your within
        boxed reasoning verify correct wrong true false yes no left right top bottom There there We we
        It it This this The A B C D E Answer Solution Problem Step Final Thus Hence Since
    """.split()
    latex = ["\\boxed{", "\\frac{", "\\cdot", "\\times", "\\sqrt{", "^{", "_{", "}", "$", "\\(", "\\)"]
    lines = []
    for _ in range(4000):
        parts = []
        for _ in range(rng.randint(4, 16)):
            r = rng.random()
            if r < 0.55:
                parts.append(rng.choice(words))
            elif r < 0.8:
                parts.append(str(rng.randint(0, 999)))
            elif r < 0.9:
                parts.append(rng.choice(latex) + str(rng.randint(0, 99)) + "}")
            else:
                parts.append(rng.choice("+-*/=()<>.,:;?!%"))
        lines.append(" ".join(parts))
    lines += [f"{a} + {b} = {a + b}" for a in range(40) for b in range(40)]
    lines += [f"{a} * {b} = {a * b}" for a in range(20) for b in range(20)]
    lines += ["<think>", "</think>", "<answer>", "</answer>", "\n\n", "**Answer:**"]
    return lines


def build_tokenizer(spec: TinySpec, seed: int):
    """Train a byte-level BPE with Qwen's pre-tokenizer, then wrap it as a ``Qwen2Tokenizer``."""
    import json

    from tokenizers import Tokenizer, trainers
    from transformers import Qwen2Tokenizer

    scaffold = Qwen2Tokenizer()  # empty Qwen tokenizer: gives Qwen's normalizer/pre-tokenizer
    backend: Tokenizer = scaffold.backend_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_target,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=__import__("tokenizers").pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    backend.train_from_iterator(_corpus(seed), trainer=trainer)
    model = json.loads(backend.to_str())["model"]
    vocab = {tok: i for tok, i in model["vocab"].items() if tok not in SPECIAL_TOKENS}
    vocab = {tok: i for i, tok in enumerate(sorted(vocab, key=vocab.get))}
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]]
    for tok in SPECIAL_TOKENS:
        vocab[tok] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        errors="replace",
        model_max_length=spec.max_position_embeddings,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_processor(tokenizer, spec: TinySpec):
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    bounds = {"shortest_edge": spec.min_pixels, "longest_edge": spec.max_pixels}
    image_processor = Qwen2VLImageProcessor(size=bounds, min_pixels=spec.min_pixels, max_pixels=spec.max_pixels)
    video_processor = Qwen2VLVideoProcessor(size=bounds, min_pixels=spec.min_pixels, max_pixels=spec.max_pixels)
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def build_config(tokenizer, spec: TinySpec):
    from transformers import Qwen2_5_VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    vocab_size = -(-len(tokenizer) // 64) * 64  # round up: vLLM pads the vocab the same way
    head_dim = spec.hidden_size // spec.num_heads
    if sum(spec.mrope_section) * 2 != head_dim:
        raise ValueError(f"mrope_section {spec.mrope_section} must sum to head_dim/2={head_dim // 2}")
    text = dict(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_position_embeddings,
        max_window_layers=spec.num_layers,
        rms_norm_eps=1e-6,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": list(spec.mrope_section),
        },
        tie_word_embeddings=False,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    vision = dict(
        depth=spec.vision_depth,
        hidden_size=spec.vision_hidden,
        intermediate_size=spec.vision_intermediate,
        num_heads=spec.vision_heads,
        out_hidden_size=spec.hidden_size,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=56,
        fullatt_block_indexes=[spec.vision_depth - 1],
        in_channels=3,
    )
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    config.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    return config


def make_tiny(out_dir: str | Path, seed: int = 0, spec: TinySpec | None = None) -> Path:
    """Build the tiny model, tokenizer and processor and ``save_pretrained`` them into ``out_dir``.

    >>> path = make_tiny("/tmp/tiny", seed=0)   # doctest: +SKIP
    >>> AutoModelForImageTextToText.from_pretrained(path)   # doctest: +SKIP
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    spec = spec or TinySpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(spec, seed)
    processor = build_processor(tokenizer, spec)
    config = build_config(tokenizer, spec)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=[config.text_config.eos_token_id, config.text_config.bos_token_id],
        pad_token_id=config.text_config.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    return out
