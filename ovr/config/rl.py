"""The RL section: multimodal RL with verifiable rewards, resolved from its algorithm preset at load.

Override semantics: ``rl.algorithm`` names a preset (ovr/config/algorithms.py) that fills every field
the recipe and the overrides leave unset; what they set explicitly wins (``--set rl.algorithm=dapo
--set rl.clip_high=0.3`` is DAPO with a wider upper clip). An explicit field that contradicts the
algorithm fails to load, naming both and the fix: an estimator other than the preset's
(``algorithm: grpo`` with ``advantage: gae``), critic updates for an estimator that reads no values, a
reward-side KL for an estimator without token rewards. ``algorithm: custom`` fills nothing. A critic
is built exactly when the estimator reads values.

>>> RLConfig(algorithm="grpo").advantage, RLConfig(algorithm="grpo").critic_updates
('grpo', 0)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ovr.config.algorithms import ESTIMATORS, LOSS_AGGS, PRESETS, estimator_of
from ovr.config.infra import _Section, registered


class LengthStage(_Section):
    """One stage of the staged max response length."""

    from_step: int = Field(..., ge=0, description="First RL step of the stage.")
    max_tokens: int = Field(..., ge=1, description="Max response tokens from that step on.")


class RLConfig(_Section):
    """Multimodal RL with verifiable rewards (the paper: ORZ-style vanilla PPO with a critic)."""

    algorithm: str = Field(
        "ppo",
        description="Preset (ovr/config/algorithms.py PRESETS) that fills the estimator, loss aggregation and "
        "the fields this section leaves unset: ppo, grpo, dapo, dr_grpo, rloo, reinforce_pp, custom (fills nothing).",
    )
    advantage: str = Field(
        "gae", description="Advantage estimator (ovr/config/algorithms.py ESTIMATORS); set by the preset."
    )
    loss_agg: str = Field(
        "token_mean", description="Token-loss reduction (ovr/config/algorithms.py LOSS_AGGS); set by the preset."
    )
    adv_norm: Literal["batch", "group", "none"] = Field("batch", description="Advantage normalisation.")
    gamma: float = Field(1.0, ge=0, le=1, description="GAE discount.")
    lam: float = Field(1.0, ge=0, le=1, description="GAE lambda.")
    clip_low: float = Field(0.2, gt=0, description="PPO ratio clip below 1 (epsilon_low).")
    clip_high: float = Field(0.2, gt=0, description="PPO ratio clip above 1 (epsilon_high; DAPO: 0.28).")
    value_clip: float | None = Field(0.2, gt=0, description="Value clipping range; None disables.")
    kl_reward_coef: float = Field(
        0.0,
        ge=0,
        description="Reward-side KL: coef * (log pi - log ref) subtracted from each token's "
        "reward before advantages (token-reward estimators: gae, reinforce_pp). 0 = off.",
    )
    kl_loss_coef: float = Field(
        0.0,
        ge=0,
        description="Loss-side KL: coef * k3(pi || ref) added to the policy loss (GRPO style). "
        "0 = off; a reference model is loaded when either KL coefficient is > 0.",
    )
    entropy_coef: float = Field(0.0, ge=0, description="Entropy bonus.")
    actor_lr: float = Field(1e-6, gt=0, description="Policy learning rate.")
    critic_lr: float = Field(5e-6, gt=0, description="Critic learning rate.")
    vision_lr: float | None = Field(
        None,
        ge=0,
        description="Learning rate of the policy's vision tower and merger (model.visual): None = actor_lr; "
        "0 freezes them (no gradients, no optimiser state; EasyR1's freeze_vision_tower). A higher rate lets a "
        "tower that still has to learn to see (the tiny model's, initialised at random) learn faster than the "
        "language model's format can bear; the rate follows the same warm-up.",
    )
    adam_betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW betas (both models).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_steps: int = Field(50, ge=0, description="Linear warm-up steps, then constant.")
    grad_clip: float = Field(1.0, gt=0, description="Max global grad norm.")
    prompts_per_step: int = Field(512, ge=1, description="Prompts sampled per RL step.")
    samples_per_prompt: int = Field(16, ge=1, description="Responses per prompt (n).")
    policy_updates: int = Field(1, ge=1, description="Actor optimizer updates per generation.")
    critic_updates: int = Field(4, ge=0, description="Critic optimizer updates per generation.")
    max_tokens_per_micro: int | None = Field(
        None,
        ge=1,
        description="Token budget of one forward/backward pass per rank: rows (longest first) are "
        "packed padding-free into micro-batches of at most this many real tokens (prompt + response, "
        "image tokens included), a longer row alone; None = all of a rank's rows in one pass (tiny CPU runs).",
    )
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward (actor and critic).")
    mlp_tile_tokens: int | None = Field(
        None,
        ge=1,
        description="Run each decoder MLP over tiles of this many tokens, each checkpointed "
        "(ovr/models/tiling.py: the peak of a long sequence's backward); None = untiled.",
    )
    dist_timeout_s: float = Field(
        1800.0,
        gt=0,
        description="Timeout of the lockstep collectives of training (DeepSpeed's group and the CPU "
        "group's sums); long waits between ranks are polled instead (wait_timeout_s).",
    )
    wait_timeout_s: float = Field(
        4 * 3600.0,
        gt=0,
        description="Longest polled wait of a rank for the others (the main rank's rollouts, checkpoint "
        "uploads); past it the wait raises naming the late rank(s) and what they last reported.",
    )
    wait_poll_s: float = Field(
        2.0, gt=0, le=60, description="Period at which a waiting rank checks the run's key-value store."
    )
    max_steps: int = Field(900, ge=1, description="RL steps.")
    max_response_len_schedule: list[LengthStage] = Field(
        default_factory=lambda: [LengthStage(from_step=0, max_tokens=256)],
        description="Staged max response length; the stage with the largest from_step <= step applies.",
    )
    dynamic_sampling: bool = Field(
        False,
        description="DAPO dynamic sampling: drop groups whose rewards are all equal and sample more "
        "prompts until prompts_per_step informative groups are collected.",
    )
    max_generation_rounds: int = Field(
        3,
        ge=1,
        description="Most generation rounds of one step under dynamic_sampling (DAPO's "
        "max_num_gen_batches); the step trains on what it has after the last round.",
    )
    skip_uniform_batches: bool = Field(
        True, description="With a critic, skip the actor update of a batch whose responses all scored the same."
    )
    mask_truncated: bool = Field(
        False, description="Leave responses cut by the length limit out of the loss (DAPO overlong filtering)."
    )
    value_head_init: float = Field(
        5**0.5,
        gt=0,
        description="Critic value head (no bias) initialised kaiming_uniform(a=this): U(-b, b) with "
        "b = sqrt(6 / ((1 + a^2) * hidden)); the papers' 'U(-sqrt5, sqrt5)' is PyTorch's default "
        "Linear init, a = sqrt(5), i.e. b = 1/sqrt(hidden).",
    )
    max_staleness: int = Field(
        0,
        ge=0,
        le=16,
        description="Bounded-staleness async RL: 0 = synchronous (sample, score, train, push in turn); k >= 1 = a "
        "producer on the main rank generates and scores up to k steps ahead with the newest pushed weights while "
        "the ranks train (1 = one-step-off); no sample older than k policy versions (its oldest token's) trains.",
    )
    inflight_on_push: Literal["continue", "abort"] = Field(
        "continue",
        description="Async only: a weight push pauses the replicas in vLLM's keep mode and requests in flight "
        "continue on the new weights (their per-token behaviour log-probs keep the correction exact), or "
        "'abort': they are aborted and their missing responses sent again.",
    )
    is_correction: Literal["none", "tis", "icepop"] = Field(
        "none",
        description="Off-policy correction of the PPO loss by the behaviour policy (vLLM's per-token log-probs), "
        "AReaL's decoupled PPO (Fu et al. 2025, arXiv:2505.24298) with w = pi_old/pi_vllm per token: 'tis' "
        "truncates w at is_cap (Yao et al. 2025, 'Your efficient RL framework secretly brings you off-policy RL "
        "training'; verl's rollout_is), 'icepop' zeroes tokens with w outside [is_floor, is_cap] (IcePop, "
        "Ling team 2025); 'none' = plain PPO. Unset: 'icepop' when max_staleness > 0, else 'none': a token the "
        "last update moved far is left out rather than weighted up to is_cap. Where one update moves the policy a "
        "lot (the tiny recipe: 0.07-0.14 nats per token over its first 10 steps) TIS's capped weights repeated "
        "the move and async runs lost a task or their answer format; IcePop matched sync's learning over the same "
        "3 seeds (bench/async_seeds.py). Where steps are small both leave almost every token as it is.",
    )
    is_cap: float = Field(2.0, gt=1, description="Upper bound of the behaviour weight (TIS's C; IcePop's beta).")
    is_floor: float = Field(0.5, gt=0, lt=1, description="IcePop's lower bound alpha (tokens below it are masked).")
    skip_old_logprobs: bool = Field(
        True,
        description="Skip the forward that recomputes the old policy's log-probs when they provably equal the "
        "current policy's in the update (one policy update per generation, no reward-side KL, no dropout): "
        "the loss uses the update's own log-probs, detached.",
    )
    zero_stage: Literal[0, 2, 3] = Field(0, description="DeepSpeed ZeRO stage for actor and critic.")
    save_every: int = Field(50, ge=1, description="Checkpoint every N steps.")
    keep_checkpoints: int | None = Field(
        None,
        ge=1,
        description="Newest RL checkpoints kept in the store (older ones are deleted after each commit); "
        "at least rl.average_last (the final average reads them; the newest, which resume reads, is among "
        "them); unset = rl.average_last.",
    )
    average_last: int = Field(
        1, ge=1, description="Final model = uniform average of the last N checkpoints (<= rl.keep_checkpoints)."
    )
    seed: int = Field(0, description="RL seed (prompt order, critic init, shuffles); default: the run's seed.")

    @field_validator("algorithm")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        return registered(PRESETS, v)

    @field_validator("advantage")
    @classmethod
    def _known_estimator(cls, v: str) -> str:
        return registered(ESTIMATORS, v)

    @field_validator("loss_agg")
    @classmethod
    def _known_aggregation(cls, v: str) -> str:
        return registered(LOSS_AGGS, v)

    @field_validator("max_response_len_schedule")
    @classmethod
    def _schedule_sorted(cls, v: list[LengthStage]) -> list[LengthStage]:
        steps = [s.from_step for s in v]
        if not v or steps[0] != 0 or steps != sorted(set(steps)):
            raise ValueError("max_response_len_schedule must start at step 0 and increase strictly")
        return v

    def max_tokens_at(self, step: int) -> int:
        """Max response length in force at ``step``."""
        return [s.max_tokens for s in self.max_response_len_schedule if s.from_step <= step][-1]

    @model_validator(mode="after")
    def _resolved(self) -> RLConfig:
        """The preset fills every field the recipe and overrides leave unset, then the whole is checked.

        Runs whenever the section is validated (loading, a pod reloading the dumped config, an
        assignment), so every holder of the config sees the resolved values; applying it to an
        already resolved section changes nothing.
        """
        explicit = self.model_fields_set
        for key, value in PRESETS.get(self.algorithm).items():
            if key not in explicit:
                self.__dict__[key] = value  # a preset's value, not the recipe's: stays out of fields_set
        if "is_correction" not in explicit:
            self.__dict__["is_correction"] = "icepop" if self.max_staleness > 0 else "none"
        want = estimator_of(self.algorithm)
        if want is not None and self.advantage != want:
            users = [name for name in PRESETS if estimator_of(name) == self.advantage]
            raise ValueError(
                f"rl.algorithm={self.algorithm!r} trains with the {want!r} estimator, but rl.advantage="
                f"{self.advantage!r} is set: remove rl.advantage (the preset sets it), choose an algorithm "
                f"that uses {self.advantage!r} ({', '.join(users) or 'none'}), or set rl.algorithm=custom "
                "to choose every part yourself"
            )
        spec = ESTIMATORS.get(self.advantage)
        if spec.critic and self.critic_updates < 1:
            raise ValueError(
                f"rl.advantage={self.advantage!r} reads critic values: rl.critic_updates must be >= 1 (it is 0)"
            )
        if not spec.critic:
            if "critic_updates" in explicit and self.critic_updates > 0:
                raise ValueError(
                    f"rl.critic_updates={self.critic_updates} trains a critic that the {self.advantage!r} "
                    "estimator never reads: remove rl.critic_updates (or set it to 0)"
                )
            self.__dict__["critic_updates"] = 0  # no critic is built
        self._check_retention()
        if self.kl_reward_coef > 0 and not spec.token_rewards:
            token = [name for name in ESTIMATORS if ESTIMATORS.get(name).token_rewards]
            raise ValueError(
                f"rl.kl_reward_coef needs an estimator that reads token rewards ({', '.join(token)}); "
                f"{self.advantage!r} uses one score per response: use rl.kl_loss_coef instead"
            )
        return self

    def _check_retention(self) -> None:
        """The store keeps what the final average and resume read: unset keep_checkpoints resolves to
        average_last, and a smaller explicit value fails to load."""
        if self.keep_checkpoints is None or "keep_checkpoints" not in self.model_fields_set:
            self.__dict__["keep_checkpoints"] = self.average_last  # resolved, not the recipe's: stays out of fields_set
        elif self.keep_checkpoints < self.average_last:
            raise ValueError(
                f"rl.keep_checkpoints={self.keep_checkpoints} keeps fewer checkpoints than rl.average_last="
                f"{self.average_last} averages into the final model: raise rl.keep_checkpoints to >= "
                f"{self.average_last} (or unset it), or lower rl.average_last"
            )

    @property
    def uses_critic(self) -> bool:
        """A critic is built and trained: the estimator reads values (GAE)."""
        return ESTIMATORS.get(self.advantage).critic

    @property
    def uses_reference(self) -> bool:
        """A frozen reference policy is loaded: either KL term is on."""
        return self.kl_reward_coef > 0 or self.kl_loss_coef > 0
