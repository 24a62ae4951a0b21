"""Chunked log-probs from hidden states equal the full-logits computation: values, gradients,
entropy; the critic's response-position values equal the per-position ones; no ``[B, L, V]``
tensor is ever made; tiled MLPs change nothing; two ZeRO-3 ranks stay in step (fp32, tiny
Qwen2.5-VL with images)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ovr.models.lm_head import capture_head_input, token_logprobs
from ovr.rl.forward import build_batch, critic_values, encode_prompt, policy_logprobs, policy_logprobs_full
from ovr.serving import free_port

CHUNKS = [1, 3, 7, 1024]  # 3 and 7 do not divide the 15 response tokens below


class LargestVocabTensor(TorchDispatchMode):
    """Records the most rows of any newly allocated tensor (not an alias of an input, such as the
    head's transposed weight) whose last axis is the vocabulary."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab, self.rows = vocab, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr()
            for t in torch.utils._pytree.tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor)
        }
        for t in torch.utils._pytree.tree_leaves(out):
            if (
                isinstance(t, torch.Tensor)
                and t.dim() >= 1
                and t.shape[-1] == self.vocab
                and t.untyped_storage().data_ptr() not in inputs
            ):
                self.rows = max(self.rows, t.numel() // self.vocab)
        return out


@pytest.fixture()
def batch(processor, visual):
    tok = processor.tokenizer
    pad_id, image_id = tok.pad_token_id, tok.convert_tokens_to_ids("<|image_pad|>")
    prompts = [encode_prompt(processor, s) for s in visual[:2]]
    responses = [[40, 41, 42, 43, 44, 45, 46], [50, 51], [60, 61, 62, 63, 64, 65]]  # 15 tokens
    b = build_batch([prompts[0], prompts[0], prompts[1]], responses, pad_id, image_id)
    assert torch.equal(b.response_index, b.response_mask.nonzero().T)
    return b


def _grads(model) -> dict[str, torch.Tensor]:
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


def _assert_same_grads(a: dict, b: dict):
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5, rtol=1e-4), name


def test_token_logprobs_equal_log_softmax_for_any_chunk_and_temperature():
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=False)
    hidden = torch.randn(11, 16, requires_grad=True)
    targets = torch.randint(0, 50, (11,))
    weights = torch.randn(11)
    for temperature in (1.0, 0.7):
        z = head(hidden) / temperature
        ref = torch.log_softmax(z, -1).gather(-1, targets[:, None]).squeeze(-1)
        ref_ent = torch.logsumexp(z, -1) - (z.softmax(-1) * z).sum(-1)
        (ref * weights + ref_ent).sum().backward()
        ref_grads = (hidden.grad.clone(), head.weight.grad.clone())
        for chunk in (1, 4, 5, 11, 64):
            hidden.grad = head.weight.grad = None
            lp, ent = token_logprobs(
                head, hidden, targets, temperature=temperature, chunk_size=chunk, with_entropy=True, entropy_grad=True
            )
            assert torch.allclose(lp, ref, atol=1e-6) and torch.allclose(ent, ref_ent, atol=1e-5)
            (lp * weights + ent).sum().backward()
            assert torch.allclose(hidden.grad, ref_grads[0], atol=1e-6)
            assert torch.allclose(head.weight.grad, ref_grads[1], atol=1e-6)
        hidden.grad = head.weight.grad = None
    _, metric = token_logprobs(head, hidden, targets, with_entropy=True)
    assert not metric.requires_grad
    with pytest.raises(ValueError, match=r"\[N, H\]"):
        token_logprobs(head, hidden[None], targets)


def test_chunked_policy_logprobs_and_gradients_equal_full_logits(actor, batch):
    adv = torch.randn(batch.response_mask.shape, generator=torch.Generator().manual_seed(1))
    ref, ref_ent = policy_logprobs_full(actor, batch, temperature=0.8, with_entropy=True)
    (ref * adv).sum().backward()
    ref_grads = _grads(actor)
    mask = batch.response_mask.bool()
    for chunk in CHUNKS:
        logp, ent = policy_logprobs(actor, batch, temperature=0.8, with_entropy=True, chunk_size=chunk)
        assert logp.dtype == torch.float32 and logp.shape == ref.shape
        assert torch.allclose(logp, ref.detach(), atol=1e-5)
        assert torch.allclose(ent[mask], ref_ent.detach()[mask], atol=1e-5)
        assert not ent.requires_grad and (ent[~mask] == 0).all()
        (logp * adv).sum().backward()
        _assert_same_grads(_grads(actor), ref_grads)


def test_entropy_with_grad_equals_full_entropy_gradient(actor, batch):
    mask = batch.response_mask
    _, ref_ent = policy_logprobs_full(actor, batch, with_entropy=True)
    (ref_ent * mask).sum().backward()
    ref_grads = _grads(actor)
    _, ent = policy_logprobs(actor, batch, with_entropy=True, entropy_grad=True, chunk_size=4)
    assert ent.requires_grad
    (ent * mask).sum().backward()
    _assert_same_grads(_grads(actor), ref_grads)


def test_no_tensor_spans_the_sequence_times_the_vocabulary(actor, batch):
    vocab = actor.config.text_config.vocab_size
    seen = LargestVocabTensor(vocab)
    with seen:
        logp, _ = policy_logprobs(actor, batch, with_entropy=True, chunk_size=4)
        logp.sum().backward()
    assert 0 < seen.rows <= 4  # one chunk's logits at a time, forward and backward
    with capture_head_input(actor):
        out = actor(**batch.model_inputs(actor), use_cache=False)
    assert out.logits.shape[1] == 0 and out["head_input"].hidden.shape[:2] == batch.input_ids.shape


def test_critic_values_at_response_positions_equal_per_position_values(tiny_model_dir, batch):
    from ovr.models.critic import Critic

    critic = Critic.from_policy(tiny_model_dir, init_range=5**0.5, seed=0)
    every = critic(**batch.model_inputs(critic))
    assert every.shape == batch.input_ids.shape
    expected = torch.gather(every, 1, batch.positions) * batch.response_mask
    assert torch.allclose(critic_values(critic, batch), expected, atol=1e-6)


def test_tiled_mlps_change_no_value_or_gradient(actor, batch):
    from ovr.models.tiling import tile_mlps, untile_mlps

    adv = torch.randn(batch.response_mask.shape, generator=torch.Generator().manual_seed(2))
    ref, _ = policy_logprobs(actor, batch)
    (ref * adv).sum().backward()
    ref_grads = _grads(actor)
    layers = actor.config.text_config.num_hidden_layers
    assert tile_mlps(actor, tile_tokens=5) == layers  # the decoder's MLPs, not the vision tower's
    assert tile_mlps(actor, tile_tokens=7) == layers  # re-tiling replaces, does not nest
    logp, _ = policy_logprobs(actor, batch)
    assert torch.allclose(logp, ref.detach(), atol=1e-5)
    (logp * adv).sum().backward()
    _assert_same_grads(_grads(actor), ref_grads)
    assert untile_mlps(actor) == layers and "forward" not in vars(actor.model.language_model.layers[0].mlp)
    with pytest.raises(ValueError, match="no gated MLP"):
        tile_mlps(actor, under="no_such_module")


@pytest.mark.slow
def test_two_zero3_ranks_with_different_token_counts_agree_with_full_logits(tiny_model_dir, tmp_path):
    """Two real ranks (torchrun, gloo, DeepSpeed ZeRO-3 on CPU): every LM-head chunk and MLP tile
    all-gathers weights, so unsynced counts would mismatch the collectives."""
    worker = Path(__file__).with_name("zero3_forward_worker.py")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    out = tmp_path / "result"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        str(free_port()),
        str(worker),
        str(tiny_model_dir),
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        result = json.loads(Path(f"{out}.{rank}").read_text())
        assert result["max_abs_diff"] < 1e-5 and result["entropy_finite"]
