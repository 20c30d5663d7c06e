"""Prometheus metrics of the API, in a registry per app so several apps (tests) never collide.

A pure ASGI middleware rather than ``BaseHTTPMiddleware``: it does not buffer streamed export
bodies and costs a few microseconds per request. Requests are labelled by route template
(``/sentiments/{sentiment_id}``), never by raw path, to keep label cardinality bounded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from query_api.read_cache import ReadCache
from query_api.read_slots import ReadSlots


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "reviewscore_api_requests_total",
            "HTTP requests by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "reviewscore_api_request_duration_seconds",
            "Time to the end of the response, by route template.",
            ["method", "route"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.submissions = Counter(
            "reviewscore_api_submissions_total",
            (
                "Submissions through POST /sentiments/ and /sentiments/batch, by outcome: published and failed "
                "count reviews; unauthorized and rate_limited count refused requests."
            ),
            ["outcome"],
            registry=self.registry,
        )
        self.read_cache = Counter(
            "reviewscore_api_read_cache_total",
            (
                "Cacheable reads by outcome: hit (served from the cache), joined (answered by the same read in "
                "flight for another request), miss (read, then kept) and uncached (read and not kept: the cache "
                "was off, the data changed during the read, or the answer was not a 200 or too large)."
            ),
            ["outcome"],
            registry=self.registry,
        )
        self.read_cache_live = Gauge(
            "reviewscore_api_read_cache_live",
            "1 while the read cache serves answers (its change listener hears PostgreSQL), else 0.",
            registry=self.registry,
        )
        self.read_cache_bytes = Gauge(
            "reviewscore_api_read_cache_bytes", "Bytes of answers the read cache holds.", registry=self.registry
        )

        self.reads_running = Gauge(
            "reviewscore_api_reads_running",
            "Reads holding one of the API_READ_CONCURRENCY slots of this process.",
            registry=self.registry,
        )
        self.reads_waiting = Gauge(
            "reviewscore_api_reads_waiting",
            "Reads waiting for a slot: above zero for long, the process needs more cores or workers.",
            registry=self.registry,
        )

    def watch_reads(self, slots: ReadSlots) -> None:
        self.reads_running.set_function(lambda: float(slots.running))
        self.reads_waiting.set_function(lambda: float(slots.waiting))

    def watch(self, cache: ReadCache) -> None:
        self.read_cache_live.set_function(lambda: float(cache.live))
        self.read_cache_bytes.set_function(lambda: float(cache.size_bytes))


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route") or _route_of(scope)
            # path_format: the template without convertors (``{sentiment_id}``, not ``{sentiment_id:int}``).
            template = str(getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)


def _route_of(scope: Scope) -> Any:
    """The route a request was for when a middleware answered before routing (a 401 without a key,
    a 413 body): counted under ``unmatched``, refused submissions were missing from their route."""
    try:
        for route in _routes(scope.get("app")):
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return route
    except Exception:  # noqa: BLE001 - metrics must never fail a request
        return None
    return None


def _routes(container: Any) -> Iterator[Any]:
    """Every route of an app, through the routers it includes (FastAPI keeps them nested, each
    behind an ``original_router``; ours are included without a prefix)."""
    for route in getattr(container, "routes", ()):
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from _routes(nested)
        else:
            yield route
