"""Query API benchmark: 1,000,000 seeded rows, 32 concurrent clients, p50/p99 per query kind.

    python bench/api.py [--rows 1000000] [--clients 32] [--requests 2000] [--workers 2] [--explain]
                        [--cache both|on|off] [--write-every SECONDS] [--staleness SECONDS] [--rounds N]
    python bench/api.py --against REVISION --cache on|off [--rounds 3]   # a revision's code against this one
    python bench/api.py --variant 'one:API_READ_CONCURRENCY=1' --variant default --cache off   # settings side by side
    python bench/api.py --in-process [--requests 2000] [--only TEXT]   # CPU per request, app alone

Uses ``BENCH_DATABASE_URL`` (a server where it may create the database ``rs_bench``) or else an
embedded PostgreSQL under ``.reviewscore/bench-pg``. Seeds with COPY (indexes dropped first and
rebuilt after, as a bulk load should), serves the real app with uvicorn in a subprocess (the
SELECT-only role, read-only transactions), and drives it from one asyncio process. The client
shares the machine's cores with the server, so figures are upper bounds of the server's latency.
Prints figures; asserts nothing.

``--cache both`` (the default) serves each query from two sets of servers in turn, one with the
read cache off (``API_READ_CACHE_MB=0``: every request queries PostgreSQL) and one with it on, and
prints both with the share of cache hits. The queries repeat (50 brands, one deep cursor), so
without writes nearly every cached request is a hit: ``--write-every 0.5`` commits a one-row
write that often during the run, as an ingesting worker does once per batch, and each commit
empties the cache (or, with ``--staleness S``, leaves each answer servable S seconds more).

``--against REV`` serves each query from two sets of servers in turn, one running the code of git
revision REV (``git archive`` into a temporary directory) and one this checkout's, against the
same database; with ``--rounds N`` each query runs N times per set, the order alternating, and the
medians are printed. That is how a change's effect is told from the machine's noise, which moved
the p99 of one unchanged server by ±20% between minutes on the shared 2-core machines here.
``--variant LABEL:NAME=VALUE,...`` does the same for settings: one set of servers per variant,
this checkout's code with that environment.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import NamedTuple

import httpx
from sqlalchemy import Engine, create_engine, pool, text
from sqlalchemy.dialects import postgresql
from variants import parse_variant  # bench/, the script's own directory

from core import migrate
from core.db import libpq_url, sqlalchemy_url
from core.embedded import EmbeddedDatabase, free_port
from core.rollup import ROLLUPS
from core.schema import SEARCH_CONFIG
from query_api.cursor import Cursor, encode_cursor
from query_api.filters import Filters
from query_api.queries import (
    BY_ID,
    export_statement,
    list_statement,
    scan_stats_statement,
    stats_statement,
    trend_windows,
    trends_statement,
)

ROLE = "reviewscore_reader"
EPOCH = "2000-01-01T00:00:00Z"
DB = "rs_bench"
BRANDS = [f"Brand{i:02d}" for i in range(50)]
SOURCES = ["scraper:trustpilot", "scraper:amazon", "user", "cli", "partner:feed"]
WORDS = [
    "delivery",
    "fast",
    "slow",
    "refund",
    "broken",
    "lovely",
    "terrible",
    "excellent",
    "support",
    "fabric",
    "colour",
    "size",
    "shipping",
    "price",
    "quality",
    "return",
    "awful",
    "great",
    "comfortable",
    "cheap",
    "service",
    "staff",
    "order",
    "late",
    "early",
    "perfect",
    "poor",
    "friendly",
]
END = datetime(2026, 11, 23, tzinfo=UTC)
START = END - timedelta(days=365)
MONTH = (END - timedelta(days=60), END - timedelta(days=30))  # a month of publication, as the dashboard asks
COLUMNS = (
    "review_key, sentence, sentiment_score, confidence, label, suggested_rating, brand, source, rating, "
    "url, lang, published_at, model_version, created_on"
)


def csv_rows(count: int, seed: int = 1) -> Iterator[str]:
    rng = random.Random(seed)
    span = (END - START).total_seconds()
    for i in range(count):
        score = rng.random()
        label = "negative" if score < 0.4 else ("neutral" if score < 0.6 else "positive")
        created = START + timedelta(seconds=span * i / count + rng.random())
        text_ = " ".join(rng.choices(WORDS, k=rng.randint(5, 30)))
        yield (
            f"bench:{i}\t{text_}\t{score:.6f}\t{0.5 + rng.random() / 2:.6f}\t{label}\t{min(5, int(score * 5) + 1)}\t"
            f"{rng.choice(BRANDS)}\t{rng.choice(SOURCES)}\t{rng.randint(1, 5)}\t\\N\ten\t"
            f"{(created - timedelta(days=rng.randint(0, 30))).isoformat()}\tbench-model\t{created.isoformat()}\n"
        )


class RowStream(io.TextIOBase):
    """A file-like view over generated lines, so COPY streams without building 150 MB first."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self._buffer = ""

    def read(self, size: int | None = -1) -> str:
        while size is None or size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._lines)
            except StopIteration:
                break
        if size is None or size < 0:
            out, self._buffer = self._buffer, ""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def readline(self, size: int | None = -1) -> str:  # pragma: no cover - COPY uses read()
        return self.read(size)


def analyze(engine: Engine) -> None:
    """Fresh statistics and visibility maps, as autovacuum would leave them after a bulk load."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("sentiments", "sentiment_search", "sentiment_search_pending", *(r.table for r in ROLLUPS)):
            conn.execute(text(f"VACUUM ANALYZE {table}"))


def prepare_database(server_url: str, rows: int) -> tuple[str, str]:
    admin = create_engine(sqlalchemy_url(server_url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    url = libpq_url(sqlalchemy_url(server_url).set(database=DB))
    reader = libpq_url(sqlalchemy_url(url).set(username=ROLE, password=None))
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": DB}).first()
    if exists:
        with engine.connect() as conn:
            have = conn.execute(text("SELECT count(*) FROM sentiments")).scalar_one()
        if have == rows:
            # A database seeded by an older bench gains the newer migrations (their backfills).
            migrate.upgrade(url, "head", ROLE)
            analyze(engine)
            print(f"reusing {DB} with {have:,} rows")
            return url, reader
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{DB}" WITH (FORCE)'))
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{DB}"'))
    migrate.upgrade(url, "head", ROLE)
    started = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(
            "SELECT indexdef, indexname FROM pg_indexes"
            " WHERE tablename IN ('sentiments', 'sentiment_search') AND indexname LIKE 'ix_%'"
        )
        indexes = cur.fetchall()
        for _, name in indexes:
            cur.execute(f"DROP INDEX {name}")
        cur.copy_expert(f"COPY sentiments ({COLUMNS}) FROM STDIN", RowStream(csv_rows(rows)))
        # The search documents the worker's indexer would write, in one pass over the fresh load: nothing
        # else writes here, so core.search.index_pending's slices, locks and notification buy nothing.
        cur.execute(
            "WITH taken AS (DELETE FROM sentiment_search_pending RETURNING id) INSERT INTO sentiment_search"
            f" SELECT r.id, to_tsvector('{SEARCH_CONFIG}', r.sentence) FROM sentiments r JOIN taken USING (id)"
        )
        loaded = time.perf_counter()
        cur.execute("SET maintenance_work_mem = '512MB'")
        for definition, _ in indexes:
            cur.execute(definition)
        raw.commit()
    finally:
        raw.close()
    analyze(engine)
    done = time.perf_counter()
    print(f"seeded {rows:,} rows: COPY {loaded - started:.1f}s, indexes + analyze {done - loaded:.1f}s")
    return url, reader


DEEP_SQL = "SELECT created_on, id FROM sentiments ORDER BY created_on DESC, id DESC OFFSET :n LIMIT 1"


def explain(url: str, rows: int) -> None:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        deep = conn.execute(text(DEEP_SQL), {"n": rows * 9 // 10}).one()
        queries = {
            "filtered list (brand + label, newest)": list_statement(
                Filters(brand="Brand07", label="negative"), "newest", None, 50
            ),
            "deep keyset page (newest, 90% deep)": list_statement(
                Filters(), "newest", Cursor("newest", deep.created_on, deep.id, ""), 50
            ),
            "by id": BY_ID.params(row_id=123_456),
            "daily stats, one brand, one year (rollup)": stats_statement(
                Filters(brand="Brand07", since=START, until=END), None, "day", "created_on", 10_000
            ),
            "daily stats, one brand, one year (from the rows)": scan_stats_statement(
                Filters(brand="Brand07", since=START, until=END), None, "day", "created_on", 10_000
            ),
            "full-text search (q=refund late)": list_statement(Filters(q="refund late"), "newest", None, 50),
            "published in one month (newest)": list_statement(
                Filters(published_since=MONTH[0], published_until=MONTH[1]),
                "newest",
                None,
                50,
            ),
            "daily stats by publication time, one brand, one year": scan_stats_statement(
                Filters(brand="Brand07", published_since=START, published_until=END),
                None,
                "day",
                "published_at",
                10_000,
            ),
            "weekly stats by publication time, one brand, one month": scan_stats_statement(
                Filters(brand="Brand07", published_since=MONTH[0], published_until=MONTH[1]),
                None,
                "week",
                "published_at",
                10_000,
            ),
            "4-5 stars read as negative (newest)": list_statement(
                Filters(label="negative", min_rating=4), "newest", None, 50
            ),
            "stars chart, one brand (stats by rating, all time)": stats_statement(
                Filters(brand="Brand07"), "rating", None, "created_on", 6
            ),
            "brand trends, last week against the week before (rollup)": trends_statement(
                Filters(), trend_windows(END, 7), "created_on", 5, "falling", 20
            ),
            "brand trends, the same from the rows (min_score=0)": trends_statement(
                Filters(min_score=0), trend_windows(END, 7), "created_on", 5, "falling", 20
            ),
            "export": export_statement(Filters(), 100_000),
        }
        for title, statement in queries.items():
            sql = statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
            plan = conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}")).scalars().all()
            print(f"\n-- {title}\n" + "\n".join(plan))
    engine.dispose()


class Servers(NamedTuple):
    bases: list[str]
    pids: list[int]


def start_servers(
    url: str,
    reader: str,
    workers: int,
    stack: ExitStack,
    cache: bool = True,
    staleness: float = 0.0,
    tree: Path | None = None,
    settings: dict[str, str] | None = None,
) -> Servers:
    """One single-worker server per port, the clients spread evenly over them, as a load balancer
    would: behind one ``--workers N`` socket the accept loop of whichever worker woke first took most
    of a burst of keep-alive connections (32/0 in three of twenty tries), so a run measured one
    worker or two by luck. ``tree``: serve the code of that directory instead of this checkout's;
    ``settings``: environment the servers get on top of the benchmark's."""
    servers = Servers([], [])
    for _ in range(workers):
        server, base = start_server(url, reader, cache, staleness, tree, settings)
        stack.callback(server.wait, 20)  # registered at once: a later server that fails leaves none
        stack.callback(server.terminate)
        servers.bases.append(base)
        servers.pids.append(server.pid)
    return servers


def start_server(
    url: str,
    reader: str,
    cache: bool = True,
    staleness: float = 0.0,
    tree: Path | None = None,
    settings: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DATABASE_READONLY_URL": reader,
        "DATABASE_POOL_SIZE": "20",
        "DATABASE_MAX_OVERFLOW": "20",
    }
    if not cache:
        env["API_READ_CACHE_MB"] = "0"
    env["API_READ_CACHE_STALENESS"] = str(staleness)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.update(settings or {})
    if tree is not None:  # its packages ahead of this checkout's (installed in editable mode)
        env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])
    command = [sys.executable, "-m", "uvicorn", "query_api.app:create_app", "--factory", "--port", str(port)]
    command += ["--workers", "1", "--log-level", "warning", "--no-access-log"]
    server = subprocess.Popen(command, env=env, cwd=tree)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            # With the cache on, ready once its change listener listens (the cache serves nothing before).
            if httpx.get(base + "/healthz", timeout=1).status_code == 200 and (
                not cache or cache_metric(base, "reviewscore_api_read_cache_live") == 1
            ):
                return server, base
            time.sleep(0.1)
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the API did not start")


def cache_metric(base: str, name: str) -> float:
    """One sample of the server's /metrics (0 when absent)."""
    for line in httpx.get(base + "/metrics", timeout=5).text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == name:
            return float(value)
    return 0.0


def cache_hits(bases: list[str]) -> tuple[float, float]:
    """Requests served without a query of their own (cache hits, and joins of the same read in
    flight), and cacheable requests, so far over the servers."""
    counts = [
        cache_metric(base, f'reviewscore_api_read_cache_total{{outcome="{outcome}"}}')
        for base in bases
        for outcome in ("hit", "joined", "miss", "uncached")
    ]
    return sum(counts[0::4]) + sum(counts[1::4]), sum(counts)


def checkout(revision: str, stack: ExitStack) -> Path:
    """This repository's tree at ``revision`` in a temporary directory (``git archive``: the work
    tree and its branch are left alone)."""
    tree = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-api-")))
    archive = subprocess.run(["git", "archive", revision], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as files:
        files.extractall(tree, filter="data")
    return tree


def cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU the processes used so far (Linux ``/proc``; None elsewhere)."""
    try:
        total = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    except OSError:
        return None
    return total / os.sysconf("SC_CLK_TCK")


class Writer(threading.Thread):
    """A one-row write committed every ``interval`` seconds, as an ingesting worker commits a batch:
    each commit is announced and empties the API's read cache. The row is rewritten as it was
    (its statement-level trigger fires all the same), so the seeded data and counts stay put."""

    def __init__(self, url: str, interval: float, max_id: int) -> None:
        super().__init__(daemon=True)
        self.interval, self.max_id = interval, max_id
        self.engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
        self.writes = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        rng = random.Random(11)
        with self.engine.connect() as conn:
            while not self.stopped.wait(self.interval):
                conn.execute(
                    text("UPDATE sentiments SET confidence = confidence WHERE id = :id"),
                    {"id": rng.randint(1, self.max_id)},
                )
                conn.commit()
                self.writes += 1

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        self.engine.dispose()


class KeepAliveClient:
    """One HTTP/1.1 keep-alive connection with a minimal GET, for the load generator.

    httpx costs ~7 ms of CPU per request here, so 32 httpx clients took a core from the server
    they measured; this costs ~0.15 ms, so the figures describe the server. Bodies are read by
    Content-Length (the API sends it on every non-streamed response).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def get(self, path: str) -> tuple[int, bytes]:
        await self.connect()
        assert self._reader is not None
        assert self._writer is not None
        self._writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        head = await self._reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(head[9:12]), await self._reader.readexactly(length)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


async def load(
    bases: list[str], make_path: Callable[[int], str], clients: int, requests: int
) -> tuple[list[float], float]:
    """``clients`` closed-loop clients, spread evenly over the servers, share ``requests`` requests;
    latency of each, and the wall time."""
    latencies: list[float] = []
    pending = iter(range(requests))
    connections = []
    for number in range(clients):
        url = httpx.URL(bases[number % len(bases)])
        connections.append(KeepAliveClient(url.host, url.port or 80))
    # Connected before the clock: a connection's set-up in a request's latency would be 32 of the
    # samples, more than the 1% tail a p99 of 2,000 requests stands on.
    await asyncio.gather(*(connection.connect() for connection in connections))

    async def client(connection: KeepAliveClient) -> None:
        try:
            for i in pending:
                started = time.perf_counter()
                status, body = await connection.get(make_path(i))
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    raise RuntimeError(f"{status}: {body[:200]!r}")
        finally:
            connection.close()

    wall = time.perf_counter()
    await asyncio.gather(*(client(connection) for connection in connections))
    return latencies, time.perf_counter() - wall


async def in_process_costs(
    url: str, reader: str, kinds: dict[str, Callable[[int], str]], requests: int, cache: bool
) -> None:
    """Each query's cost to the app alone: the ASGI app called in this process, one request at a
    time, no socket, no HTTP parsing, no client. The CPU time is this process's (the thread pool's
    included, PostgreSQL's not): a figure that holds still from run to run where the 32-client
    latencies swing by ±15%, for telling what a change to the request path costs."""
    from core.config import ApiSettings, DatabaseSettings, KafkaSettings
    from query_api.app import create_app

    # Reads only: no broker, as the served runs have none.
    api = ApiSettings() if cache else ApiSettings(read_cache_mb=0)
    app = create_app(api, DatabaseSettings(url=url, readonly_url=reader), KafkaSettings(bootstrap_servers=None))

    async def call(path_and_query: str) -> int:
        path, _, query = path_and_query.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"bench")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        statuses: list[int] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(int(str(message["status"])))

        await app(scope, receive, send)
        return statuses[0]

    print(f"\nin process, one request at a time, {requests} requests per query, read cache {'on' if cache else 'off'}")
    print(f"{'query':40} {'CPU ms':>8} {'wall ms':>8}")
    async with app.router.lifespan_context(app):
        state = app.state.reviewscore
        while cache and not state.cache.live:
            await asyncio.sleep(0.05)
        for name, make_path in kinds.items():
            count = max(10, requests // 10) if name.endswith("*") else requests
            for i in range(min(100, count)):  # warm-up: statements prepared, pool filled
                await call(make_path(i))
            cpu, wall = time.process_time(), time.perf_counter()
            for i in range(count):
                status = await call(make_path(i))
                if status != 200:
                    raise RuntimeError(f"{name}: {status}")
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(f"{name:40} {1000 * cpu / count:8.3f} {1000 * wall / count:8.3f}")


class Variant(NamedTuple):
    label: str
    cached: bool
    tree: Path | None
    """The code served: a revision's tree (``--against``), or this checkout's (None)."""
    settings: tuple[tuple[str, str], ...] = ()
    """Environment of its servers on top of the benchmark's (``--variant``)."""


class Run(NamedTuple):
    p50: float
    p99: float
    rate: float
    cpu_ms: float | None
    hits: float | None


def cache_on(settings: dict[str, str], default: bool) -> bool:
    """Whether a variant's servers cache: its API_READ_CACHE_MB when it sets one, else --cache.

    Decides the readiness wait (the change listener) and the hits column, so it must follow the
    setting the servers really get."""
    if "API_READ_CACHE_MB" not in settings:
        return default
    return float(settings["API_READ_CACHE_MB"]) > 0


def measure(servers: Servers, cached: bool, make_path: Callable[[int], str], clients: int, requests: int) -> Run:
    """One warmed-up load of ``requests`` on ``servers``: latencies, throughput, their CPU, cache hits."""
    asyncio.run(load(servers.bases, make_path, clients, min(100, requests)))  # warm-up
    hits_before, reads_before = cache_hits(servers.bases) if cached else (0.0, 0.0)
    cpu_before = cpu_seconds(servers.pids)
    latencies, wall = asyncio.run(load(servers.bases, make_path, clients, requests))
    cpu_after = cpu_seconds(servers.pids)
    cpu_ms = None if cpu_before is None or cpu_after is None else 1000 * (cpu_after - cpu_before) / len(latencies)
    hits = None
    if cached:
        hits_after, reads_after = cache_hits(servers.bases)
        hits = 100 * (hits_after - hits_before) / max(1.0, reads_after - reads_before)
    return Run(pct(latencies, 0.5), pct(latencies, 0.99), len(latencies) / wall, cpu_ms, hits)


def cell(runs: list[Run], cached: bool) -> str:
    """Medians over the rounds of one variant."""
    cpu = [run.cpu_ms for run in runs if run.cpu_ms is not None]
    text = f"{median(run.p50 for run in runs):7.1f} {median(run.p99 for run in runs):7.1f} "
    text += f"{median(run.rate for run in runs):7.0f} " + (f"{median(cpu):6.2f}" if cpu else "     -")
    if cached:
        text += f" {median(run.hits or 0.0 for run in runs):4.0f}%"
    return text


def chosen(name: str, only: list[str] | None) -> bool:
    return not only or any(text in name for text in only)


def pct(values: list[float], q: float) -> float:
    """The nearest-rank percentile, in ms: the smallest value with at least ``q`` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--only",
        action="append",
        metavar="TEXT",
        help="run only the queries whose name contains this text (and no export); repeat for several",
    )
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the main queries")
    parser.add_argument(
        "--cache",
        choices=("both", "on", "off"),
        default="both",
        help="serve with the read cache off, on, or both side by side (default)",
    )
    parser.add_argument(
        "--write-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="commit a one-row write this often during the load (each one empties the read cache)",
    )
    parser.add_argument(
        "--staleness",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="API_READ_CACHE_STALENESS of the cached servers (default 0: a change drops every answer)",
    )
    parser.add_argument(
        "--against",
        metavar="REVISION",
        help="serve each query from this git revision's code and this checkout's, side by side (one --cache mode)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        metavar="LABEL:NAME=VALUE[,NAME=VALUE]",
        help=(
            "serve each query from one set of servers per variant, this checkout's code with these settings "
            "(e.g. 'limit 1:API_READ_CONCURRENCY=1'), side by side (one --cache mode); repeatable. Applied last: "
            "they override --cache and --staleness for that variant"
        ),
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure each query this many times per variant, alternating their order; print medians",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="instead of the load: each query's CPU per request in the app alone (ASGI called directly, no socket)",
    )
    args = parser.parse_args()
    if (args.against or args.variant) and args.cache == "both":
        parser.error("--against and --variant compare servers in one cache mode: add --cache on or --cache off")
    if args.against and args.variant:
        parser.error("--against compares code, --variant settings: one at a time")
    if args.against and Path(".env").exists():
        # Settings read ./.env from the working directory: this checkout's servers would get it, the
        # revision's (run in their own tree) would not, and the two sides would differ in more than code.
        parser.error("./.env would apply to this checkout's servers only: move it aside, or export its settings")
    if args.in_process and args.variant:
        parser.error("--in-process measures this process's app: run it once per setting instead of --variant")
    try:
        chosen_variants = [parse_variant(spec) for spec in args.variant or ()]
    except ValueError as exc:
        parser.error(str(exc))
    if len({label for label, _ in chosen_variants}) < len(chosen_variants):
        parser.error("--variant labels must differ (each names its own set of servers)")

    with ExitStack() as stack:
        server_url = os.environ.get("BENCH_DATABASE_URL")
        if not server_url:
            server_url = stack.enter_context(EmbeddedDatabase(Path(".reviewscore/bench-pg"))).url
        url, reader = prepare_database(server_url, args.rows)
        if args.explain:
            explain(url, args.rows)
        engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
        with engine.connect() as conn:
            max_id = conn.execute(text("SELECT max(id) FROM sentiments")).scalar_one()
            deep = conn.execute(text(DEEP_SQL), {"n": args.rows * 9 // 10}).one()
        engine.dispose()
        deep_cursor = encode_cursor(Cursor("newest", deep.created_on, deep.id, Filters().digest()))
        rng = random.Random(3)
        since, until = START.isoformat(), END.isoformat()
        month = MONTH[0].isoformat(), MONTH[1].isoformat()
        kinds = {
            "filtered list (brand+label, 50 rows)": lambda i: (
                f"/sentiments/?brand={rng.choice(BRANDS)}&label=negative&limit=50"
            ),
            "deep keyset page (90% deep)": lambda i: f"/sentiments/?cursor={deep_cursor}&limit=50",
            "by id": lambda i: f"/sentiments/{rng.randint(1, max_id)}",
            "daily stats by publication time, one brand, one year": lambda i: (
                f"/sentiments/stats?brand={rng.choice(BRANDS)}&bucket=day&time_field=published_at"
                f"&published_since={since}&published_until={until}"
            ).replace("+", "%2B"),
            "published in one month, 50 newest": lambda i: (
                f"/sentiments/?published_since={month[0]}&published_until={month[1]}&limit=50"
            ).replace("+", "%2B"),
            "daily stats, one brand, one year": lambda i: (
                f"/sentiments/stats?brand={rng.choice(BRANDS)}&bucket=day&since={since}&until={until}"
            ).replace("+", "%2B"),
            # min_score=0 keeps every row but is not a rollup column: the same answer from the rows.
            "  the same from the rows (min_score=0)": lambda i: (
                f"/sentiments/stats?brand={rng.choice(BRANDS)}&bucket=day&since={since}&until={until}&min_score=0"
            ).replace("+", "%2B"),
            # A since at a UTC midnight before every row keeps the answer but needs the daily rollup.
            "labels, all brands, all time": lambda i: "/sentiments/stats?group_by=label",
            "  the same from the daily rollup": lambda i: f"/sentiments/stats?group_by=label&since={EPOCH}",
            "full-text search (q=refund late), 50 newest": lambda i: "/sentiments/?q=refund%20late&limit=50",
            "4-5 stars read as negative, 50 newest": lambda i: "/sentiments/?min_rating=4&label=negative&limit=50",
            "stars chart, one brand": lambda i: f"/charts/stars.svg?brand={rng.choice(BRANDS)}",
            "stars chart, all brands*": lambda i: "/charts/stars.svg",
            "brands, all time": lambda i: "/brands?limit=100",
            "  the same from the daily rollup ": lambda i: f"/brands?limit=100&since={EPOCH}",
            "  the same from the rows (min_score=0)*": lambda i: "/brands?limit=100&min_score=0",
            "brand trends, 7 days against 7 (rollup)": lambda i: f"/brands/trends?end={until}".replace("+", "%2B"),
            "  trends from the rows (min_score=0)": lambda i: (f"/brands/trends?end={until}&min_score=0").replace(
                "+", "%2B"
            ),
        }
        modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.cache]
        if args.in_process:
            kinds = {name: path for name, path in kinds.items() if chosen(name, args.only)}
            for cached in modes:
                asyncio.run(in_process_costs(url, reader, kinds, args.requests, cached))
            return
        variants = [Variant(f"cache {'on' if cached else 'off'}", cached, None) for cached in modes]
        if args.against:
            # One cache mode, two trees: the revision's servers and this checkout's, side by side.
            variants = [
                Variant(args.against, modes[0], checkout(args.against, stack)),
                Variant("this tree", modes[0], None),
            ]
        if chosen_variants:  # one checkout, several settings; a variant's own API_READ_CACHE_MB wins
            variants = [
                Variant(label, cache_on(settings, modes[0]), None, tuple(settings.items()))
                for label, settings in chosen_variants
            ]
        # The servers of each variant idle while the others' are measured.
        servers = {
            variant: start_servers(
                url, reader, args.workers, stack, variant.cached, args.staleness, variant.tree, dict(variant.settings)
            )
            for variant in variants
        }
        base = servers[variants[-1]].bases[0]
        writer = None
        if args.write_every > 0:
            writer = Writer(url, args.write_every, max_id)
            writer.start()
            stack.callback(writer.stop)
        writes = f", a one-row write committed every {args.write_every:g}s" if writer else ""
        if args.staleness:
            writes += f", answers served up to {args.staleness:g}s after a change"
        if args.rounds > 1:
            writes += f"; medians of {args.rounds} rounds, the variants' order alternating"
        print(
            f"\n{args.rows:,} rows, {args.clients} concurrent clients, {args.requests} requests per query, "
            f"{args.workers} single-worker uvicorn servers per variant (clients spread evenly), "
            f"{os.cpu_count()} CPUs shared with the client{writes}; API ms: the servers' CPU per request"
        )
        heads = [
            f"{variant.label}: p50 / p99 ms, req/s, API ms" + (", hits" if variant.cached else "")
            for variant in variants
        ]
        print(f"{'query':40} " + " | ".join(f"{head:>41}" for head in heads))
        for name, make_path in kinds.items():
            if not chosen(name, args.only):
                continue
            # Starred: a full scan per request; a tenth of the requests keeps the run in minutes.
            requests = max(args.clients, args.requests // 10) if name.endswith("*") else args.requests
            runs: dict[Variant, list[Run]] = {variant: [] for variant in variants}
            for round_ in range(args.rounds):
                for variant in variants if round_ % 2 == 0 else variants[::-1]:
                    runs[variant].append(measure(servers[variant], variant.cached, make_path, args.clients, requests))
            print(f"{name:40} " + " | ".join(f"{cell(runs[variant], variant.cached):>41}" for variant in variants))
        if writer is not None:
            print(f"({writer.writes} writes committed during the run)")

        for fmt in () if args.only else ("csv", "ndjson"):
            started = time.perf_counter()
            size = lines = 0
            with httpx.stream("GET", f"{base}/sentiments/export?limit=100000&format={fmt}", timeout=120) as response:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    lines += chunk.count(b"\n")
            elapsed = time.perf_counter() - started
            rows = lines - (fmt == "csv")  # the rows received (the seeded texts hold no line breaks)
            rate = f"{rows / elapsed:,.0f} rows/s, {size / elapsed / 1e6:.1f} MB/s"
            print(f"export {rows:,} rows {fmt:6}: {elapsed:.2f}s, {rate}")


if __name__ == "__main__":
    main()
