"""Liveness, readiness (database and broker) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from query_api.deps import OPERATIONS_TAG, AppState, StateDep
from query_api.errors import ApiError, FieldError, responses
from query_api.schemas import Health

router = APIRouter(tags=[OPERATIONS_TAG])


@router.get("/healthz", response_model=Health, responses=responses(), summary="Liveness")
async def healthz() -> Health:
    """The process answers; says nothing about its dependencies (async: no thread-pool hop for a probe)."""
    return Health(status="ok")


def _check_database(state: AppState) -> str:
    if state.engine is None:
        return "not connected"
    try:
        with state.engine.connect() as conn:
            conn.execute(text("SELECT 1 FROM sentiments LIMIT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the reason is reported
        return f"unreachable: {type(exc).__name__}"
    return "ok"


def _check_broker(state: AppState) -> str:
    if state.publisher is None:
        return state.publisher_error or "not configured"
    return state.publisher.ping()


def _describe_cache(state: AppState) -> str:
    """Reported, never required: without the cache every read still answers, from PostgreSQL."""
    if state.cache is None or state.listener is None:
        return "off (API_READ_CACHE_MB=0)"
    if state.cache.live:
        return "ok"
    return f"off: {state.listener.last_error or 'connecting'}"


@router.get("/readyz", response_model=Health, responses=responses(422, 503), summary="Readiness")
async def readyz(
    state: StateDep,
    require: Annotated[
        Literal["all", "database"],
        Query(
            description=(
                "`all`: 503 unless the database and the broker both answer. `database`: 503 only "
                "when the database does not; the broker's state is still reported. A load "
                "balancer's readiness probe wants `database`: without a broker reads still work "
                "(submissions answer 503), and a broker outage must not take every replica out."
            ),
            examples=["database"],
        ),
    ] = "all",
) -> Health:
    """200 when what ``require`` names answers (the database as the read-only role, the broker); 503 otherwise.

    `read_cache` is reported and never required: `ok` while answers are kept and the database's
    change announcements are heard, else why not (reads then all go to the database)."""
    # Side by side: a broker ping may take its 2 s, and one after the other they could outlast the
    # 3 s a Kubernetes readiness probe waits, even when only the database is required.
    database, broker = await asyncio.gather(
        run_in_threadpool(_check_database, state), run_in_threadpool(_check_broker, state)
    )
    checks = {"database": database, "broker": broker, "read_cache": _describe_cache(state)}
    required = {"database": database, "broker": broker} if require == "all" else {"database": database}
    failing = [
        FieldError(loc=[name], msg=result, type="dependency") for name, result in required.items() if result != "ok"
    ]
    if failing:
        raise ApiError(503, "not_ready", ", ".join(f"{f.loc[0]}: {f.msg}" for f in failing), failing)
    return Health(status="ok", checks=checks)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"example": "reviewscore_api_requests_total{...} 42.0\n"}}},
        **responses(),
    },
    summary="Prometheus metrics",
)
def metrics(state: StateDep) -> Response:
    """Request counts and latencies by route, and submissions by outcome (text exposition format)."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
