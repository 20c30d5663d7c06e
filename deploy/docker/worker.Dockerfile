# syntax=docker/dockerfile:1.7
# Stream worker, CPU: core + the `model` and `stream` extras, torch from the CPU wheel index
# (a plain `pip install torch` would pull several GB of CUDA libraries this image never uses).
#
#   docker build -f deploy/docker/worker.Dockerfile -t reviewscore/worker:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# torch first, from its own index, so nothing later can resolve to a CUDA build.
RUN pip install --upgrade pip setuptools wheel \
    && pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md ./
COPY core ./core
COPY model ./model
COPY stream ./stream
RUN pip install ".[model,stream]"

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="reviewscore-worker" \
      org.opencontainers.image.description="reviewscore stream worker (CPU inference)"
RUN groupadd --system --gid 10001 reviewscore \
    && useradd --system --uid 10001 --gid reviewscore --home-dir /home/reviewscore --create-home reviewscore
COPY --from=build /opt/venv /opt/venv
# Nothing downloads at run time: the model ships in the image (or is mounted at MODEL_PATH).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/tmp/hf \
    MODEL_DEVICE=cpu \
    STREAM_WEB_HOST=0.0.0.0 \
    STREAM_WEB_PORT=6066 \
    REVIEWSCORE_LOG_JSON=true
USER 10001:10001
WORKDIR /home/reviewscore
EXPOSE 6066
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/healthz', timeout=2)"]
ENTRYPOINT ["reviewscore"]
CMD ["worker"]
