"""Request dependencies: the per-app state the lifespan built; reads on a pooled read-only connection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from core.config import ApiSettings, KafkaSettings
from query_api.change_listener import ChangeListener
from query_api.errors import ApiError, FieldError
from query_api.filters import FILTER_NAMES, read_filters
from query_api.metrics import ApiMetrics
from query_api.publisher import Publisher
from query_api.read_cache import Cached, ReadCache
from query_api.read_slots import ReadSlots
from query_api.submit_guard import RateLimiter

R = TypeVar("R")


@dataclass
class AppState:
    """What the lifespan owns; routes reach it through ``StateDep``."""

    api: ApiSettings
    kafka: KafkaSettings
    metrics: ApiMetrics
    engine: Engine | None = None
    publisher: Publisher | None = None
    publisher_error: str | None = None
    submit_limiter: RateLimiter | None = None
    cache: ReadCache | None = None
    """Rendered read answers, live while the lifespan's change listener hears PostgreSQL."""
    listener: ChangeListener | None = None
    read_slots: ReadSlots = field(init=False)
    """Admission of reads: API_READ_CONCURRENCY at once, in arrival order."""
    submit_keys: list[tuple[str | None, str]] = field(init=False)
    """Every key a submission may carry, with its producer's name (None for an unnamed key)."""

    def __post_init__(self) -> None:
        self.read_slots = ReadSlots(self.api.read_concurrency, self.api.read_slot_hold)
        self.metrics.watch_reads(self.read_slots)
        if self.submit_limiter is None and self.api.submit_rate_per_minute:
            self.submit_limiter = RateLimiter(self.api.submit_rate_per_minute)
        self.submit_keys = [(None, key.get_secret_value()) for key in self.api.submit_api_keys]
        self.submit_keys += [(name, key.get_secret_value()) for name, key in self.api.submit_named_keys.items()]


async def get_state(request: Request) -> AppState:
    """Async on purpose: FastAPI runs sync dependencies in the thread pool, a hop this lookup needs not."""
    state: AppState = request.app.state.reviewscore
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def check_query_parameters(request: Request) -> None:
    """Refuse a query parameter the endpoint does not take, or one given twice.

    FastAPI ignores both without a word: ``?brnad=Acme`` answered every brand's rows, and
    ``?brand=A&brand=B`` kept the last, so an analyst asking for two brands got one. The page and
    the probes (``/``, ``/healthz``, ``/readyz``, ``/metrics``) are left alone: a tracking tag on a
    link or a monitor's cache-buster must not fail them.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.include_in_schema or OPERATIONS_TAG in route.tags:
        return
    taken = _query_names(route)
    names = dict.fromkeys(request.query_params)
    details = [
        FieldError(loc=["query", name], msg=f"not a parameter of {route.path_format}", type="unknown")
        for name in names
        if name not in taken
    ]
    details += [
        FieldError(loc=["query", name], msg=f"given {count} times; pass it once", type="repeated")
        for name in names
        if name in taken and (count := len(request.query_params.getlist(name))) > 1
    ]
    if details:
        kinds = sorted({detail.type for detail in details}, reverse=True)
        noun = "parameter" if len(details) == 1 else "parameters"
        message = f"{len(details)} {' or '.join(kinds)} {noun}"
        if "unknown" in kinds:
            message += f"; {route.path_format} takes {', '.join(sorted(taken)) or 'none'}"
        raise ApiError(422, "invalid_request", message, details)


OPERATIONS_TAG = "operations"


def _query_names(route: APIRoute) -> frozenset[str]:
    """The query parameters ``route`` and its dependencies declare, by the name a client sends.

    Walked per request (a handful of nodes, microseconds): routes are unhashable, and a cache by
    ``id`` could answer for another app's route at a reused address."""
    names: set[str] = set()
    for dependant in dependants(route.dependant):
        names.update(field.alias for field in dependant.query_params)
        if dependant.call is read_filters:  # it reads them itself; FastAPI sees none
            names.update(FILTER_NAMES)
    return frozenset(names)


def dependants(root: Dependant) -> Iterator[Dependant]:
    """``root`` and every dependency under it, at any depth."""
    pending = [root]
    while pending:
        dependant = pending.pop()
        yield dependant
        pending.extend(dependant.dependencies)


def engine_of(state: AppState) -> Engine:
    """The SELECT-only, read-only engine; 503 when the API has none."""
    if state.engine is None:
        raise ApiError(503, "database_unavailable", "the API has no database connection")
    return state.engine


@contextmanager
def connection_of(state: AppState) -> Iterator[Connection]:
    """A Core connection on the read-only engine (``engine_of``).

    A Core connection rather than an ORM ``Session``: the API runs Core SELECTs only, and the ORM
    execution path cost ~1 ms of CPU per request (measured, query_api/README.md).
    """
    with engine_of(state).connect() as connection:
        yield connection


async def _query(state: AppState, fetch: Callable[[Connection], R], answer: Callable[[R], Response]) -> Response:
    """The one hop of a read to the thread pool, once ``ReadSlots`` lets it in."""
    async with state.read_slots.slot():
        return await run_in_threadpool(_on_connection, state, fetch, answer)


def _on_connection(state: AppState, fetch: Callable[[Connection], R], answer: Callable[[R], Response]) -> Response:
    with connection_of(state) as connection:
        fetched = fetch(connection)
    return answer(fetched)


class CachedResponse(Response):
    """A kept answer sent again as it was (the header list copied: middlewares may append to it)."""

    def __init__(self, cached: Cached) -> None:
        self.status_code = 200
        self.background = None
        self.body = cached.body
        self.raw_headers = list(cached.raw_headers)


async def read(
    state: AppState,
    fetch: Callable[[Connection], R],
    answer: Callable[[R], Response],
    key: Hashable | None = None,
) -> Response:
    """``fetch`` on one pooled read-only connection, then ``answer`` from what it fetched (the
    connection back in the pool by then), both in one hop to the thread pool; or, when ``key``
    (every input the answer depends on) names an answer the read cache kept since the data last
    changed, that answer without a hop or a query.

    The read routes are async and call this instead of taking a connection as a dependency: FastAPI
    enters and leaves a generator dependency in the thread pool and runs a sync route body there
    too, three hops of ~0.15 ms of CPU each, which were half of what a request by id cost
    (query_api/README.md, "Thread-pool hops"). The answer is built in the thread too: a stats
    answer of 10,000 rows takes ~50 ms to render, which on the event loop would stall every other
    request of the process.
    """
    cache = state.cache
    if key is None or cache is None or not cache.live:
        # Off, or no change would be heard: nothing kept, nothing shared, every read its own.
        response = await _query(state, fetch, answer)
        if key is not None and cache is not None:
            state.metrics.read_cache.labels("uncached").inc()
        return response
    while True:
        hit = cache.get(key)
        if hit is not None:
            state.metrics.read_cache.labels("hit").inc()
            return CachedResponse(hit)
        reading = cache.reading.get(key)
        if reading is None or reading[0] != cache.generation:
            break
        # The same read is in flight on data as current as ours: its answer is ours.
        shared = await asyncio.shield(reading[1])
        if shared is not None:
            state.metrics.read_cache.labels("joined").inc()
            return CachedResponse(shared)
        # It failed, or the data changed meanwhile: look again (another may be reading by now).
    response, kept = await _read_and_keep(state, cache, key, fetch, answer)
    state.metrics.read_cache.labels("miss" if kept else "uncached").inc()
    return response


async def _read_and_keep(
    state: AppState, cache: ReadCache, key: Hashable, fetch: Callable[[Connection], R], answer: Callable[[R], Response]
) -> tuple[Response, bool]:
    """Read, keep a 200 answer, and hand it to the requests that joined this read meanwhile."""
    answered: asyncio.Future[Cached | None] = asyncio.get_running_loop().create_future()
    mine = (cache.generation, answered)
    cache.reading[key] = mine
    shared = None
    kept = False
    try:
        async with state.read_slots.slot():
            # Taken once its turn has come, just before the query: a change announced while the read
            # waited is in what it reads, and only one announced from now on voids the answer. Taken
            # when it joined the queue, the answer was dropped, and the requests that joined it sent
            # to look again, whenever a write landed during the wait (every worker batch, under load).
            generation = cache.generation
            if cache.reading.get(key) is mine:
                mine = (generation, answered)  # requests arriving from now on may join it too
                cache.reading[key] = mine
            response = await run_in_threadpool(_on_connection, state, fetch, answer)
        if response.status_code == 200:
            body = bytes(response.body)
            entry = cache.put(key, generation, response.raw_headers, body)
            kept = entry is not None
            if cache.generation == generation:
                shared = entry or Cached(tuple(response.raw_headers), body, 0.0, 0, generation)
    finally:
        if cache.reading.get(key) is mine:
            del cache.reading[key]
        # Kept or not (too large to keep), a current answer is the joined requests' too; None: they look again.
        answered.set_result(shared)
    return response, kept


def require_publisher(state: AppState) -> Publisher:
    if state.publisher is None:
        reason = state.publisher_error or "no broker configured"
        raise ApiError(503, "broker_unavailable", f"submissions are disabled: {reason}")
    return state.publisher
