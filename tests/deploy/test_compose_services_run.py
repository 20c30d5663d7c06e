"""The compose services start with their own command line and environment, on this machine.

No Docker engine here, so each service's ``command`` runs as a local process with the
``environment:`` docker-compose.yml gives it, only the container addresses swapped for the
test's real broker and database (``kafka:9092`` -> Tansu, ``postgres:5432`` -> PostgreSQL).
A setting that is misspelt, a value the code rejects or a command the CLI no longer accepts
fails here the way it would fail in the container.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from core.config import KafkaSettings
from core.db import sqlalchemy_url
from core.embedded import free_port
from core.messages import ReviewMessage
from core.publish import publish_messages
from tests.deploy.manifests import ROOT, load_compose, service_environment

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def localized_env(
    service: str, database_url: str, readonly_url: str, kafka: KafkaSettings, state_dir: Path
) -> dict[str, str]:
    """The service's compose environment with container addresses pointed at the test's servers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "KAFKA_", "STREAM_", "API_"))}
    for key, value in service_environment(load_compose()["services"][service]).items():
        if value.startswith("postgresql://"):
            reader = make_url(value).username == "reviewscore_reader"
            value = readonly_url if reader else database_url
        elif key == "KAFKA_BOOTSTRAP_SERVERS":
            assert value == "kafka:9092"
            value = kafka.bootstrap_servers or ""
        elif key == "KAFKA_FLAVOR":
            value = kafka.flavor  # Tansu here needs its short sessions; compose runs Apache Kafka
        elif key == "KAFKA_TOPIC":
            value = kafka.topic
        elif key == "KAFKA_DLQ_TOPIC":
            value = kafka.dlq_topic
        elif key in ("API_PORT", "STREAM_WEB_PORT"):
            value = str(free_port())  # the container's port, free on this shared machine
        env[key] = value
    env["REVIEWSCORE_STATE_DIR"] = str(state_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def command_of(service: str) -> list[str]:
    return [sys.executable, "-m", "core.cli", *load_compose()["services"][service]["command"]]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # uvicorn workers and all
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def start(argv: list[str], env: dict[str, str], log: Path, started: list[subprocess.Popen[bytes]]) -> Any:
    with log.open("wb") as handle:
        process = subprocess.Popen(
            argv, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    started.append(process)
    return process


def get_json(url: str) -> tuple[int, dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None


def wait_for(predicate: Any, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached in {timeout}s:\n{log.read_text(errors='replace')[-4000:]}")


def test_the_migrate_service_runs(
    database_url: str, readonly_database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    env = localized_env("migrate", database_url, readonly_database_url, kafka_settings, tmp_path)
    result = subprocess.run(command_of("migrate"), env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "database at revision" in result.stdout


def test_the_api_service_becomes_ready_as_the_reader(
    database_url: str,
    readonly_database_url: str,
    kafka_settings: KafkaSettings,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    env = localized_env("api", database_url, readonly_database_url, kafka_settings, tmp_path)
    assert "DATABASE_URL" not in env  # no writer credentials in the API: it starts on the reader's URL alone
    assert env["DATABASE_READONLY_URL"] == readonly_database_url
    log = tmp_path / "api.log"
    api = start(command_of("api"), env, log, processes)
    url = f"http://127.0.0.1:{env['API_PORT']}/readyz"

    def ready() -> bool:
        assert api.poll() is None, log.read_text(errors="replace")
        reply = get_json(url)
        # The read cache is reported, not required: it goes live once the reader LISTENs.
        return reply is not None and reply[0] == 200 and reply[1]["checks"]["read_cache"] == "ok"

    wait_for(ready, 60, "API /readyz 200 with its read cache live", log)
    reply = get_json(url)
    assert reply == (200, {"status": "ok", "checks": {"database": "ok", "broker": "ok", "read_cache": "ok"}})
    # The service sets REVIEWSCORE_LOG_JSON: uvicorn's start-up and access lines are JSON too.
    wait_for(lambda: "GET /readyz" in log.read_text(), 10, "the access line", log)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert any(line["logger"] == "uvicorn.access" and "GET /readyz" in line["msg"] for line in lines), lines
    assert any(line["logger"] == "uvicorn.error" and "Uvicorn running" in line["msg"] for line in lines), lines


def test_the_worker_service_scores_what_is_published(
    database_url: str,
    readonly_database_url: str,
    kafka_settings: KafkaSettings,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    env = localized_env("worker-cpu", database_url, readonly_database_url, kafka_settings, tmp_path)
    # The image bakes in the default model; here the stream tests' lexicon scorer stands in for it.
    env["STREAM_SCORER"] = "tests.fixtures.stream:make_test_scorer"
    log = tmp_path / "worker.log"
    worker = start(command_of("worker-cpu"), env, log, processes)
    reviews = [(i, ReviewMessage(text=f"great product {i}", source="compose", review_id=str(i))) for i in range(10)]
    delivery = publish_messages(reviews, kafka_settings)
    assert delivery.sent == 10

    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)

    def scored() -> bool:
        assert worker.poll() is None, log.read_text(errors="replace")
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM sentiments")).scalar_one()) == 10

    try:
        wait_for(scored, 90, "10 scored rows", log)
    finally:
        engine.dispose()
    health = get_json(f"http://127.0.0.1:{env['STREAM_WEB_PORT']}/healthz")
    assert health is not None
    assert health[0] == 200
    os.killpg(worker.pid, signal.SIGTERM)
    assert worker.wait(30) == 0, log.read_text(errors="replace")[-4000:]
