"""One trainable model with its optimiser: plain PyTorch (CPU, one process) or DeepSpeed ZeRO.

Both give the trainer the same calls: ``module`` (forward), ``backward(loss, last)`` (gradients
accumulate until ``step``; ``last`` marks the final micro-batch before it), ``step()`` (clip,
optimiser step, schedule; returns the grad norm), ``save_optim(dir)`` / ``load_optim(dir)`` of the
optimiser and schedule, and ``weights(model)`` (its full weights, gathered a layer at a time under
ZeRO-3: :class:`ovr.rl.gathered.GatheredWeights`). The schedule is the recipe's, one definition for
both engines (:func:`warmup_constant`): linear warm-up, then constant.
"""

from __future__ import annotations

import torch
from torch import nn


def warmup_constant(warmup_steps: int):
    """LR multiplier of update ``s`` (from 0): ``(s + 1) / warmup`` for the first ``warmup`` updates,
    then 1 — the first update already learns (a multiplier of 0 would waste a step's rollouts).

    >>> [warmup_constant(4)(s) for s in range(5)]
    [0.25, 0.5, 0.75, 1.0, 1.0]
    """
    return lambda s: min(1.0, (s + 1) / warmup_steps) if warmup_steps > 0 else 1.0


def warmup_scheduler(warmup_steps: int):
    """``optimizer -> LambdaLR`` of :func:`warmup_constant` (DeepSpeed takes this callable too)."""
    return lambda optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_constant(warmup_steps))


def param_groups(module: nn.Module, lr: float, vision_lr: float | None = None) -> list[dict]:
    """The optimiser's parameter groups: the trainable parameters at ``lr``, those of the vision tower
    and merger (``*.visual.*``) at ``vision_lr`` when it is set (0 freezes them: they leave the
    optimiser and stop taking gradients). Groups in module order, empty ones left out.
    """
    if vision_lr is None:
        return [{"params": [p for p in module.parameters() if p.requires_grad], "lr": lr}]
    text, vision = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        if "visual" in name.split("."):
            if vision_lr == 0:
                p.requires_grad_(False)
                continue
            vision.append(p)
        else:
            text.append(p)
    if vision_lr and not vision:
        raise ValueError("rl.vision_lr is set but the policy has no vision parameters (model.visual)")
    groups = [{"params": text, "lr": lr}] + ([{"params": vision, "lr": vision_lr}] if vision else [])
    return [g for g in groups if g["params"]]


class TorchEngine:
    """AdamW + warm-up/constant schedule on one process."""

    def __init__(
        self,
        module: nn.Module,
        lr: float,
        betas: tuple[float, float],
        weight_decay: float,
        warmup_steps: int,
        grad_clip: float,
        vision_lr: float | None = None,
    ):
        self.module = module
        groups = param_groups(module, lr, vision_lr)
        self.optimizer = torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
        self.scheduler = warmup_scheduler(warmup_steps)(self.optimizer)
        self.grad_clip = grad_clip

    def backward(self, loss: torch.Tensor, last: bool = True) -> None:
        loss.backward()

    def step(self) -> float:
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        norm = torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    @property
    def lr(self) -> float:
        return self.lrs[0]

    @property
    def lrs(self) -> list[float]:
        """The current rate of each parameter group (:func:`param_groups`' order)."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def save_optim(self, folder) -> None:
        """Optimiser and schedule state into ``folder/optim.pt``."""
        from pathlib import Path

        Path(folder).mkdir(parents=True, exist_ok=True)
        torch.save(
            {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()},
            Path(folder) / "optim.pt",
        )

    def load_optim(self, folder) -> None:
        from pathlib import Path

        state = torch.load(Path(folder) / "optim.pt", weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def weights(self, model, grouping=None):
        """``model``'s full weights for a push or a checkpoint (iterate on every rank under ZeRO-3)."""
        from ovr.rl.gathered import GatheredWeights, layer_groups

        return GatheredWeights(model, zero3=getattr(self, "zero_stage", 0) == 3, grouping=grouping or layer_groups)


class DeepSpeedEngine(TorchEngine):
    """The same calls over ``deepspeed.initialize`` (ZeRO stage 2 or 3, bf16 on GPU).

    Every rank must call ``module`` forward/backward and ``step`` in lockstep, and iterate
    ``weights(...)`` together (ZeRO-3 gathers are collectives).
    """

    def __init__(
        self,
        module: nn.Module,
        lr: float,
        betas: tuple[float, float],
        weight_decay: float,
        warmup_steps: int,
        grad_clip: float,
        zero_stage: int,
        micro_batch: int,
        bf16: bool,
        vision_lr: float | None = None,
    ):
        import deepspeed

        config = {
            "train_micro_batch_size_per_gpu": micro_batch,
            "gradient_accumulation_steps": 1,  # boundaries are marked per call (backward's `last`)
            "data_types": {"grad_accum_dtype": "fp32"},
            "gradient_clipping": grad_clip,
            "zero_optimization": {"stage": zero_stage, "stage3_gather_16bit_weights_on_model_save": True},
            "bf16": {"enabled": bf16},
            "optimizer": {
                "type": "AdamW",
                "params": {"lr": lr, "betas": list(betas), "weight_decay": weight_decay, "torch_adam": True},
            },
            "zero_allow_untested_optimizer": True,
        }
        groups = param_groups(module, lr, vision_lr)  # a group's own lr wins over the config's
        engine, optimizer, _, scheduler = deepspeed.initialize(
            model=module, model_parameters=groups, config=config, lr_scheduler=warmup_scheduler(warmup_steps)
        )
        self.ds = engine
        self.module = engine.module
        self.optimizer = optimizer
        self.scheduler = scheduler  # stepped by DeepSpeed inside ds.step()
        self.zero_stage = zero_stage

    def backward(self, loss: torch.Tensor, last: bool = True) -> None:
        # The loss is already scaled by the trainer. Gradients accumulate across our micro-batches:
        # the boundary (reduction, optimiser step) is the last one, and ZeRO-3 counts micro-steps in
        # DeepSpeed's own forward, which our calls of `module` bypass, so the count is advanced here.
        self.ds.set_gradient_accumulation_boundary(last)
        self.ds.backward(loss, scale_wrt_gas=False)
        if hasattr(self.ds.optimizer, "clear_backward_seen_flag"):
            self.ds.optimizer.clear_backward_seen_flag()

    def step(self) -> float:
        self.ds.step()
        norm = self.ds.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    @property
    def lrs(self) -> list[float]:
        return [float(lr) for lr in self.ds.get_lr()]

    def save_optim(self, folder) -> None:
        """DeepSpeed's own (partitioned) checkpoint of weights, optimiser and schedule (collective)."""
        self.ds.save_checkpoint(str(folder), tag="ds")

    def load_optim(self, folder) -> None:
        """DeepSpeed's checkpoint of this rank: optimiser, schedule and the weights (ZeRO restores
        them from the float32 master partitions). Each file is memory-mapped: its pages are the
        file's (page cache the kernel can drop), not a host copy of the partition per rank."""
        engine = self.ds.checkpoint_engine
        engine.load = _mapped_load
        try:
            path, _ = self.ds.load_checkpoint(str(folder), tag="ds")
        finally:
            del engine.load  # the class's own again
        if path is None:
            raise FileNotFoundError(f"no DeepSpeed checkpoint in {folder}")


def _mapped_load(path: str, map_location=None):
    """``torch.load`` of a DeepSpeed checkpoint file, memory-mapped (a file in torch's legacy format,
    which cannot be mapped, is read whole)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=False, mmap=True)
    except RuntimeError as err:
        if "mmap" not in str(err):
            raise
        return torch.load(path, map_location=map_location, weights_only=False)


def make_engine(module: nn.Module, *, lr: float, rl, device: str, world: int = 1, vision_lr: float | None = None):
    """The engine the recipe asks for (``rl.zero_stage``: 0 = plain PyTorch, one process only), with
    gradient checkpointing (``rl.gradient_checkpointing``) and tiled MLPs (``rl.mlp_tile_tokens``);
    ``vision_lr``: the vision tower's own rate (:func:`param_groups`)."""
    if rl.gradient_checkpointing:
        target = getattr(module, "backbone", module)  # the critic checkpoints its backbone
        target.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if rl.mlp_tile_tokens:
        from ovr.models.tiling import tile_mlps

        tile_mlps(module, rl.mlp_tile_tokens)
    common = dict(
        lr=lr,
        betas=rl.adam_betas,
        weight_decay=rl.weight_decay,
        warmup_steps=rl.warmup_steps,
        grad_clip=rl.grad_clip,
        vision_lr=vision_lr,
    )
    if rl.zero_stage == 0:
        if world > 1:
            raise ValueError("rl.zero_stage=0 trains in one process; with several ranks use ZeRO (2 or 3)")
        return TorchEngine(module, **common)
    from ovr.distributed import ensure_single_process_env

    ensure_single_process_env()
    # batch sizes vary by token budget; DeepSpeed's per-GPU micro-batch size is only bookkeeping here
    return DeepSpeedEngine(module, **common, zero_stage=rl.zero_stage, micro_batch=1, bf16=device == "cuda")
