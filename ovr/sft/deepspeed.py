"""DeepSpeed ZeRO configs generated from the recipe, and the single-process setup used on CPU.

Batch sizes, learning rate, betas, clipping and precision are left as ``"auto"``: the Trainer
fills them from its arguments (themselves from ``SFTConfig``), so the numbers live in one place.
The optimizer is DeepSpeed's AdamW with ``torch_adam`` (PyTorch's implementation), which needs no
JIT-compiled extension on either CPU or GPU.

On a cluster ``torchrun``/``deepspeed`` set ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``;
a single process (tests, a laptop) gets them from :func:`ensure_single_process_env`, and DeepSpeed
then runs ZeRO over gloo on the CPU.
"""

from __future__ import annotations

import os

from ovr.config import RunConfig
from ovr.distributed import ensure_single_process_env  # noqa: F401  (re-exported for the SFT stage)


def deepspeed_config(cfg: RunConfig) -> dict | None:
    """The DeepSpeed config of ``cfg.sft.zero_stage`` (None for stage 0: plain DDP/CPU)."""
    stage = cfg.sft.zero_stage
    if stage == 0:
        return None
    zero: dict = {
        "stage": stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": "auto",
    }
    if stage == 3:
        zero.update(
            {
                "stage3_prefetch_bucket_size": "auto",
                "stage3_param_persistence_threshold": "auto",
                "stage3_max_live_parameters": 1_000_000_000,
                "stage3_max_reuse_distance": 1_000_000_000,
                # the export must be one consolidated state dict that vLLM and the Auto classes load
                "stage3_gather_16bit_weights_on_model_save": True,
            }
        )
    return {
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "train_batch_size": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "zero_optimization": zero,
        "optimizer": {
            "type": "AdamW",
            "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto", "torch_adam": True},
        },
        "steps_per_print": 1_000_000,
        "wall_clock_breakdown": False,
    }


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))
