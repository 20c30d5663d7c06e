"""Request dependencies: the per-app state the lifespan built, and a read-only session per request."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection, Engine

from core.config import ApiSettings, KafkaSettings
from query_api.errors import ApiError, FieldError
from query_api.metrics import ApiMetrics
from query_api.publisher import Publisher
from query_api.submit_guard import RateLimiter


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
    submit_keys: list[tuple[str | None, str]] = field(init=False)
    """Every key a submission may carry, with its producer's name (None for an unnamed key)."""

    def __post_init__(self) -> None:
        if self.submit_limiter is None and self.api.submit_rate_per_minute:
            self.submit_limiter = RateLimiter(self.api.submit_rate_per_minute)
        self.submit_keys = [(None, key.get_secret_value()) for key in self.api.submit_api_keys]
        self.submit_keys += [(name, key.get_secret_value()) for name, key in self.api.submit_named_keys.items()]


async def get_state(request: Request) -> AppState:
    """Async on purpose: FastAPI runs sync dependencies in the thread pool, a hop this lookup needs not."""
    state: AppState = request.app.state.reviewscore
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def refuse_repeated_parameters(request: Request) -> None:
    """Every parameter here takes one value; FastAPI would keep the last of ``?brand=A&brand=B``
    silently, and an analyst asking for two brands would get one without a word."""
    repeated = [
        (name, count)
        for name in dict.fromkeys(request.query_params)
        if (count := len(request.query_params.getlist(name))) > 1
    ]
    if repeated:
        details = [
            FieldError(loc=["query", name], msg=f"given {count} times; pass it once", type="repeated")
            for name, count in repeated
        ]
        noun = "parameter" if len(details) == 1 else "parameters"
        raise ApiError(422, "invalid_request", f"{len(details)} repeated {noun}", details)


def get_session(state: StateDep) -> Iterator[Connection]:
    """The request's database session: a Core connection on the SELECT-only, read-only engine.

    A Core connection rather than an ORM ``Session``: the API runs Core SELECTs only, and the ORM
    execution path cost ~1 ms of CPU per request (measured, query_api/README.md).
    """
    if state.engine is None:
        raise ApiError(503, "database_unavailable", "the API has no database connection")
    with state.engine.connect() as connection:
        yield connection


def require_publisher(state: AppState) -> Publisher:
    if state.publisher is None:
        reason = state.publisher_error or "no broker configured"
        raise ApiError(503, "broker_unavailable", f"submissions are disabled: {reason}")
    return state.publisher


SessionDep = Annotated[Connection, Depends(get_session)]
