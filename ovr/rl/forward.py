"""Trainer-side forward passes over (prompt + response) sequences with images.

A prompt is encoded once by the model's processor from the very chat rendering the rollout
server applies (``ovr.models.chat``), giving token ids, ``pixel_values`` and ``image_grid_thw``.
When the server returned its own ``prompt_token_ids`` and they agree on the image tokens, those
ids are used (no re-tokenisation drift). The trainer packs a micro-batch's rows padding-free
(:func:`ovr.rl.packed.pack_batch`: one sequence, per-row positions, no ``[L, L]`` mask); the
right-padded layout of :func:`build_batch` is the reference it is tested against. Response token
``j`` of a row is predicted at the row's position ``prompt_len + j - 1``, where both its log-prob
(policy) and its value (critic, ORZ/verl convention) are read.

The ``n`` responses to one prompt share its images: the vision tower runs once per distinct
prompt in a batch and its features are handed to every row (``mm_encoder_outputs``), so the
gradient through the vision tower is the sum over the rows, exactly as with repeated images.

Memory: log-probs are computed from the response positions' hidden states only, the LM head
applied a chunk of tokens at a time (:mod:`ovr.models.lm_head`): no ``[B, L, V]`` logits exist.
The critic's value head likewise reads the response positions only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ovr.models.lm_head import DEFAULT_CHUNK, HeadInput, capture_head_input, token_logprobs

if TYPE_CHECKING:  # the forward itself needs neither the schema nor the chat rendering (pydantic)
    from ovr.schema import Sample


@dataclass
class EncodedPrompt:
    """A prompt as the model sees it."""

    input_ids: list[int]
    pixel_values: torch.Tensor | None  # [patches, dim]
    image_grid_thw: torch.Tensor | None  # [images, 3]
    rope: torch.Tensor | None = None  # [3, P] M-RoPE positions of an image prompt, once computed


@dataclass
class SeqBatch:
    """Prompt+response rows and where the responses sit: right-padded ``[B, L]`` rows, or (packed,
    ``seq_lens`` set) one ``[1, N]`` sequence of the rows back to back with per-row positions."""

    input_ids: torch.Tensor  # [B, L] padded, [1, N] packed
    attention_mask: torch.Tensor | None  # [B, L] padded, None packed
    mm_token_type_ids: torch.Tensor  # like input_ids
    pixel_values: torch.Tensor | None  # patches of the distinct prompts' images
    unique_grid_thw: torch.Tensor | None  # [distinct images, 3]
    image_grid_thw: torch.Tensor | None  # [images of all rows, 3] (row order)
    row_images: list[list[int]]  # per row: indices into the distinct images
    response_ids: torch.Tensor  # [B, T]
    response_mask: torch.Tensor  # [B, T] float
    positions: torch.Tensor  # [B, T] column (of the row; packed: of the sequence) predicting each response token
    response_index: torch.Tensor  # [2, N] (row, column) of every real response token, built host-side
    dummy_vision: bool = False  # a text-only batch still runs the vision tower (see _dummy_vision)
    anchor: torch.Tensor | float = 0.0  # that run's zero, added to the outputs (set by model_inputs)
    position_ids: torch.Tensor | None = None  # packed: [4, 1, N] text positions + M-RoPE, restarting per row
    seq_lens: list[int] | None = None  # packed: tokens of each row, in order
    pending_rope: list = field(default_factory=list)  # packed image rows whose M-RoPE the model fills in
    vision_kwargs: dict = field(default_factory=dict)  # precomputed grid-derived vision-tower inputs (optional)

    @property
    def packed(self) -> bool:
        return self.seq_lens is not None

    def hidden_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Row of the model's output holding each of ``rows``' positions (0 when packed)."""
        return torch.zeros_like(rows) if self.packed else rows

    def _dummy_vision(self, model) -> torch.Tensor:
        """0, tied to the vision tower: its output on one blank 2x2-patch image, times 0.

        Under ZeRO-3 every rank must run the same modules in the same order: a rank whose
        micro-batch is text-only while another's shows images would skip the vision tower's
        parameter gathers and hang both; and a parameter left out of a backward keeps the gradient
        partition of the previous step (seen: a text-only mini-batch after an image one stepped with
        stale vision gradients). With ``dummy_vision`` a text-only batch runs the tower at the point
        a batch with images would (before the language model), forward and backward, without
        changing any value or gradient."""
        vc = model.config.vision_config
        merge = getattr(vc, "spatial_merge_size", 2)
        patch = vc.in_channels * vc.temporal_patch_size * vc.patch_size**2
        grid = torch.tensor([[1, merge, merge]], device=self.input_ids.device)
        pixels = torch.zeros((merge * merge, patch), device=self.input_ids.device, dtype=next(model.parameters()).dtype)
        feats = model.get_image_features(pixels, grid, return_dict=True).pooler_output
        return sum(f.sum() for f in feats) * 0.0

    def model_inputs(self, model) -> dict:
        """Keyword arguments of ``model``'s forward (policy or critic backbone): vision features
        computed once per distinct image, shared by the rows that show it."""
        inputs = {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "image_grid_thw": self.image_grid_thw,
            "mm_token_type_ids": self.mm_token_type_ids,
        }
        if self.packed:
            from ovr.models.attention import segment_kwargs
            from ovr.rl.packed import fill_rope

            if self.pending_rope:
                backbone = getattr(model, "backbone", None) or model.model  # critic or policy
                fill_rope(self, backbone.get_rope_index, int(model.config.image_token_id))
            inputs |= {"position_ids": self.position_ids, **segment_kwargs(self.seq_lens, self.input_ids.device)}
        self.anchor = self._dummy_vision(model) if self.dummy_vision and self.pixel_values is None else 0.0
        if self.pixel_values is not None:
            from transformers.modeling_outputs import BaseModelOutputWithPooling

            feats = model.get_image_features(
                self.pixel_values, self.unique_grid_thw, return_dict=True, **self.vision_kwargs
            ).pooler_output
            per_row = tuple(feats[j] for row in self.row_images for j in row)
            inputs["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(pooler_output=per_row)}
        return inputs


def encode_prompt(processor, sample: Sample, server_ids: list[int] | None = None) -> EncodedPrompt:
    """Tokenise ``sample``'s prompt (with the generation prompt) and preprocess its images."""
    from ovr.models.chat import hf_messages, pil_images

    text = processor.apply_chat_template(hf_messages(sample), add_generation_prompt=True, tokenize=False)
    images = pil_images(sample)
    out = processor(text=[text], images=images or None, return_tensors="pt")
    ids = out["input_ids"][0].tolist()
    if server_ids and server_ids != ids:
        image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        if server_ids.count(image_id) != ids.count(image_id):
            raise ValueError(
                f"sample {sample.id}: the rollout server's prompt has {server_ids.count(image_id)} image "
                f"tokens, the processor's {ids.count(image_id)}; the two sides use different image settings"
            )
        ids = list(server_ids)
    return EncodedPrompt(ids, out.get("pixel_values"), out.get("image_grid_thw"))


def build_batch(prompts: list[EncodedPrompt], responses: list[list[int]], pad_id: int, image_token_id: int) -> SeqBatch:
    """Concatenate prompt and response ids per row, right-pad, stack images in row order.

    A sampled ``<|image_pad|>`` inside a response has no image behind it: it enters the model as
    the pad token (its own log-prob is still read for the sampled id).
    """
    if len(prompts) != len(responses):
        raise ValueError("one prompt per response is required")
    rows = [p.input_ids + [pad_id if t == image_token_id else t for t in r] for p, r in zip(prompts, responses)]
    L = max(len(r) for r in rows)
    T = max(1, max(len(r) for r in responses))
    B = len(rows)
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    attention = torch.zeros((B, L), dtype=torch.long)
    resp = torch.full((B, T), pad_id, dtype=torch.long)
    rmask = torch.zeros((B, T))
    positions = torch.zeros((B, T), dtype=torch.long)
    index_rows, index_cols = [], []
    for b, (p, r) in enumerate(zip(prompts, responses)):
        index_rows += [b] * len(r)
        index_cols += range(len(r))
        n = len(rows[b])
        input_ids[b, :n] = torch.tensor(rows[b])
        attention[b, :n] = 1
        if r:
            resp[b, : len(r)] = torch.tensor(r)
            rmask[b, : len(r)] = 1
        P = len(p.input_ids)
        positions[b] = (P - 1 + torch.arange(T)).clamp(max=L - 1)
    return SeqBatch(
        input_ids=input_ids,
        attention_mask=attention,
        mm_token_type_ids=(input_ids == image_token_id).long(),
        **row_images(prompts),
        response_ids=resp,
        response_mask=rmask,
        positions=positions,
        response_index=torch.tensor([index_rows, index_cols], dtype=torch.long).reshape(2, -1),
    )


def row_images(prompts: list[EncodedPrompt]) -> dict:
    """The images of the rows' prompts, each distinct prompt's once (``SeqBatch`` image fields)."""
    distinct: dict[int, int] = {}  # id(prompt) -> first image index among the distinct prompts
    pix, ugrid, rows, grid = [], [], [], []
    for p in prompts:
        if p.image_grid_thw is None:
            rows.append([])
            continue
        if id(p) not in distinct:
            distinct[id(p)] = sum(len(g) for g in ugrid)
            pix.append(p.pixel_values)
            ugrid.append(p.image_grid_thw)
        first = distinct[id(p)]
        rows.append(list(range(first, first + len(p.image_grid_thw))))
        grid.append(p.image_grid_thw)
    return {
        "pixel_values": torch.cat(pix) if pix else None,
        "unique_grid_thw": torch.cat(ugrid) if ugrid else None,
        "image_grid_thw": torch.cat(grid) if grid else None,
        "row_images": rows,
    }


def to_device(batch: SeqBatch, device: torch.device | str, dtype: torch.dtype | None = None) -> SeqBatch:
    """The batch's tensors on ``device`` (pixel values also cast to ``dtype``)."""
    from dataclasses import fields, replace

    moved = {}
    for f in fields(batch):
        t = getattr(batch, f.name)
        if isinstance(t, torch.Tensor) and f.name != "anchor":
            cast = f.name == "pixel_values" and dtype is not None
            moved[f.name] = t.to(device=device, dtype=dtype) if cast else t.to(device)
    return replace(batch, **moved, anchor=0.0)


def _gather_positions(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``x[b, positions[b, t], ...]`` for every ``b, t``."""
    idx = positions
    if x.dim() == 3:
        idx = positions[..., None].expand(-1, -1, x.shape[-1])
    return torch.gather(x, 1, idx)


def policy_logprobs(
    model,
    batch: SeqBatch,
    temperature: float = 1.0,
    with_entropy: bool = False,
    entropy_grad: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs ``[B, T]`` (fp32) of the response tokens under ``model``, and their entropy.

    Only the response positions' hidden states reach the LM head, ``chunk_size`` tokens at a time
    (:mod:`ovr.models.lm_head`): no ``[B, L, V]`` logits. The entropy is a detached metric unless
    ``entropy_grad`` (an entropy bonus). Padding positions hold 0 in both.
    """
    with capture_head_input(model):
        out = model(**batch.model_inputs(model), use_cache=False)
    head_in: HeadInput = out["head_input"]
    rows, cols = batch.response_index
    hidden = head_in.hidden[batch.hidden_rows(rows), batch.positions[rows, cols]]  # [N, H]
    logp, entropy = token_logprobs(
        head_in.head,
        hidden,
        batch.response_ids[rows, cols],
        temperature=temperature,
        chunk_size=chunk_size,
        with_entropy=with_entropy,
        entropy_grad=entropy_grad,
    )
    shape = batch.response_mask.shape

    def spread(v: torch.Tensor) -> torch.Tensor:
        return torch.zeros(shape, dtype=v.dtype, device=v.device).index_put((rows, cols), v)

    return spread(logp) + batch.anchor, (spread(entropy) if entropy is not None else None)


def policy_logprobs_full(
    model, batch: SeqBatch, temperature: float = 1.0, with_entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The full-vocabulary computation: every position's logits, upcast, ``log_softmax``, entropy
    under autograd. The reference :func:`policy_logprobs` is tested against, and the "old" path
    of ``bench/memory.py``; not for training a large model."""
    from ovr.rl.algorithms import entropy_from_logits

    if batch.packed:
        raise ValueError("policy_logprobs_full takes right-padded batches (build_batch)")
    out = model(**batch.model_inputs(model), use_cache=False)
    logits = _gather_positions(out.logits, batch.positions).float()
    if temperature != 1.0:
        logits = logits / temperature
    logp = torch.log_softmax(logits, dim=-1).gather(-1, batch.response_ids[..., None]).squeeze(-1)
    entropy = entropy_from_logits(logits) if with_entropy else None
    return logp * batch.response_mask, entropy


def critic_values(critic, batch: SeqBatch) -> torch.Tensor:
    """Values ``[B, T]``: the critic's value of the state before each response token (the value
    head runs on the response positions only: packed, on the real response tokens only)."""
    if not batch.packed:
        values = critic(**batch.model_inputs(critic), positions=batch.positions)
        return values * batch.response_mask + batch.anchor
    rows, cols = batch.response_index
    v = critic(**batch.model_inputs(critic), positions=batch.positions[rows, cols][None])[0]
    values = torch.zeros(batch.response_mask.shape, dtype=v.dtype, device=v.device).index_put((rows, cols), v)
    return values + batch.anchor
