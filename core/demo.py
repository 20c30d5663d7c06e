"""``reviewscore demo``: the whole pipeline on embedded parts, on one machine, in one command.

The demo is process orchestration only: it starts the embedded broker and database in this
process and runs every other part as the same ``reviewscore`` sub-commands a deployment runs
(worker, api, fixture-site, crawl) in child processes, so core imports none of them. Parts
whose commands are not installed are skipped with a note.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import create_engine, pool, text

from core import migrate
from core.config import KafkaSettings, get_database_settings, get_infra_settings, get_kafka_settings
from core.db import sqlalchemy_url
from core.embedded import (
    EmbeddedBroker,
    EmbeddedDatabase,
    StateDirBusyError,
    die_with_parent_of,
    free_port,
    holding_state_dir,
    wait_for_port,
)

SAMPLE_FILE = Path(__file__).parent / "samples" / "demo_reviews.jsonl"
SUBMITTED: list[dict[str, Any]] = [
    {"text": "Ordered on Monday, arrived on Tuesday, works perfectly. Great shop!", "brand": "Acme", "rating": 5},
    {"text": "The app keeps logging me out and support never answers.", "brand": "Globex", "rating": 1},
    {"text": "Fine, I guess. Nothing to write home about.", "brand": "Initech"},
]

Say = Callable[[str], None]


@dataclass
class Children:
    """Child processes that die with us (PR_SET_PDEATHSIG) and are stopped with SIGTERM first."""

    log_dir: Path
    env: dict[str, str]
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "core.cli", *args]

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        self._logs.append(log)
        # Own sessions, like the broker's: on Ctrl-C only the demo hears it, and stops the worker,
        # API and crawler before the broker and database they use.
        process = subprocess.Popen(
            self.command(*args),
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent_of(os.getpid()),
            start_new_session=True,
        )
        self.running[name] = process
        return process

    def run(self, name: str, *args: str, timeout: float = 300) -> int:
        with (self.log_dir / f"{name}.log").open("wb") as log:
            return subprocess.run(
                self.command(*args), env=self.env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False
            ).returncode

    def stop_all(self, timeout: float = 20.0) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.running.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self._logs:
            log.close()


def _http(method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 10) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _http("GET", url, timeout=2)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def _fresh_database(server_url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    admin = create_engine(sqlalchemy_url(server_url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _count_rows(url: str) -> int:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM sentiments")).scalar_one())
    finally:
        engine.dispose()


def _show_rows(url: str, say: Say, limit: int = 12) -> None:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT label, round(sentiment_score::numeric, 3), suggested_rating, rating, coalesce(brand, '-'),"
                " source, left(sentence, 60) FROM sentiments ORDER BY created_on, id LIMIT :n"
            ),
            {"n": limit},
        ).all()
    engine.dispose()

    def cut(value: str, width: int) -> str:
        return value if len(value) <= width else value[: width - 1] + "…"

    # Columns as wide as what they hold (up to a bound), so a long brand does not shift the row.
    brand_w = min(18, max([5, *(len(row[4]) for row in rows)]))
    source_w = min(20, max([6, *(len(row[5]) for row in rows)]))
    say(f"  {'label':<9} {'score':>6} {'sugg':>4} {'stars':>5}  {'brand':<{brand_w}} {'source':<{source_w}} text")
    for label, score, suggested, stars, brand, source, sentence in rows:
        say(
            f"  {label:<9} {score!s:>6} {suggested:>4} {stars or '-'!s:>5}  {cut(brand, brand_w):<{brand_w}}"
            f" {cut(source, source_w):<{source_w}} {sentence}"
        )


def run_demo(commands: set[str], once: bool, timeout: float, say: Say) -> int:
    """Bring everything up, show it working; stay up until Ctrl-C unless ``once``."""
    started = time.perf_counter()
    state = (get_infra_settings().state_dir / "demo").resolve()
    (state / "logs").mkdir(parents=True, exist_ok=True)
    with ExitStack() as held:
        # A second demo here would drop and re-create the first one's database under its worker
        # and start a broker on the same log directory.
        try:
            held.enter_context(holding_state_dir(state))
        except StateDirBusyError:
            say(f"error: a demo already runs in {state}; stop it first, or set REVIEWSCORE_STATE_DIR for a second one")
            return 1
        return _run_demo(state, commands, once, timeout, say, started)


def _run_demo(state: Path, commands: set[str], once: bool, timeout: float, say: Say, started: float) -> int:
    infra = get_infra_settings()
    kafka = get_kafka_settings()
    stop_requested = False

    def request_stop(*_: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    with ExitStack() as stack:
        db = stack.enter_context(EmbeddedDatabase(infra.state_dir.resolve() / "pgdata"))
        broker = stack.enter_context(EmbeddedBroker(state, topics={kafka.topic: kafka.partitions, kafka.dlq_topic: 1}))
        url = _fresh_database(db.url, "reviewscore_demo")
        migrate.upgrade(url, "head", get_database_settings().readonly_role)
        say(f"[{time.perf_counter() - started:5.1f}s] broker {broker.bootstrap_servers}, PostgreSQL migrated")
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "KAFKA_FLAVOR": "tansu",
            "STREAM_WEB_PORT": str(free_port()),
        }
        children = Children(state / "logs", env)
        stack.callback(children.stop_all)
        expected = 0

        if "worker" in commands:
            children.start("worker", "worker")
            say(f"[{time.perf_counter() - started:5.1f}s] worker starting (log: {state / 'logs' / 'worker.log'})")
        else:
            say("worker: the stream extra is not installed; messages will stay on the topic")

        api_url = None
        if "api" in commands:
            port = free_port()
            env["API_PORT"] = str(port)
            children.start("api", "api", "--port", str(port))
            api_url = f"http://127.0.0.1:{port}"

        from core.publish import ColumnMap, prepare, publish_messages, read_rows

        prepared = prepare(read_rows(SAMPLE_FILE), ColumnMap(), "demo")
        delivery = publish_messages(
            prepared.messages,
            kafka.model_copy(update={"bootstrap_servers": broker.bootstrap_servers, "flavor": "tansu"}),
        )
        expected += delivery.sent
        say(f"[{time.perf_counter() - started:5.1f}s] published {delivery.sent} sample reviews from {SAMPLE_FILE.name}")

        if "fixture-site" in commands and "crawl" in commands:
            site_port = free_port()
            children.start("fixture-site", "fixture-site", "--port", str(site_port))
            wait_for_port("127.0.0.1", site_port, 15)
            before = time.perf_counter()
            # The fixture site is ours and local: politeness delays would only slow the demo down.
            children.env |= {
                "SCRAPER_DOWNLOAD_DELAY": "0",
                "SCRAPER_AUTOTHROTTLE": "false",
                "SCRAPER_CONCURRENCY_PER_DOMAIN": "8",
            }
            code = children.run(
                "crawl",
                "crawl",
                "trustpilot",
                "--start-url",
                f"http://127.0.0.1:{site_port}/",
                "--state-dir",
                str(state / "scraper"),
            )
            crawled = _published_count(state / "logs" / "crawl.log")
            expected += crawled
            say(
                f"[{time.perf_counter() - started:5.1f}s] crawled the bundled fixture site: {crawled} reviews"
                f" published (exit {code}, {time.perf_counter() - before:.1f}s)"
            )

        if api_url and _wait_http(f"{api_url}/healthz", 60):
            for review in SUBMITTED:
                status, body = _http("POST", f"{api_url}/sentiments/", review)
                if status == 202:
                    expected += 1
                if status == 202:
                    say(f"POST /sentiments/ -> 202 {body['status']}: {body['review_key']}")
                else:
                    say(f"POST /sentiments/ -> {status} {json.dumps(body)[:200]}")

        if "worker" not in commands:
            _show_topic(kafka.model_copy(update={"bootstrap_servers": broker.bootstrap_servers}), expected, say)
            return 0

        first_row_at = None
        deadline = time.monotonic() + timeout
        count = 0
        while time.monotonic() < deadline and not stop_requested:
            count = _count_rows(url)
            if count and first_row_at is None:
                first_row_at = time.perf_counter() - started
                say(f"[{first_row_at:5.1f}s] first scored row in PostgreSQL")
            if count >= expected:
                break
            time.sleep(0.25)
        say(f"[{time.perf_counter() - started:5.1f}s] {count}/{expected} reviews scored")
        _show_rows(url, say)
        if first_row_at is not None:
            say(f"time from start to the first scored row: {first_row_at:.1f}s")
        if api_url and not once:  # with --once the servers are gone by the time these are read
            say("")
            say(f"dashboard:  {api_url}/")
            say(f"API docs:   {api_url}/docs")
            say(f"  curl '{api_url}/sentiments/?brand=Acme&limit=5'")
            say(f"  curl '{api_url}/sentiments/stats?group_by=label&bucket=day'")
            say(
                f"  curl -X POST {api_url}/sentiments/ -H 'Content-Type: application/json'"
                ' -d \'{"text": "Great support!", "brand": "Acme"}\''
            )
        if once:
            return 0 if count >= expected else 1
        say("\nrunning; press Ctrl-C to stop")
        while not stop_requested:
            time.sleep(0.3)
    say("stopped")
    return 0


def _show_topic(settings: KafkaSettings, expected: int, say: Say) -> None:
    """Without a worker, prove the messages are on the broker by reading them back."""
    from confluent_kafka import Consumer

    consumer = Consumer(settings.consumer_config(group_id="reviewscore-demo-reader"))
    consumer.subscribe([settings.topic])
    seen: list[bytes] = []
    deadline = time.monotonic() + 20
    while len(seen) < expected and time.monotonic() < deadline:
        seen += [m.value() for m in consumer.consume(500, 0.5) if not m.error()]
    consumer.close()
    say(f"read back {len(seen)} messages from topic {settings.topic!r}; the first ones:")
    for value in seen[:5]:
        say(f"  {value.decode()[:120]}")


def _published_count(log: Path) -> int:
    """The crawl prints a summary line like 'published N'; fall back to 0 when absent."""
    matches = re.findall(r"published[\"']?[:=]?\s*(\d+)", log.read_text(encoding="utf-8", errors="replace"))
    return int(matches[-1]) if matches else 0
