"""Language-only cold-start SFT of Qwen2.5-VL (optionally with multimodal samples in the mix).

* :mod:`ovr.sft.encode`   — a ``Sample`` -> token ids, assistant-only labels, M-RoPE positions
* :mod:`ovr.sft.packing`  — best-fit-decreasing packing and the batch collator (per-sample isolation)
* :mod:`ovr.sft.loss`     — token-mean cross entropy and per-sample losses
* :mod:`ovr.sft.deepspeed` — ZeRO-2/3 configs generated from the recipe; single-process CPU setup
* :mod:`ovr.sft.callbacks` — store checkpoints, MLflow metrics, throughput counters
* :mod:`ovr.sft.train`    — :func:`run_sft`, the stage's entry point
"""
