"""One rank of the 2-rank ZeRO-3 forward test (run by torchrun from test_forward_chunked.py).

Each rank scores its own rows, of a different token count than the other rank's, so the LM-head
chunks and MLP tiles differ per rank unless their counts are synced; the log-probs must equal the
full-logits ones of the unpartitioned model, and a backward + step must complete on both ranks.
"""

from __future__ import annotations

import json
import sys

import deepspeed
import torch
import torch.distributed as dist
from transformers import AutoModelForImageTextToText

from ovr.models.tiling import tile_mlps
from ovr.rl.forward import EncodedPrompt, build_batch, policy_logprobs, policy_logprobs_full


def main(model_dir: str, out: str) -> None:
    deepspeed.init_distributed(dist_backend="gloo")
    rank = dist.get_rank()
    prompt = EncodedPrompt([20, 21, 22, 23, 24, 25], None, None)
    lengths = [[5, 9, 2], [20, 1]][rank]  # 16 vs 21 response tokens
    batch = build_batch([prompt] * len(lengths), [[30 + i for i in range(n)] for n in lengths], 0, 10**6)
    reference, _ = policy_logprobs_full(AutoModelForImageTextToText.from_pretrained(model_dir), batch)

    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    tile_mlps(model, tile_tokens=4)
    config = {
        "train_micro_batch_size_per_gpu": 1,
        "zero_optimization": {"stage": 3},
        "optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "torch_adam": True}},
        "zero_allow_untested_optimizer": True,
    }
    engine, *_ = deepspeed.initialize(model=model, model_parameters=list(model.parameters()), config=config)
    assert hasattr(engine.module.lm_head.weight, "ds_id")  # partitioned
    logp, entropy = policy_logprobs(engine.module, batch, with_entropy=True, chunk_size=3)
    engine.backward(-logp.sum())
    engine.step()
    result = {
        "max_abs_diff": float((logp.detach() - reference.detach()).abs().max()),
        "entropy_finite": bool(torch.isfinite(entropy).all()),
    }
    with open(f"{out}.{rank}", "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])
