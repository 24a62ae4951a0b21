# syntax=docker/dockerfile:1.7
# The ovr image: trainer (SFT/RL under torchrun + DeepSpeed), KFP pipeline steps, the MLflow server
# (with psycopg2 and boto3 for the PostgreSQL backend and S3 artifacts), the chart's helm test and
# KFP upload Job. Build from the repository root:
#   docker build -f docker/ovr.Dockerfile -t ghcr.io/ovr-project/ovr:0.1.0 .
# Its pins are requirements/ovr-image.txt (resolved for linux x86_64 / Python 3.11 by
# tests/test_images.py): torch 2.13.0 from PyPI, whose Linux wheel is the CUDA 13.0 build (the CUDA
# runtime comes as nvidia-*-cu13 wheels), and vLLM for NCCL weight sync. For a CPU-only image set
# TORCH_INDEX_URL to PyTorch's cpu wheel index (torch is then installed from there first).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential git \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/ovr
ENV PATH=/opt/ovr/bin:$PATH
COPY requirements/ovr-image.txt /src/requirements/
RUN if [ -n "${TORCH_INDEX_URL}" ]; then \
      pip install --index-url "${TORCH_INDEX_URL}" $(grep -E '^(torch|torchvision)==' /src/requirements/ovr-image.txt); \
    fi \
 && pip install -r /src/requirements/ovr-image.txt
# Then the package itself (its dependencies are mostly there already).
COPY pyproject.toml README.md* /src/
COPY ovr /src/ovr
COPY services /src/services
COPY components /src/components
COPY pipelines /src/pipelines
RUN pip install "/src[gpu]" -r /src/requirements/ovr-image.txt

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="ovr" \
      org.opencontainers.image.description="ovr trainer, pipeline steps and MLflow server" \
      org.opencontainers.image.source="https://github.com/ovr-project/ovr" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 ovr && useradd --uid 1000 --gid 1000 --create-home --shell /usr/sbin/nologin ovr
COPY --from=build /opt/ovr /opt/ovr
# The recipes, for `ovr ... --recipe /opt/ovr-recipes/ovr-7b.yaml` (the chart also ships them in a ConfigMap).
COPY recipes /opt/ovr-recipes
# HOME and caches point at /tmp so the container runs with a read-only root filesystem (the chart
# mounts an emptyDir there).
ENV PATH=/opt/ovr/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    HF_HOME=/tmp/huggingface \
    MPLCONFIGDIR=/tmp/matplotlib \
    OVR_RECIPES_DIR=/opt/ovr-recipes
USER 1000:1000
WORKDIR /tmp
CMD ["ovr", "--help"]
