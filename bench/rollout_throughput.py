"""Rollout throughput: generated tokens/s of vLLM (the rollout path) vs HF ``generate``.

Same run, same tiny Qwen2.5-VL (float32 on both sides), same image + text prompts, same
``n`` samples per prompt and token limit, same cores. The baseline is HF ``generate`` with
sampling, one prompt at a time with ``num_return_sequences=n``; the measured side is
:class:`ovr.rollout.client.RolloutClient` against one local vLLM replica. Both count the
completion tokens actually produced (up to and including EOS). It also times a folder weight push
(save + reload) and the reload alone.

    .venv/bin/python bench/rollout_throughput.py --prompts 16 --n 4 --max-tokens 64
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def hf_tokens_per_s(model_dir: Path, samples, n: int, max_tokens: int) -> tuple[float, int]:
    """HF ``generate`` tokens/s over the prompts (one prompt per call, n sequences each)."""
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from ovr.rollout.logprobs import prompt_inputs

    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    eos = {processor.tokenizer.convert_tokens_to_ids("<|im_end|>"), processor.tokenizer.eos_token_id}
    torch.manual_seed(0)
    tokens = 0
    start = time.perf_counter()
    for sample in tqdm(samples, desc="hf generate", unit="prompt"):
        inputs = prompt_inputs(processor, sample)
        with torch.no_grad():
            out = model.generate(
                **inputs,
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,
                num_return_sequences=n,
                max_new_tokens=max_tokens,
            )
        for seq in out[:, inputs["input_ids"].shape[1] :].tolist():
            stop = next((i + 1 for i, t in enumerate(seq) if t in eos), len(seq))
            tokens += stop
    return tokens / (time.perf_counter() - start), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=16, help="Prompts (half image, half text).")
    parser.add_argument("--n", type=int, default=4, help="Samples per prompt.")
    parser.add_argument("--max-tokens", type=int, default=64, help="Max completion tokens.")
    parser.add_argument("--model", type=Path, default=None, help="Model folder (default: build the tiny model).")
    args = parser.parse_args()

    from ovr.config import LocalServerConfig, RolloutConfig
    from ovr.data.synthetic import text_samples, visual_samples
    from ovr.models.tiny import make_tiny
    from ovr.rollout.client import RolloutClient
    from ovr.rollout.weights import FolderWeightSync
    from services.rollout.launch import local_server

    tmp = Path(tempfile.mkdtemp(prefix="ovr-bench-rollout-"))
    model_dir = args.model or make_tiny(tmp / "model", seed=0)
    half = args.prompts // 2
    samples = visual_samples(half, seed=3, split="rl") + text_samples(args.prompts - half, seed=3, split="rl")
    cfg = RolloutConfig(local_server=LocalServerConfig(dtype="float32", max_model_len=1024), temperature=1.0, top_p=1.0)

    hf_rate, hf_tokens = hf_tokens_per_s(model_dir, samples, args.n, args.max_tokens)

    with local_server(model_dir, cfg, weights_dir=tmp / "weights") as server:
        client = RolloutClient([server.url], cfg)
        client.generate_sync(samples[:2], n=args.n, max_tokens=8, progress=False)  # warm-up
        start = time.perf_counter()
        groups = client.generate_sync(samples, n=args.n, max_tokens=args.max_tokens)
        vllm_s = time.perf_counter() - start
        vllm_tokens = sum(len(c.token_ids) for g in groups for c in g.completions)
        vllm_rate = vllm_tokens / vllm_s

        from transformers import AutoModelForImageTextToText

        sync = FolderWeightSync([server.url], tmp / "weights")
        sync.push_weights(AutoModelForImageTextToText.from_pretrained(model_dir))

    print(f"\nprompts={len(samples)} n={args.n} max_tokens={args.max_tokens}")
    print(f"HF generate : {hf_tokens:6d} tokens  {hf_rate:9.1f} tok/s")
    print(f"vLLM        : {vllm_tokens:6d} tokens  {vllm_rate:9.1f} tok/s")
    print(f"ratio vLLM/HF: {vllm_rate / hf_rate:.1f}x")
    print(f"weight push : reload {sync.last_reload_s * 1000:.1f} ms, save + reload {sync.last_push_s:.2f} s")


if __name__ == "__main__":
    main()
