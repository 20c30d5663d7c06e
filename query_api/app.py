"""The app factory. Nothing connects at import time: the lifespan builds and disposes the engine
(SELECT-only role, read-only transactions) and the Kafka producer, so tests and the CLI point
one app at whatever database and broker they like.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.engine import make_url

from core.config import (
    ApiSettings,
    DatabaseSettings,
    KafkaSettings,
    get_api_settings,
    get_database_settings,
    get_kafka_settings,
)
from core.db import libpq_url, make_engine
from query_api.change_listener import ChangeListener
from query_api.deps import AppState, check_query_parameters
from query_api.errors import install_error_handlers
from query_api.head import HeadAsGetMiddleware
from query_api.key_gate import SubmitKeyGate
from query_api.limits import BodyLimitMiddleware
from query_api.metrics import ApiMetrics, MetricsMiddleware
from query_api.openapi import document_filters
from query_api.publisher import Publisher
from query_api.read_cache import ReadCache
from query_api.routes import dashboard, health, sentiments, submit

log = logging.getLogger(__name__)

DESCRIPTION = """
Read-only access to scored reviews, and submission of new ones.

* Reads come from PostgreSQL through a SELECT-only role in read-only transactions.
* `POST /sentiments/` never writes to the database: it publishes the review to Kafka; the
  stream worker scores it and the row appears at the returned `Location`.
* Every error has the same body: `{"error": {"code", "message", "details"}}`.
"""

TAGS = [
    {"name": "sentiments", "description": "Scored reviews: list, aggregate, export."},
    {"name": "submit", "description": "Submit a review for scoring and fetch its result."},
    {"name": "dashboard", "description": "Charts used by the dashboard page at `/`."},
    {"name": "operations", "description": "Health, readiness and metrics."},
]


def readonly_database_url(settings: DatabaseSettings) -> str:
    """``DATABASE_READONLY_URL``, else ``DATABASE_URL`` with its user switched to the reader role.

    The derived URL carries no password: it suits local trust/peer authentication (the embedded
    server, CI); deployments with passwords set ``DATABASE_READONLY_URL``.
    """
    if settings.readonly_url:
        return settings.readonly_url
    if not settings.url:
        raise ValueError("no database URL: set DATABASE_READONLY_URL or DATABASE_URL")
    return libpq_url(make_url(settings.url).set(username=settings.readonly_role, password=None))


def _open(state: AppState, database: DatabaseSettings, database_url: str) -> None:
    state.engine = make_engine(
        database, database_url, read_only=True, application_name="reviewscore-api", pre_ping=state.api.db_pre_ping
    )
    if not state.kafka.bootstrap_servers:
        state.publisher_error = "KAFKA_BOOTSTRAP_SERVERS is not set"
        return
    try:
        state.publisher = Publisher(state.kafka, state.api.publish_timeout)
    except Exception as exc:  # noqa: BLE001 - reads keep working without a broker; readyz reports it
        state.publisher_error = f"producer failed to start: {exc}"
        log.warning("submissions disabled: %s", state.publisher_error)


def _listen_for_changes(state: AppState, database: DatabaseSettings, database_url: str) -> None:
    """The read cache and the listener that keeps it honest (neither when the cache is off)."""
    api = state.api
    if api.read_cache_mb <= 0:
        return
    state.cache = ReadCache(int(api.read_cache_mb * 2**20), api.read_cache_max_age, api.read_cache_staleness)
    state.metrics.watch(state.cache)
    state.listener = ChangeListener(
        database_url,
        state.cache,
        connect_timeout=database.connect_timeout,
        dead_peer_timeout=database.dead_peer_timeout,
    )
    state.listener.start()


def _close(state: AppState) -> None:
    if state.publisher is not None:
        state.publisher.close()
    if state.engine is not None:
        state.engine.dispose()
    state.engine = state.publisher = state.listener = state.cache = None


def _freeze_startup_objects() -> None:
    """Move what start-up built (routes, schemas, the engine: ~130k objects) out of the collector's reach.

    They live as long as the process, yet every full collection walked them all: 76 ms with every
    request on the process stalled behind it, the largest part of the API's p99 under load
    (query_api/README.md, "Thread-pool hops"). Frozen, a full collection walks only what requests
    made since. No collection first: it would cost every app start (each test's) as much, and the
    little garbage start-up leaves is freed when the lifespan ends and unfreezes.
    """
    gc.freeze()


def create_app(
    api: ApiSettings | None = None,
    database: DatabaseSettings | None = None,
    kafka: KafkaSettings | None = None,
) -> FastAPI:
    """Build the app from explicit settings (or the environment's, for ``uvicorn --factory``)."""
    api = api or get_api_settings()
    database = database or get_database_settings()
    kafka = kafka or get_kafka_settings()
    database_url = readonly_database_url(database)  # fail at start-up, not at the first request
    state = AppState(api=api, kafka=kafka, metrics=ApiMetrics())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        _open(state, database, database_url)
        _listen_for_changes(state, database, database_url)
        _freeze_startup_objects()
        try:
            yield
        finally:
            gc.unfreeze()  # an app stopped in a longer-lived process (tests) leaves its cycles collectable
            if state.listener is not None:
                await state.listener.stop()
            _close(state)

    app = FastAPI(
        title="reviewscore query API",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        dependencies=[Depends(check_query_parameters)],
        # /docs is the dashboard router's, from local files; ReDoc would load from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.reviewscore = state
    install_error_handlers(app)
    routers = (sentiments.router, submit.router, dashboard.router, health.router)
    for router in routers:
        app.include_router(router)
    app.mount("/static", dashboard.DashboardAssets(directory=dashboard.STATIC_DIR), name="static")
    document_filters(app, routers)
    app.add_middleware(HeadAsGetMiddleware)  # innermost: the others see the request as sent
    app.add_middleware(BodyLimitMiddleware, max_bytes=api.max_body_bytes)
    # Outside the body limit: without a key, a submission is refused before its size matters. The
    # submit router's POST routes are the API's only writes (no prefix: their patterns are whole).
    posts = [
        route.path_regex
        for route in submit.router.routes
        if isinstance(route, APIRoute) and "POST" in (route.methods or ())
    ]
    app.add_middleware(SubmitKeyGate, keys=state.submit_keys, routes=posts, metrics=state.metrics)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app
