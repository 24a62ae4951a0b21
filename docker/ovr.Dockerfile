# syntax=docker/dockerfile:1.7
# The ovr image: trainer (SFT/RL under torchrun + DeepSpeed), KFP pipeline steps, the MLflow server
# (with psycopg2 and boto3 for the PostgreSQL backend and S3 artifacts), the chart's helm test and
# KFP upload Job. Build from the repository root:
#   docker build -f docker/ovr.Dockerfile -t ghcr.io/ovr-project/ovr:0.1.0 .
# CUDA comes with PyTorch's CUDA wheels; set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# for a CPU-only image.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VERSION=2.13.0
ARG TORCHVISION_VERSION=0.28.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential git \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/ovr
ENV PATH=/opt/ovr/bin:$PATH
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"
# Dependencies first (cached while only sources change), then the package itself.
COPY pyproject.toml README.md* /src/
COPY ovr /src/ovr
COPY services /src/services
COPY components /src/components
COPY pipelines /src/pipelines
RUN pip install "/src[gpu]" "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" \
      "psycopg2-binary>=2.9" "boto3>=1.34"

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
