"""One JSON error shape for every failure the API can answer with.

Clients parse ``{"error": {"code", "message", "details"}}`` whatever went wrong, whether
FastAPI rejected a parameter, a route raised ``ApiError``, Starlette found no route, or the
database went away; ``code`` is stable and meant for programs, ``message`` for people.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

log = logging.getLogger(__name__)


class FieldError(BaseModel):
    """One rejected input: where it was (``["query", "limit"]``), what is wrong, the pydantic type."""

    loc: list[str | int] = Field(description="Path to the rejected value, e.g. ['query', 'limit'].")
    msg: str = Field(description="What is wrong with it.")
    type: str = Field(description="Machine-readable kind of the problem.")


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. 'not_found', 'invalid_request', 'pending'.")
    message: str = Field(description="Human-readable explanation.")
    details: list[FieldError] = Field(default_factory=list, description="Per-field problems, when any.")


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx answer."""

    error: ErrorInfo

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "error": {
                        "code": "invalid_request",
                        "message": "1 invalid parameter",
                        "details": [
                            {"loc": ["query", "limit"], "msg": "Input should be less than or equal to 500", "type": "x"}
                        ],
                    }
                }
            ]
        }
    }


class ApiError(Exception):
    """Raised by routes and dependencies; rendered as ``ErrorBody`` with ``status``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = headers


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorInfo(code=code, message=message, details=list(details)))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


_CODES = {413: "body_too_large", 404: "not_found", 405: "method_not_allowed"}


def _code_for(status: int) -> str:
    if status in _CODES:
        return _CODES[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def validation_details(errors: Sequence[Any]) -> list[FieldError]:
    """FastAPI/pydantic errors without the rejected input: it may be huge or sensitive."""
    return [
        FieldError(loc=[p if isinstance(p, int) else str(p) for p in e.get("loc", ())], msg=e["msg"], type=e["type"])
        for e in errors
    ]


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting ``ErrorBody`` for these statuses (and 500, always)."""
    return {
        status: {"model": ErrorBody, "description": HTTPStatus(status).phrase} for status in sorted({*statuses, 500})
    }


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = validation_details(exc.errors())
    noun = "parameter" if len(details) == 1 else "parameters"
    message = f"{len(details)} invalid {noun}"
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = media_type in ("application/json", "") or media_type.endswith("+json")  # as FastAPI reads them
    if any(d.loc == ["body"] for d in details) and not is_json:
        # FastAPI does not read a body sent as text/plain or a form as JSON: the review "is not
        # a valid dictionary", whatever its text, unless the content type is named.
        message = f"the body must be JSON (Content-Type: application/json), not {media_type}"
    return error_response(422, "invalid_request", message, details)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """Every method any route serves at this path: Starlette's own 405 names only the first route's.

    Asked of the router by matching the path with each method in turn, not by reading routes'
    ``methods``: FastAPI 0.165 includes routers as opaque entries that have none to read. The
    path is matched from the app's root, also when the 405 came from inside a mount (the static
    files), whose scope has the mount's prefix in ``root_path``. A mount matches whatever the
    method; ours serves files, so it counts for GET. HEAD goes with GET (``query_api.head``).
    """
    routes = request.app.router.routes
    root = request.scope.get("root_path", "")
    for mount in (route for route in routes if isinstance(route, Mount)):
        # Raised inside our mount (Starlette names the mounted app as the endpoint): back to
        # this app's root, which is the root_path without the mount's prefix.
        if request.scope.get("endpoint") is mount.app and root.endswith(mount.path):
            root = root[: -len(mount.path)]
            break
    scope = {**request.scope, "root_path": root}
    allowed = set()
    for route in routes:
        for method in _METHODS:
            if route.matches({**scope, "method": method})[0] == Match.FULL:
                allowed.add("GET" if isinstance(route, Mount) else method)
    if "GET" in allowed:
        allowed.add("HEAD")
    return ", ".join(method for method in _METHODS if method in allowed)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    return error_response(exc.status_code, _code_for(exc.status_code), str(exc.detail), headers=headers or None)


async def _data_error(_: Request, exc: Exception) -> JSONResponse:
    """A value PostgreSQL refuses (out of its range) is the client's doing: a 422, never a 500."""
    log.info("value refused by the database: %s", exc)
    return error_response(422, "invalid_value", "a parameter value is outside what the database accepts")


DATABASE_DOWN: tuple[type[Exception], ...] = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)
"""What a database that does not answer raises: among them a pool with no connection free within
``DATABASE_POOL_TIMEOUT`` (slow exports holding them all), which was a 500 ``internal_error``."""


async def _database_error(_: Request, exc: Exception) -> JSONResponse:
    log.warning("database error: %s", exc)
    return error_response(503, "database_unavailable", "the database did not answer; retry later")


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "unexpected server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for kind in DATABASE_DOWN:
        app.add_exception_handler(kind, _database_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(Exception, _unexpected)
