"""Refuse a submission without a valid API key before its body is read.

FastAPI reads and parses a request's JSON body before it runs any dependency, so a keyed
deployment checked in a dependency still read up to ``API_MAX_BODY_BYTES`` from anyone, and
answered a body that is not JSON with a 422: a client without a key learnt how its body was
wrong. Here the key is settled from the headers alone, ahead of the body-size limit, for every
POST route (the API's only writes are submissions). The ``submitter`` dependency still works out
who the key belongs to; it no longer sees a request without one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from query_api.errors import ApiError, error_response
from query_api.metrics import ApiMetrics
from query_api.submit_guard import NO_MATCH, key_owner, presented_key


def unauthorized(presented: str | None) -> ApiError:
    said = "is not a valid key" if presented else "is missing"
    return ApiError(
        401,
        "unauthorized",
        f"submitting needs an API key (Authorization: Bearer KEY or X-API-Key: KEY); this request's {said}",
        headers={"WWW-Authenticate": 'Bearer realm="reviewscore"'},
    )


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class SubmitKeyGate:
    """401 for a POST to a route of ``routes`` (their path patterns) whose key matches none of
    ``keys``; a no-op without keys."""

    def __init__(
        self,
        app: ASGIApp,
        keys: Sequence[tuple[str | None, str]],
        routes: Sequence[re.Pattern[str]],
        metrics: ApiMetrics,
    ) -> None:
        self.app = app
        self.keys = keys
        self.routes = routes
        self.metrics = metrics

    def _guards(self, scope: Scope) -> bool:
        if not self.keys or scope["type"] != "http" or scope["method"] != "POST":
            return False
        path = _route_path(scope)
        return any(route.match(path) for route in self.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._guards(scope):
            headers = Headers(scope=scope)
            presented = presented_key(headers.get("authorization"), headers.get("x-api-key"))
            if presented is None or key_owner(presented, self.keys) is NO_MATCH:
                self.metrics.submissions.labels("unauthorized").inc()
                refusal = unauthorized(presented)
                response = error_response(refusal.status, refusal.code, refusal.message, headers=refusal.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
