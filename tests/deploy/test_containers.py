"""The pipeline against the images docker-compose.yml runs: Apache Kafka (KRaft) and PostgreSQL.

Needs a Docker engine (testcontainers); the harness skips it with the reason when none answers,
as on the development machines of this project. Everything else in the project talks to Tansu
and an embedded PostgreSQL; this is where Apache Kafka's own behaviour (group generations from
1, correct high watermarks, durable topics) and a password-authenticated PostgreSQL are met.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import DBAPIError

from core import migrate as migrations
from core.db import libpq_url, sqlalchemy_url
from core.embedded import create_topics, free_port
from tests.deploy.manifests import READER_ROLE_SQL, ROOT, load_compose

pytestmark = [pytest.mark.docker, pytest.mark.integration, pytest.mark.slow]

PASSWORD = "compose-test-writer"
READER_PASSWORD = "compose-test-reader"


def compose_image(service: str) -> str:
    """The exact image (and tag) docker-compose.yml runs, so this test tries what users deploy."""
    image = load_compose()["services"][service]["image"]
    assert isinstance(image, str)
    return image


@pytest.fixture(scope="module")
def apache_kafka() -> Iterator[str]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    # The advertised address must be the one clients dial, so the host port is chosen up front.
    port = free_port()
    container = DockerContainer(compose_image("kafka")).with_bind_ports(9092, port)
    for key, value in {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://localhost:{port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
    }.items():
        container.with_env(key, value)
    with container:
        wait_for_logs(container, "Kafka Server started", timeout=120)
        yield f"localhost:{port}"


@pytest.fixture(scope="module")
def postgres_container_url() -> Iterator[str]:
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer(
        compose_image("postgres"), username="reviewscore", password=PASSWORD, dbname="reviewscore", driver=None
    ) as container:
        yield container.get_connection_url()


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def base_env(database_url: str, bootstrap: str, topic: str, state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "KAFKA_", "STREAM_", "MODEL_"))}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_FLAVOR": "kafka",
            "KAFKA_TOPIC": topic,
            "KAFKA_DLQ_TOPIC": f"{topic}.dlq",
            "REVIEWSCORE_STATE_DIR": str(state_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def count_rows(url: str) -> int:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM sentiments")).scalar_one())
    finally:
        engine.dispose()


def test_migrate_publish_and_score_against_apache_kafka_and_postgres(
    apache_kafka: str, postgres_container_url: str, tmp_path: Path
) -> None:
    topic = f"reviews-{uuid.uuid4().hex[:8]}"
    env = base_env(postgres_container_url, apache_kafka, topic, tmp_path / "state")

    # 1. The one-shot migrate service's command.
    migrated = run_cli(["migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    assert migrations.current_revision(postgres_container_url) is not None

    # 2. The db-roles step: the SELECT-only role gets a password and can read, not write, over TCP.
    if shutil.which("psql"):
        variables = ["ON_ERROR_STOP=1", "reader_role=reviewscore_reader", f"reader_password={READER_PASSWORD}"]
        psql = ["psql", libpq_url(postgres_container_url), "-X", "-q", *(f"--set={v}" for v in variables)]
        roles = subprocess.run(
            [*psql, "-f", str(READER_ROLE_SQL)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert roles.returncode == 0, roles.stderr
        reader_url = libpq_url(
            sqlalchemy_url(postgres_container_url).set(username="reviewscore_reader", password=READER_PASSWORD)
        )
        assert count_rows(reader_url) == 0
        reader = create_engine(sqlalchemy_url(reader_url), poolclass=pool.NullPool)
        with pytest.raises(DBAPIError), reader.begin() as conn:
            conn.execute(text("DELETE FROM sentiments"))
        reader.dispose()

    # 3. kafka-init: topics with the partitions workers scale to.
    create_topics(apache_kafka, {topic: 4, f"{topic}.dlq": 1})

    # 4. A producer: `reviewscore publish` of a JSONL file.
    reviews = tmp_path / "reviews.jsonl"
    words = ["great service, love it", "terrible, want a refund", "okay I guess", "excellent and fast"]
    with reviews.open("w", encoding="utf-8") as handle:
        for i in range(40):
            handle.write(json.dumps({"review_id": f"r{i}", "text": f"{words[i % 4]} #{i}", "brand": "acme"}) + "\n")
    published = run_cli(["publish", str(reviews), "--source", "compose-test"], env)
    assert published.returncode == 0, published.stderr
    assert "sent 40, rejected 0, failed 0" in published.stdout

    # 5. The worker service's command, when the stream part is installed.
    if importlib.util.find_spec("stream.worker") is None:
        pytest.skip("stream is not installed: migrate and publish ran against the containers")
    env.update(
        {
            "STREAM_SCORER": "tests.fixtures.stream:make_test_scorer",
            "STREAM_APP_ID": f"compose-test-{uuid.uuid4().hex[:6]}",
            "STREAM_WEB_PORT": str(free_port()),
            "STREAM_MAX_WAIT": "0.2",
        }
    )
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "worker", "--no-create-topics"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 120
        while count_rows(postgres_container_url) < 40 and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.5)
        assert count_rows(postgres_container_url) == 40, log_path.read_text(errors="replace")[-4000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, log_path.read_text(errors="replace")[-4000:]
