"""A MODEL, not a measurement: expected step time and tokens/s per GPU of the 7B recipe
(recipes/ovr-7b.yaml: PPO with a critic, 512 prompts x 16 responses per step) on 8 trainer GPUs +
N rollout GPUs (H100), synchronous vs async (one-step-off), at the 24k / 32k / 48k response limits.

Every input is a published figure or a stated assumption (``INPUTS``, each with its source); change
them with ``--set key=value``. How each phase is modelled:

- **rollout** (vLLM, one replica per GPU, TP 1): decode is memory-bandwidth bound: a decode step reads
  the weights plus the KV cache of every running sequence, so a replica makes ``B / t_step`` tokens/s
  with ``t_step = (weights + B * kv_per_token * context) / (eta * HBM bandwidth)`` and ``B`` as many
  sequences as the KV budget holds (at most vLLM's ``max_num_seqs``). ``eta`` is calibrated so that
  this roofline reproduces a published short-context figure (Llama-3.1-8B on one H100). The step
  also cannot end before its longest response, decoded nearly alone (the tail): rollout time is the
  larger of the two.
- **train** (DeepSpeed ZeRO-3 on 8 GPUs): FLOPs per trained token = 6 N for the actor's update,
  6 N for the critic's (its ``critic_updates`` mini-batches cover the batch once), 2 N for the values,
  2 N for the old log-probs (0 when they are skipped: one update per generation), plus causal
  attention ``12 * layers * hidden * context / 2`` per token for each forward+backward; at the
  recipe's MFU.
- **reward**: math-verify at the per-check cost measured on this CPU, spread over the reward workers.
- **weight sync**: the bf16 weights once over the network at the stated effective bandwidth.
- sync step = rollout + reward + train + sync; async step = max(rollout + reward, train + sync).

The shares measured on this CPU (bench/rl_throughput.py) are printed beside it for comparison: they
say how the phases stack up on a 2-core box, the model how they would on the cluster.

    .venv/bin/python bench/rl_cost_model.py
    .venv/bin/python bench/rl_cost_model.py --set mean_len_frac=0.7 --rollout-gpus 8 16 24
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

# name -> (value, source)
INPUTS: dict[str, tuple[float, str]] = {
    "params": (
        7.6e9,
        "Qwen2.5-7B language model (Qwen2.5 technical report, arXiv:2412.15115); vision tower not trained",
    ),
    "layers": (28, "Qwen2.5-VL-7B-Instruct config.json: num_hidden_layers"),
    "hidden": (3584, "Qwen2.5-VL-7B-Instruct config.json: hidden_size"),
    "kv_heads": (4, "Qwen2.5-VL-7B-Instruct config.json: num_key_value_heads"),
    "head_dim": (128, "hidden_size / num_attention_heads = 3584 / 28"),
    "bytes_per_param": (2, "bf16 serving and weight push"),
    "hbm_gb": (80, "NVIDIA H100 SXM5 datasheet: 80 GB HBM3"),
    "hbm_tb_s": (3.35, "NVIDIA H100 SXM5 datasheet: 3.35 TB/s"),
    "bf16_tflops": (989, "NVIDIA H100 SXM5 datasheet: 989 TFLOP/s dense BF16"),
    "gpu_mem_util": (0.85, "ovr's chart default rollout.gpuMemoryUtilization (services/rollout/launch.py)"),
    "max_num_seqs": (256, "vLLM's default --max-num-seqs"),
    "ref_tok_s": (
        12500,
        "vLLM, Llama-3.1-8B BF16 on 1x H100, short prompts (third-party benchmarks collected at "
        "morphllm.com/vllm-benchmarks, 2026)",
    ),
    "ref_ctx": (1152, "the reference benchmark's context: ~1k prompt + 128 output tokens"),
    "mfu": (0.40, "Llama 3 paper (Dubey et al. 2024, Table 4): 38-43 % BF16 MFU on H100"),
    "prompt_tokens": (1024, "assumption: a math prompt with one image at the data's max_pixels"),
    "mean_len_frac": (0.5, "assumption: mean response = half the length limit (ORZ/OVR lengths grow toward the limit)"),
    "responses": (8192, "recipes/ovr-7b.yaml: 512 prompts x 16 samples"),
    "verify_ms": (0.5, "measured on this CPU: math-verify per check (shared/design.md)"),
    "reward_workers": (32, "assumption: reward service replicas x workers"),
    "net_gb_s": (40, "assumption: NCCL broadcast at ~80 % of a 400 Gb/s NDR InfiniBand link"),
    "trainer_gpus": (8, "recipes/ovr-7b.yaml: one node of 8 H100"),
}


def value(inputs: dict, key: str) -> float:
    return float(inputs[key][0])


@dataclass
class Phases:
    rollout: float
    reward: float
    train: float
    sync: float
    generated: float  # tokens per step

    @property
    def sync_step(self) -> float:
        return self.rollout + self.reward + self.train + self.sync

    @property
    def async_step(self) -> float:
        return max(self.rollout + self.reward, self.train + self.sync)


def decode_rate(inputs: dict, weights_gb: float, kv_bytes_per_token: float, context: float) -> tuple[float, float]:
    """(tokens/s of one replica at full load, seconds per decode step of one sequence alone) by the roofline."""
    bw = value(inputs, "hbm_tb_s") * 1e12 * efficiency(inputs)
    budget = value(inputs, "hbm_gb") * value(inputs, "gpu_mem_util") * 1e9 - weights_gb * 1e9
    batch = min(value(inputs, "max_num_seqs"), budget / (kv_bytes_per_token * context))
    step = (weights_gb * 1e9 + batch * kv_bytes_per_token * context) / bw
    return batch / step, weights_gb * 1e9 / bw


def efficiency(inputs: dict) -> float:
    """Achieved share of HBM bandwidth that makes the roofline give the published reference rate
    (Llama-3.1-8B: 16 GB of weights, 128 KiB of KV per token, vLLM's default batch)."""
    bw = value(inputs, "hbm_tb_s") * 1e12
    kv, weights = 131072, 16.06e9
    batch = value(inputs, "max_num_seqs")
    ideal_rate = batch / ((weights + batch * kv * value(inputs, "ref_ctx")) / bw)
    return min(1.0, value(inputs, "ref_tok_s") / ideal_rate)


def phases(inputs: dict, max_len: int, rollout_gpus: int, skip_old_logprobs: bool = True) -> Phases:
    """The modelled seconds of each phase of one step (see the module doc)."""
    n, layers, hidden = value(inputs, "params"), value(inputs, "layers"), value(inputs, "hidden")
    mean_len = value(inputs, "mean_len_frac") * max_len
    prompt, responses = value(inputs, "prompt_tokens"), value(inputs, "responses")
    kv_per_token = 2 * layers * value(inputs, "kv_heads") * value(inputs, "head_dim") * 2
    weights_gb = n * value(inputs, "bytes_per_param") / 1e9
    rate, alone = decode_rate(inputs, weights_gb, kv_per_token, prompt + mean_len / 2)
    generated = responses * mean_len
    rollout = max(generated / (rate * rollout_gpus), max_len * alone)
    trained = responses * (prompt + mean_len)
    context = prompt + mean_len
    attention = 12 * layers * hidden * context / 2  # forward + backward, causal, per token
    per_token = (6 * n + attention) * 2 + (2 * n + attention / 3) * (1 if skip_old_logprobs else 2)
    train = (
        trained
        * per_token
        / (value(inputs, "trainer_gpus") * value(inputs, "bf16_tflops") * 1e12 * value(inputs, "mfu"))
    )
    reward = responses * value(inputs, "verify_ms") / 1e3 / value(inputs, "reward_workers")
    sync = n * value(inputs, "bytes_per_param") / (value(inputs, "net_gb_s") * 1e9)
    return Phases(rollout, reward, train, sync, generated)


def table(inputs: dict, lengths: list[int], rollout_gpus: list[int]) -> str:
    gpus0 = int(value(inputs, "trainer_gpus"))
    lines = [
        "MODEL (not measured): the 7B recipe, PPO with a critic, one-step-off async vs sync",
        f"decode efficiency calibrated to the reference: eta = {efficiency(inputs):.2f} of HBM bandwidth",
        "",
        "| max len | trainer+rollout GPUs | rollout (s) | train (s) | sync step (s) | async step (s) | "
        "sync tok/s/GPU | async tok/s/GPU | async/sync |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for length in lengths:
        for g in rollout_gpus:
            ph = phases(inputs, length, g)
            total = gpus0 + g
            s, a = ph.generated / ph.sync_step / total, ph.generated / ph.async_step / total
            lines.append(
                f"| {length // 1024}k | {gpus0}+{g} | {ph.rollout:.0f} | {ph.train:.0f} | {ph.sync_step:.0f} | "
                f"{ph.async_step:.0f} | {s:.0f} | {a:.0f} | {a / s:.2f} |"
            )
    lines += ["", "inputs:"] + [f"- {k} = {v:g}: {src}" for k, (v, src) in inputs.items()]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[24 * 1024, 32 * 1024, 48 * 1024])
    p.add_argument("--rollout-gpus", type=int, nargs="+", default=[8, 16])
    p.add_argument("--set", dest="sets", action="append", default=[], help="Override an input: key=value.")
    p.add_argument("--cpu-shares", default=None, help="Shares measured by bench/rl_throughput.py, printed beside.")
    a = p.parse_args()
    inputs = dict(INPUTS)
    for s in a.sets:
        key, _, raw = s.partition("=")
        if key not in inputs:
            raise SystemExit(f"unknown input {key!r}; known: {', '.join(inputs)}")
        inputs[key] = (float(raw), "set on the command line")
    print(table(inputs, a.lengths, a.rollout_gpus))
    if a.cpu_shares:
        print(f"\nmeasured on this CPU (bench/rl_throughput.py, a different workload): {a.cpu_shares}")


if __name__ == "__main__":
    main()
