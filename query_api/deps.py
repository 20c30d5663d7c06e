"""Request dependencies: the per-app state the lifespan built, and a read-only session per request."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.config import ApiSettings, KafkaSettings
from query_api.errors import ApiError
from query_api.metrics import ApiMetrics
from query_api.publisher import Publisher


@dataclass
class AppState:
    """What the lifespan owns; routes reach it through ``StateDep``."""

    api: ApiSettings
    kafka: KafkaSettings
    metrics: ApiMetrics
    engine: Engine | None = None
    sessions: sessionmaker[Session] | None = None
    publisher: Publisher | None = None
    publisher_error: str | None = None


async def get_state(request: Request) -> AppState:
    """Async on purpose: FastAPI runs sync dependencies in the thread pool, a hop this lookup needs not."""
    state: AppState = request.app.state.reviewscore
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    """A session on the SELECT-only, read-only engine; closed when the request ends."""
    if state.sessions is None:
        raise ApiError(503, "database_unavailable", "the API has no database connection")
    with state.sessions() as session:
        yield session


def require_publisher(state: AppState) -> Publisher:
    if state.publisher is None:
        reason = state.publisher_error or "no broker configured"
        raise ApiError(503, "broker_unavailable", f"submissions are disabled: {reason}")
    return state.publisher


SessionDep = Annotated[Session, Depends(get_session)]
