# syntax=docker/dockerfile:1.7
# Query API image: core + the `api` extra, no torch. It also runs the one-shot
# `reviewscore migrate` (core alone carries Alembic and the migrations).
#
#   docker build -f deploy/docker/api.Dockerfile -t reviewscore/api:0.1.0 .
#
# Base images are pinned to a patch release; pin the digest too in your registry mirror
# (docker buildx imagetools inspect python:3.11.14-slim-bookworm).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Only the packages this image runs: the CLI skips the commands of parts that are not installed.
COPY pyproject.toml README.md ./
COPY core ./core
COPY query_api ./query_api
RUN pip install --upgrade pip setuptools wheel \
    && pip install ".[api]"

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="reviewscore-api" \
      org.opencontainers.image.description="reviewscore read-only query API and migrations"
RUN groupadd --system --gid 10001 reviewscore \
    && useradd --system --uid 10001 --gid reviewscore --home-dir /home/reviewscore --create-home reviewscore
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    API_HOST=0.0.0.0 \
    API_PORT=8000 \
    REVIEWSCORE_LOG_JSON=true
USER 10001:10001
WORKDIR /home/reviewscore
EXPOSE 8000
# slim images have no curl: the standard library does the probe.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["reviewscore"]
CMD ["api"]
