"""Embedded broker and database: they start, serve real clients, and leave nothing behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import create_engine, pool, text

from core import migrate
from core.config import KafkaSettings
from core.db import sqlalchemy_url
from core.embedded import (
    BrokerStartError,
    EmbeddedBroker,
    EmbeddedDatabase,
    admin_config,
    create_topics,
    free_port,
    read_infra_file,
    remove_infra_file,
    write_infra_file,
)

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


def _wait_until_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def _stop_leftover(pid: int) -> None:
    """A failed assertion must not leave a server behind."""
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).terminate()
        _wait_until_gone(pid)


_HOLD_DATABASE = """
import sys, time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from core.embedded import EmbeddedDatabase
print(EmbeddedDatabase(Path(sys.argv[1])).start().pid, flush=True)
time.sleep(120)
"""


@pytest.mark.slow
def test_a_crashed_user_of_the_database_does_not_keep_it_running_for_ever(tmp_path: Path) -> None:
    data_dir = tmp_path / "pg"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_DATABASE, str(data_dir)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    postgres_pid = int(holder.stdout.readline())
    try:
        holder.kill()  # no atexit, no cleanup: its pid stays in the handle count
        holder.wait(10)

        with EmbeddedDatabase(data_dir) as db:
            assert db.pid == postgres_pid  # the running server is reused ...
        assert _wait_until_gone(postgres_pid)  # ... and stopped by its last live user
        assert not (data_dir / "postmaster.pid").exists()
    finally:
        if holder.poll() is None:
            holder.kill()
        _stop_leftover(postgres_pid)


def test_broker_refuses_a_port_another_listener_holds(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        broker = EmbeddedBroker(tmp_path, port=port)
        with pytest.raises(BrokerStartError, match=f"127.0.0.1:{port} is already in use"):
            broker.start()
        assert broker.pid is None  # no Tansu was left to die on bind


def test_a_free_port_is_below_the_ephemeral_range_and_skips_one_in_use() -> None:
    """Outgoing connections take their source ports from the ephemeral range: a server port from
    there can be taken between picking it and binding it, one below it cannot."""
    import random

    floor = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    taken = free_port(rng=random.Random(7))
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", taken))
        other.listen()
        again = free_port(rng=random.Random(7))  # the same first pick, now held: passed over
    assert taken < floor
    assert again != taken
    assert again < floor


def test_topics_get_the_replication_factor_and_client_settings_asked_for(tmp_path: Path) -> None:
    with EmbeddedBroker(tmp_path) as broker:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, replication_factor=3)
        servers = broker.bootstrap_servers
        create_topics(servers, {"replicated": 2}, settings.replication_factor, client_config=admin_config(settings))
        from confluent_kafka.admin import AdminClient

        topic = AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(timeout=5).topics["replicated"]
        assert [len(p.replicas) for p in topic.partitions.values()] == [3, 3]

        # The same call with SSL settings speaks TLS, which this plaintext broker does not: it fails.
        ssl = settings.model_copy(update={"security_protocol": "SSL"})
        with pytest.raises(RuntimeError, match="could not create topic 'secured'"):
            create_topics(broker.bootstrap_servers, {"secured": 1}, timeout=2, client_config=admin_config(ssl))


def test_an_unreachable_broker_is_one_log_line_and_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    """librdkafka retried the connection every 50 ms and printed each refusal: 194 lines in 10 s."""
    servers = f"127.0.0.1:{free_port()}"

    with caplog.at_level("INFO", logger="core.embedded"), pytest.raises(RuntimeError) as refused:
        create_topics(servers, {"reviews": 1}, timeout=2)

    assert str(refused.value) == f"could not create topic 'reviews': no answer from {servers} in 2s"
    lines = [r.getMessage() for r in caplog.records if r.name == "core.embedded.librdkafka"]
    assert len(lines) == 1
    assert "Connection refused" in lines[0]


def test_a_partition_count_for_a_topic_that_exists_is_warned_about_not_ignored(
    kafka_bootstrap: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """`worker --partitions 8` on an existing 4-partition topic did nothing and said nothing."""
    servers, _ = kafka_bootstrap
    name = f"parts-{uuid.uuid4().hex[:8]}"
    create_topics(servers, {name: 2})

    with caplog.at_level("WARNING", logger="core.embedded"):
        create_topics(servers, {name: 2})
        assert "already exists" not in caplog.text  # the same count: nothing to say
        create_topics(servers, {name: 4})

    assert f"topic {name} already exists with 2 partitions, not 4" in caplog.text


def test_admin_config_is_the_producers_connection_without_producer_keys() -> None:
    settings = KafkaSettings(
        bootstrap_servers="k1:9093",
        client_id="scorer",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="secret",
        ssl_ca_location="/etc/ca.pem",
    )
    assert admin_config(settings) == {
        "bootstrap.servers": "k1:9093",
        "client.id": "scorer",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "secret",
        "ssl.ca.location": "/etc/ca.pem",
    }


def test_stopping_infra_up_leaves_the_state_file_of_a_later_one(tmp_path: Path) -> None:
    write_infra_file(tmp_path, "postgresql://mine", "127.0.0.1:1")
    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        theirs = {"DATABASE_URL": "postgresql://theirs", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:2"}
        (tmp_path / "infra.json").write_text(json.dumps({**theirs, "pid": later.pid}), encoding="utf-8")
        remove_infra_file(tmp_path)
        assert read_infra_file(tmp_path) == theirs
    finally:
        later.kill()
        later.wait()
    write_infra_file(tmp_path, "postgresql://mine", "127.0.0.1:1")
    remove_infra_file(tmp_path)
    assert not (tmp_path / "infra.json").exists()


def test_a_second_infra_up_in_the_same_directory_refuses_to_start(tmp_path: Path) -> None:
    holds_the_lock = (  # what a running `infra up` does, from its first moment
        "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('locked', flush=True); time.sleep(60)"
    )
    first = subprocess.Popen(
        [sys.executable, "-c", holds_the_lock, str(tmp_path / "infra.lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout is not None
        assert first.stdout.readline().strip() == "locked"
        running = {"DATABASE_URL": "postgresql://first", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:2", "pid": first.pid}
        (tmp_path / "infra.json").write_text(json.dumps(running), encoding="utf-8")
        process = _infra_up(tmp_path)
        _, err = process.communicate(timeout=60)
    finally:
        first.kill()
        first.wait()
    assert process.returncode == 1
    assert f"an `infra up` (or a `worker --embedded`) already serves {tmp_path}" in err
    assert "postgresql://first" in err
    assert not (tmp_path / "pgdata").exists()  # nothing was started


@pytest.mark.slow
@contextlib.contextmanager
def _embedded_worker(state: Path, **env: str) -> Iterator[dict[str, Any]]:
    """A `worker --embedded` subprocess, once it announced its servers (what infra.json says)."""
    worker, found = _start_embedded_worker(state, new_session=False, **env)
    try:
        yield found
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)


def _start_embedded_worker(
    state: Path, *, new_session: bool, **env: str
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start `worker --embedded` (a group of its own with ``new_session``, as a shell's foreground
    job) and wait for its announcement; the caller stops it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "KAFKA_", "STREAM_", "MODEL_"))}
    clean |= {"REVIEWSCORE_STATE_DIR": str(state), "STREAM_SCORER": "stream.scorers:NoopScorer", **env}
    worker = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "worker", "--embedded", "--web-port", "0"],
        env=clean,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
    )
    try:
        deadline = time.monotonic() + 60
        while (found := read_infra_file(state)) is None:
            assert worker.poll() is None, f"the worker exited: {worker.stderr.read() if worker.stderr else ''}"
            assert time.monotonic() < deadline, "the worker never announced its servers"
            time.sleep(0.2)
    except BaseException:
        worker.kill()
        worker.wait()
        raise
    return worker, found


def test_a_worker_with_embedded_servers_is_found_by_other_commands_and_infra_up_defers_to_it(
    tmp_path: Path,
) -> None:
    """Before, `infra up` next to `worker --embedded` started a second broker and pointed the
    other commands at it: what they published never reached the worker."""
    state = tmp_path / "state"
    with _embedded_worker(state) as found:
        second = _infra_up(state)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 1
        assert found["KAFKA_BOOTSTRAP_SERVERS"] in err
        assert read_infra_file(state) == found  # still the worker's
        assert _produce_and_consume(found["KAFKA_BOOTSTRAP_SERVERS"], "reviews")
    assert read_infra_file(state) is None
    assert not (state / "infra.json").exists()


def test_a_worker_that_started_only_the_broker_announces_it_with_the_configured_database(
    tmp_path: Path, database_url: str
) -> None:
    """It announced nothing unless it had started both: `publish` next to it found no broker."""
    state = tmp_path / "state"
    with _embedded_worker(state, DATABASE_URL=database_url) as found:
        assert found["DATABASE_URL"] == database_url
        assert _produce_and_consume(found["KAFKA_BOOTSTRAP_SERVERS"], "reviews")
        assert (state / "infra.json").stat().st_mode & 0o777 == 0o600  # a configured URL may hold a password
    assert read_infra_file(state) is None


def test_a_dead_infra_up_left_as_a_zombie_is_not_taken_for_a_running_one(tmp_path: Path) -> None:
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)  # exited; not reaped until wait() below
        write_infra_file(tmp_path, "postgresql://gone", "127.0.0.1:1")
        data = json.loads((tmp_path / "infra.json").read_text(encoding="utf-8"))
        (tmp_path / "infra.json").write_text(json.dumps({**data, "pid": zombie.pid}), encoding="utf-8")
        assert read_infra_file(tmp_path) is None
    finally:
        zombie.wait()


def test_a_state_file_whose_pid_now_belongs_to_another_process_is_stale(tmp_path: Path) -> None:
    write_infra_file(tmp_path, "postgresql://mine", "127.0.0.1:1")
    assert read_infra_file(tmp_path) is not None  # this process, as written
    data = json.loads((tmp_path / "infra.json").read_text(encoding="utf-8"))
    (tmp_path / "infra.json").write_text(json.dumps({**data, "started": "1"}), encoding="utf-8")
    assert read_infra_file(tmp_path) is None  # same pid, another start: a restarted container's PID 1


def _infra_up(state: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "core.cli", "infra", "up"],
        env={**os.environ, "REVIEWSCORE_STATE_DIR": str(state), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _postmaster_pid(state: Path) -> int | None:
    try:
        return int((state / "pgdata" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@pytest.mark.slow
def test_infra_up_fails_clearly_when_its_broker_port_is_taken(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        process = _infra_up(state, REVIEWSCORE_BROKER_PORT=str(port))
        try:
            _, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 1
    assert f"error: port 127.0.0.1:{port} is already in use" in err
    assert "Traceback" not in err
    assert _postmaster_pid(state) is None  # the database it had started is stopped again
    assert read_infra_file(state) is None


@pytest.mark.slow
def test_infra_up_exits_1_when_its_broker_dies(tmp_path: Path) -> None:
    state = tmp_path / "state"
    process = _infra_up(state)
    postgres_pid = None
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("export KAFKA_FLAVOR"):
                break
        postgres_pid = _postmaster_pid(state)
        (tansu,) = [p for p in psutil.Process(process.pid).children() if p.name() == "tansu"]
        tansu.kill()
        assert process.wait(30) == 1
        assert "the embedded broker exited" in (process.stderr.read() if process.stderr else "")
        assert postgres_pid is not None
        assert _wait_until_gone(postgres_pid)
        assert read_infra_file(state) is None
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        if postgres_pid is not None:
            _stop_leftover(postgres_pid)


def test_ctrl_c_to_the_terminal_group_of_a_worker_with_embedded_servers_stops_it_quickly_and_cleanly(
    tmp_path: Path,
) -> None:
    """Ctrl-C signals the whole foreground group: the broker, in it, died first, and the worker
    retried the dead broker for a minute (77 error lines) before it exited."""
    state = tmp_path / "state"
    worker, _ = _start_embedded_worker(state, new_session=True)
    try:
        time.sleep(2)  # joined its group and polling
        started = time.monotonic()
        os.killpg(worker.pid, signal.SIGINT)
        _, err = worker.communicate(timeout=40)
        took = time.monotonic() - started
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    assert worker.returncode == 0, err[-3000:]
    assert took < 20, f"stopped in {took:.1f}s"
    assert "Connection refused" not in err, err[-3000:]
    assert read_infra_file(state) is None
