#!/usr/bin/env bash
# The memory bench's padding-free micro-steps for real on one GPU (H100/H200), in under 8 minutes.
#
# Needs PyTorch (>= 2.10: torch.nn.attention.varlen), transformers and the project's own Python
# dependencies (pydantic); no DeepSpeed, no vLLM, no internet: the model is a random-init
# Qwen2.5-VL at 7B width built on the GPU from the config carried in bench/memory_trace.py. Runs the
# recipe's worst micro-batches (the longest RL stage's row mixes at rl.max_tokens_per_micro, text and
# image rows, and the packed SFT rows), each packed by the trainer's own batching, and prints per
# micro-batch the peak measured by torch.cuda.max_memory_allocated next to the fake-tensor trace at
# the same depth, and the attention kernels that actually ran (ovr's count per kernel and the CUDA
# kernels the profiler saw) (see bench/gpu_check.py).
#
#   bash bench/gpu_check.sh                      # 4 decoder layers, the longest RL stage and SFT
#   bash bench/gpu_check.sh --layers 8 --all-stages
#   PYTHON=/opt/venv/bin/python bash bench/gpu_check.sh --out gpu_check.md
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
export TRANSFORMERS_OFFLINE=1 HF_HUB_OFFLINE=1

"$PYTHON" - <<'PY'
import torch, transformers
print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
      f"cuda {torch.version.cuda}, device {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
PY

# the whole check stays under 8 minutes: 470 s here, the rest for start-up and the lines above
exec timeout 470 "$PYTHON" -m bench.gpu_check "$@"
