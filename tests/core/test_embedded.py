"""Embedded broker and database: they start, serve real clients, and leave nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, pool, text

from core import migrate
from core.db import sqlalchemy_url
from core.embedded import EmbeddedBroker, EmbeddedDatabase, read_infra_file

pytestmark = pytest.mark.integration


def _produce_and_consume(bootstrap: str, topic: str) -> list[bytes]:
    from confluent_kafka import Consumer, Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(10):
        producer.produce(topic, key=str(i).encode(), value=f"m{i}".encode())
    assert producer.flush(10) == 0
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "t", "auto.offset.reset": "earliest", "session.timeout.ms": 6000}
    )
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 15
    while len(got) < 10 and time.monotonic() < deadline:
        got += [m.value() for m in consumer.consume(100, 0.5) if not m.error()]
    consumer.close()
    return got


def test_broker_creates_topics_serves_clients_and_stops(tmp_path: Path) -> None:
    with EmbeddedBroker(tmp_path, topics={"reviews": 4, "reviews.dlq": 1}) as broker:
        pid = broker.pid
        assert pid is not None
        assert psutil.pid_exists(pid)
        from confluent_kafka.admin import AdminClient

        metadata = AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(timeout=5)
        assert len(metadata.topics["reviews"].partitions) == 4
        assert "reviews.dlq" in metadata.topics
        assert sorted(_produce_and_consume(broker.bootstrap_servers, "reviews")) == sorted(
            f"m{i}".encode() for i in range(10)
        )
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_database_starts_serves_and_stops(tmp_path: Path) -> None:
    with EmbeddedDatabase(tmp_path / "pg") as db:
        pid = db.pid
        engine = create_engine(sqlalchemy_url(db.url), poolclass=pool.NullPool)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1 + 1")).scalar_one() == 2
        engine.dispose()
    assert pid is not None
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(pid)


def _descendants_and_servers(root: int) -> list[psutil.Process]:
    try:
        return psutil.Process(root).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
def test_infra_up_is_ready_quickly_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "REVIEWSCORE_STATE_DIR": str(tmp_path / "state")}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "infra", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("export KAFKA_FLAVOR"):
                break
        ready_after = time.monotonic() - started
        assert ready_after < 10, lines
        assert any(line.startswith("export DATABASE_URL=") for line in lines)
        found = read_infra_file(tmp_path / "state")
        assert found is not None
        engine = create_engine(sqlalchemy_url(found["DATABASE_URL"]), poolclass=pool.NullPool)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == migrate.head_revision()
        engine.dispose()
        assert _produce_and_consume(found["KAFKA_BOOTSTRAP_SERVERS"], "reviews")

        children = _descendants_and_servers(process.pid)
        postgres = psutil.Process(int((tmp_path / "state" / "pgdata" / "postmaster.pid").read_text().split()[0]))
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        assert "stopped" in (process.stdout.read() or "")
        deadline = time.monotonic() + 10
        alive = [p for p in [*children, postgres] if p.is_running()]
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert alive == []
        assert read_infra_file(tmp_path / "state") is None
    finally:
        if process.poll() is None:  # a failed assertion must not leave the broker and PostgreSQL running
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
