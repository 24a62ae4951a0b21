"""The PPO critic: a Qwen2.5-VL backbone (same init as the policy) + a scalar value head.

Open-Reasoner-Zero / OVR describe the value head init as "U(-sqrt5, sqrt5), no bias": their critic
is a bias-free ``nn.Linear`` left at PyTorch's default init, ``kaiming_uniform_(a=sqrt(5))``, i.e.
``U(-1/sqrt(hidden), 1/sqrt(hidden))`` (a literal U(-2.24, 2.24) on 3584 features would start
the values in the hundreds). ``a = cfg.rl.value_head_init``. The critic reads one value per position from the backbone's
last hidden state; the trainer asks for the values at the positions that predict response tokens only.

>>> critic = Critic.from_policy(".ovr/models/tiny", init_range=5 ** 0.5, seed=0)   # doctest: +SKIP
>>> critic(input_ids, attention_mask).shape                                        # doctest: +SKIP
torch.Size([B, L])
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ovr.models.attention import CONFIG_NAME, attach, resolve

WEIGHTS = "critic.safetensors"
CONFIG = "config.json"
HEAD_INFO = "value_head.json"


class Critic(nn.Module):
    def __init__(self, backbone: nn.Module, hidden_size: int):
        super().__init__()
        self.backbone = backbone
        self.value_head = nn.Linear(hidden_size, 1, bias=False)

    @property
    def config(self):
        return self.backbone.config

    def init_value_head(self, init_range: float, seed: int) -> None:
        """``kaiming_uniform_(a=init_range)`` (PyTorch's Linear default for a = sqrt(5)),
        deterministic for ``seed``."""
        gen = torch.Generator().manual_seed(seed)
        w = torch.empty(self.value_head.weight.shape)
        nn.init.kaiming_uniform_(w, a=init_range, generator=gen)
        with torch.no_grad():
            self.value_head.weight.copy_(w.to(self.value_head.weight))

    @classmethod
    def from_policy(
        cls,
        path: str | Path,
        *,
        init_range: float,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        attn_implementation: str = CONFIG_NAME,
    ) -> Critic:
        """Backbone from a policy checkpoint (its LM head dropped), fresh value head; the attention
        is the policy's (``model.attn_implementation``: padding-free by default)."""
        from transformers import AutoModelForImageTextToText

        policy = AutoModelForImageTextToText.from_pretrained(
            str(path), dtype=dtype, attn_implementation=resolve(attn_implementation)
        )
        critic = cls(policy.model, policy.config.text_config.hidden_size).to(dtype)
        critic.init_value_head(init_range, seed)
        return attach(critic)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        mm_token_type_ids: torch.Tensor | None = None,
        mm_encoder_outputs: dict | None = None,
        positions: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """Values ``[B, L]`` (one per position), or ``[B, T]`` at ``positions`` (``[B, T]`` indices:
        the value head then runs on those hidden states only); precomputed vision features may come
        in ``mm_encoder_outputs`` instead of ``pixel_values``. ``position_ids`` and ``kwargs`` (a
        packed batch's segments, :mod:`ovr.models.attention`) go to the backbone as they are."""
        out = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            pixel_values=pixel_values,
            image_grid_thw=image_grid_thw,
            mm_token_type_ids=mm_token_type_ids,
            mm_encoder_outputs=mm_encoder_outputs,
            position_ids=position_ids,
            use_cache=False,
            **kwargs,
        )
        hidden = out.last_hidden_state
        if positions is not None:
            hidden = torch.gather(hidden, 1, positions[..., None].expand(-1, -1, hidden.shape[-1]))
        return self.value_head(hidden).squeeze(-1).float()

    def get_image_features(self, pixel_values, image_grid_thw, **kw):
        """The backbone's vision features (shared across the rows of one prompt)."""
        return self.backbone.get_image_features(pixel_values, image_grid_thw, **kw)

    # ------------------------------------------------------------------ persistence
    def save(self, out_dir: str | Path, state_dict: dict | None = None) -> Path:
        """``config.json`` (the backbone's) + ``critic.safetensors`` (backbone and head);
        ``state_dict`` overrides the module's own (gathered ZeRO-3 weights)."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.backbone.config.save_pretrained(out)
        state = {k: v.detach().contiguous().cpu() for k, v in (state_dict or self.state_dict()).items()}
        save_file(state, str(out / WEIGHTS))
        (out / HEAD_INFO).write_text(json.dumps({"hidden_size": self.value_head.in_features, "bias": False}))
        return out

    @classmethod
    def load(
        cls,
        path: str | Path,
        dtype: torch.dtype = torch.float32,
        attn_implementation: str = CONFIG_NAME,
        device: str | torch.device = "cpu",
        weights: bool = True,
    ) -> Critic:
        """A saved critic built in ``dtype`` directly on ``device`` and filled one tensor at a time:
        the memory of one model in ``dtype`` on ``device``, no float32 copy and no copy on the host.
        ``weights=False`` leaves the weights unset, for an engine that restores them itself (a
        DeepSpeed resume reads them from its own partitions). Attention as in :meth:`from_policy`."""
        from transformers import AutoConfig, Qwen2_5_VLModel
        from transformers.initialization import no_init_weights

        path = Path(path)
        if weights and not (path / WEIGHTS).is_file():
            raise FileNotFoundError(f"no critic weights at {path / WEIGHTS}")
        config = AutoConfig.from_pretrained(str(path))
        info = json.loads((path / HEAD_INFO).read_text())
        with torch.device(device), no_init_weights():  # allocated, never initialised: filled below
            backbone = Qwen2_5_VLModel._from_config(
                config, dtype=dtype, attn_implementation=resolve(attn_implementation)
            )
            critic = cls(backbone, info["hidden_size"])
        critic.to(dtype)  # the head and the floating buffers, as from_policy has them (the weights are already)
        if weights:
            critic.fill(path / WEIGHTS)
        return attach(critic)

    def fill(self, file: str | Path) -> None:
        """Copy a saved ``critic.safetensors`` into this critic one tensor at a time, each converted
        to the critic's dtype and device as it is read (the host holds one tensor, never the file);
        every tensor must match."""
        from ovr.models.tensor_file import read_tensors, tensor_index

        own = self.state_dict()
        keys = set(tensor_index(file)[1])
        missing, unexpected = sorted(set(own) - keys), sorted(keys - set(own))
        if missing or unexpected:
            raise ValueError(
                f"critic checkpoint {file} does not fit: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        with torch.no_grad():
            for name, tensor in read_tensors(file):
                own[name].copy_(tensor)
