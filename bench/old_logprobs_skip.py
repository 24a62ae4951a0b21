"""The skipped old-log-prob forward (``rl.skip_old_logprobs``): one RL step's training half
(``ovr.rl.step.train_share``: old log-probs, values, advantages, actor and critic updates) on the same
rows with and without it, the tiny Qwen2.5-VL on this CPU. Prints the seconds of each (median of
``--repeat`` runs, each from the same initial weights), the saving, and the largest difference of
any weight after the update (equal results: float rounding only).

    .venv/bin/python bench/old_logprobs_skip.py --algorithm ppo --rows 32 --tokens 64
    .venv/bin/python bench/old_logprobs_skip.py --algorithm grpo
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def fake_run(model_dir: Path, processor, algorithm: str, skip: bool):
    """What ``train_share`` reads of an RL run, on one process (fresh models from ``model_dir``)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from ovr.config import RLConfig
    from ovr.distributed import Dist
    from ovr.models.critic import Critic
    from ovr.rl.engine import make_engine

    rl = RLConfig(algorithm=algorithm, warmup_steps=0, actor_lr=1e-4, critic_lr=1e-4, skip_old_logprobs=skip)
    actor = AutoModelForImageTextToText.from_pretrained(str(model_dir))
    critic = Critic.from_policy(model_dir, init_range=rl.value_head_init, seed=0) if rl.uses_critic else None
    return SimpleNamespace(
        rl=rl,
        dist=Dist(),
        cfg=SimpleNamespace(rollout=SimpleNamespace(temperature=1.0)),
        pad_id=processor.tokenizer.pad_token_id,
        image_token_id=processor.tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        device="cpu",
        dtype=torch.float32,
        actor=actor,
        actor_engine=make_engine(actor, lr=rl.actor_lr, rl=rl, device="cpu"),
        critic=critic,
        critic_engine=make_engine(critic, lr=rl.critic_lr, rl=rl, device="cpu") if critic is not None else None,
        ref=None,
    )


def rows(processor, n_rows: int, tokens: int, group: int = 4):
    from ovr.data.synthetic import visual_samples
    from ovr.rl.experience import Experience
    from ovr.rl.forward import encode_prompt

    rng = random.Random(0)
    prompts = [encode_prompt(processor, s) for s in visual_samples(n_rows // group, seed=0)]
    vocab = processor.tokenizer.vocab_size
    out = []
    for i in range(n_rows):
        score = float(rng.random() < 0.5)
        ids = [rng.randrange(100, vocab - 1) for _ in range(tokens)]
        out.append(Experience(prompts[i // group], ids, score, score, i // group, False, [], 0))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algorithm", default="ppo")
    p.add_argument("--rows", type=int, default=32)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--model", default=str(REPO / ".ovr" / "models" / "tiny"))
    a = p.parse_args()
    import torch
    from transformers import AutoProcessor

    from ovr.models.tiny import make_tiny
    from ovr.rl.share import RowShare
    from ovr.rl.step import train_share

    if not (Path(a.model) / "config.json").exists():
        make_tiny(a.model, seed=0)
    processor = AutoProcessor.from_pretrained(a.model)
    data = rows(processor, a.rows, a.tokens)
    seconds: dict[bool, list[float]] = {True: [], False: []}
    weights = {}
    for k in range(a.repeat + 1):  # the first pair warms up
        for skip in (False, True):
            run = fake_run(Path(a.model), processor, a.algorithm, skip)
            t0 = time.perf_counter()
            train_share(run, RowShare(data, a.rows // 4, data[0], True), max_tokens=a.tokens, step=0)
            if k:
                seconds[skip].append(time.perf_counter() - t0)
            weights[skip] = {n: t.detach().clone() for n, t in run.actor.named_parameters()}
    diff = max(float((weights[True][n] - weights[False][n]).abs().max()) for n in weights[True])
    full, skipped = statistics.median(seconds[False]), statistics.median(seconds[True])
    print(
        f"{a.algorithm}, {a.rows} rows x {a.tokens} response tokens, tiny model, {torch.get_num_threads()} threads:\n"
        f"train_share with the old-log-prob forward {full:.2f} s, without {skipped:.2f} s: "
        f"{100 * (1 - skipped / full):.1f} % saved (ratio {full / skipped:.2f}); "
        f"largest weight difference after the update {diff:.1e}"
    )


if __name__ == "__main__":
    main()
