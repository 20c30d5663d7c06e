# syntax=docker/dockerfile:1.7
# Crawler image: core + the `scraper` extra. Runs once per invocation (compose one-shot
# service, Kubernetes CronJob) and publishes what it finds to the reviews topic.
#
#   docker build -f deploy/docker/scraper.Dockerfile -t reviewscore/scraper:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core ./core
COPY scraper ./scraper
RUN pip install --upgrade pip setuptools wheel \
    && pip install ".[scraper]"

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="reviewscore-scraper" \
      org.opencontainers.image.description="reviewscore review crawler (Scrapy -> Kafka)"
# The state dir exists (owned by the user) so a volume mounted there inherits that ownership.
RUN groupadd --system --gid 10001 reviewscore \
    && useradd --system --uid 10001 --gid reviewscore --home-dir /home/reviewscore --create-home reviewscore \
    && install -d -o 10001 -g 10001 /home/reviewscore/state
COPY --from=build /opt/venv /opt/venv
# HTTP cache + seen-review state of incremental crawls: mount a volume here to keep them.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REVIEWSCORE_LOG_JSON=true \
    SCRAPER_STATE_DIR=/home/reviewscore/state
USER 10001:10001
WORKDIR /home/reviewscore
ENTRYPOINT ["reviewscore"]
CMD ["crawl", "--help"]
