"""SFT throughput: ovr's packed trainer vs a plain HF Trainer baseline, same run, same model and data.

Both train the tiny Qwen2.5-VL on the same procedural cold-start samples for the same number of
samples (one pass), with the same optimizer settings and cores. The baseline is the textbook
recipe: one sample per row, padded per batch (``DataCollatorForSeq2Seq``), assistant-only labels.
ovr packs samples into ``--seq-len`` rows with per-sample isolation. Throughput counts real
(non-padding) tokens per second of the training loop; the ratio is ovr / baseline.

    .venv/bin/python bench/sft_throughput.py --samples 400 --seq-len 512
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def baseline(model_dir: Path, encoded, batch: int, lr: float, out: Path) -> tuple[int, float]:
    """Plain Trainer, one padded sample per row: returns (real tokens, seconds)."""
    from transformers import (
        AutoModelForImageTextToText,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )

    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = [{"input_ids": e.input_ids.tolist(), "labels": e.labels.tolist()} for e in encoded]
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=batch,
        num_train_epochs=1,
        learning_rate=lr,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_steps=10_000,
        disable_tqdm=True,
        seed=0,
    )
    collator = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator)
    t = time.perf_counter()
    trainer.train()
    return sum(len(r["input_ids"]) for r in rows), time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=400, help="Cold-start samples (one pass each).")
    ap.add_argument("--seq-len", type=int, default=512, help="ovr's packed row length.")
    ap.add_argument("--difficulty", type=int, default=3, help="Synthetic difficulty (longer traces).")
    ap.add_argument("--baseline-batch", type=int, default=8, help="Samples per baseline batch.")
    args = ap.parse_args()

    from ovr.config import load_config
    from ovr.context import RunContext
    from ovr.data.synthetic import text_samples
    from ovr.models.loading import load_processor
    from ovr.models.tiny import make_tiny
    from ovr.sft.encode import encode_all
    from ovr.sft.train import run_sft

    work = Path(tempfile.mkdtemp(prefix="ovr-bench-sft-"))
    model_dir = make_tiny(work / "tiny", seed=0)
    samples = text_samples(args.samples, seed=0, difficulty=args.difficulty)
    encoded, _ = encode_all(load_processor(model_dir), samples, args.seq_len)
    lr = 2e-3

    tokens_b, secs_b = baseline(model_dir, encoded, args.baseline_batch, lr, work / "baseline")

    cfg = load_config(
        None,
        [
            "name=bench",
            f"model.path={model_dir}",
            f"store.uri={work / 'store'}",
            "tracking.enabled=false",
            "device=cpu",
            f"sft.work_dir={work / 'work'}",
            f"sft.max_seq_len={args.seq_len}",
            "sft.epochs=1",
            "sft.global_batch_size=2",
            "sft.micro_batch_size=2",
            f"sft.lr={lr}",
            "sft.save_every=100000",
        ],
        use_env=False,
    )
    result = run_sft(cfg, RunContext.new(cfg.name), samples=samples, resume="never", progress=False)

    base_rate, ovr_rate = tokens_b / secs_b, result.tokens_per_s
    print(f"samples {len(encoded)}, real tokens {tokens_b}, threads {torch.get_num_threads()}")
    print(f"baseline HF Trainer (padded, batch {args.baseline_batch}): {base_rate:8.0f} tok/s ({secs_b:.1f} s)")
    print(
        f"ovr packed ({args.seq_len}-token rows, eff {result.padding_efficiency:.3f}):   "
        f"{ovr_rate:8.0f} tok/s ({result.train_seconds:.1f} s)"
    )
    print(f"ratio ovr / baseline: {ovr_rate / base_rate:.2f}x")


if __name__ == "__main__":
    main()
