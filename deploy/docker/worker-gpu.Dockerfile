# syntax=docker/dockerfile:1.7
# Stream worker, GPU: the same packages as worker.Dockerfile on a CUDA runtime base, torch
# from the CUDA wheel index matching that base. Needs the NVIDIA container toolkit on the host.
#
#   docker build -f deploy/docker/worker-gpu.Dockerfile -t reviewscore/worker-gpu:0.1.0 .
#
# Change CUDA_IMAGE and TORCH_INDEX_URL together (cu128 <-> CUDA 12.8) and keep the host
# driver at or above what that CUDA release needs.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04

FROM ${CUDA_IMAGE} AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
RUN pip install --upgrade pip setuptools wheel \
    && pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md ./
COPY core ./core
COPY model ./model
COPY stream ./stream
RUN pip install ".[model,stream,gpu]"

FROM ${CUDA_IMAGE} AS runtime
LABEL org.opencontainers.image.title="reviewscore-worker-gpu" \
      org.opencontainers.image.description="reviewscore stream worker (CUDA inference)"
ENV DEBIAN_FRONTEND=noninteractive
# The venv's interpreter is a link to the system python3: install it, nothing else.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 reviewscore \
    && useradd --system --uid 10001 --gid reviewscore --home-dir /home/reviewscore --create-home reviewscore
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/tmp/hf \
    MODEL_DEVICE=cuda \
    STREAM_WEB_HOST=0.0.0.0 \
    STREAM_WEB_PORT=6066 \
    REVIEWSCORE_LOG_JSON=true
USER 10001:10001
WORKDIR /home/reviewscore
EXPOSE 6066
HEALTHCHECK --interval=10s --timeout=3s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/healthz', timeout=2)"]
ENTRYPOINT ["reviewscore"]
CMD ["worker"]
