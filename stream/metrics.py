"""Worker metrics (Prometheus) and health, served on STREAM_WEB_PORT at /metrics, /healthz and /livez.

Every worker gets its own registry, so several apps in one process (tests, benchmarks) never
clash. The server is a small threaded WSGI server: it keeps answering while the event loop or
the scoring thread is busy, which is when people look at it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
_TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
_SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter("reviewscore_messages_consumed", "Messages taken from the reviews topic.", registry=r)
        self.scored = Counter("reviewscore_messages_scored", "Messages scored and stored.", registry=r)
        self.dead_lettered = Counter(
            "reviewscore_messages_dead_lettered", "Messages sent to the DLQ, by reason.", ["reason"], registry=r
        )
        self.rows = Counter("reviewscore_rows_written", "Upsert outcomes per row.", ["outcome"], registry=r)
        self.batch_size = Histogram(
            "reviewscore_batch_size", "Messages per micro-batch.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.batch_tokens = Histogram(
            "reviewscore_batch_tokens", "Padded tokens per model sub-batch.", buckets=_TOKEN_BUCKETS, registry=r
        )
        self.model_seconds = Histogram(
            "reviewscore_model_seconds", "Scorer time per micro-batch.", buckets=_SECONDS_BUCKETS, registry=r
        )
        self.db_seconds = Histogram(
            "reviewscore_db_seconds", "Database time per micro-batch.", buckets=_SECONDS_BUCKETS, registry=r
        )
        self.latency = Histogram(
            "reviewscore_end_to_end_seconds",
            "From the message's Kafka timestamp to its row committed in Postgres.",
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "reviewscore_retries", "Transient failures retried, by operation.", ["operation"], registry=r
        )
        self.assigned_partitions = Gauge(
            "reviewscore_assigned_partitions",
            "Partitions of the reviews topic this worker holds (0 before it joined its group).",
            registry=r,
        )
        self.rebalances = Counter("reviewscore_rebalances", "Partition assignments received.", registry=r)
        self.search_indexed = Counter(
            "reviewscore_search_indexed", "Search documents written by this worker's indexer.", registry=r
        )
        self.search_lag = Gauge(
            "reviewscore_search_lag_seconds",
            "How long the oldest row waiting for its search document has waited (0: the index is current).",
            registry=r,
        )
        self.healthy = Gauge("reviewscore_healthy", "1 when the worker is making progress.", registry=r)
        self.model_info = Gauge(
            "reviewscore_model_info",
            "The loaded model: version, where it runs and which variant (an int8-only artifact runs on CPU).",
            ["version", "device", "variant"],
            registry=r,
        )


@dataclass
class Health:
    """Healthy unless some part of the worker reports a problem (a retried write, a refused
    JoinGroup …). Each part clears only its own, so parts that run concurrently cannot mark
    another's problem solved; the report names the oldest."""

    metrics: Metrics | None = None
    _problems: dict[str, tuple[str, float]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        with self._lock:
            self._publish()

    def failing(self, part: str, problem: str) -> None:
        with self._lock:
            since = self._problems.get(part, (problem, time.monotonic()))[1]
            self._problems[part] = (problem, since)
            self._publish()

    def ok(self, part: str) -> bool:
        """Clear ``part``'s problem; True when it had one (it has recovered)."""
        with self._lock:
            recovered = self._problems.pop(part, None) is not None
            if recovered:
                self._publish()
        return recovered

    @property
    def is_healthy(self) -> bool:
        return not self._problems

    def report(self) -> dict[str, Any]:
        with self._lock:
            if not self._problems:
                return {"status": "ok"}
            problem, since = min(self._problems.values(), key=lambda entry: entry[1])
            return {"status": "unhealthy", "problem": problem, "for_seconds": round(time.monotonic() - since, 1)}

    def _publish(self) -> None:
        """Under the lock: parts report from several threads (the pipeline, the broker probe), and
        a gauge set after the lock is released could be overtaken by a stale value."""
        if self.metrics:
            self.metrics.healthy.set(1 if self.is_healthy else 0)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def wsgi_app(metrics: Metrics, health: Health) -> WsgiApp:
    prometheus = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/livez":  # liveness: the process answers; a dependency outage is /healthz's
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"status": "alive"}']
        if path == "/healthz":
            report = health.report()
            status = "200 OK" if report["status"] == "ok" else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return [json.dumps(report).encode()]
        if path == "/metrics":
            return prometheus(environ, start_response)  # type: ignore[no-any-return]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics, /healthz or /livez\n"]

    return app


class MetricsServer:
    """/metrics and /healthz on a background thread; port 0 picks a free one."""

    def __init__(self, metrics: Metrics, health: Health, host: str, port: int) -> None:
        self._server = make_server(
            host, port, wsgi_app(metrics, health), server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
