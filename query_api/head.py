"""HEAD wherever GET is served: the GET's status and headers, no body (RFC 9110 §9.3.2).

FastAPI's routes answer only the methods they declare, so ``HEAD /brands`` was a 405, which
breaks link checkers, monitors and caches that probe with HEAD. The request runs as a GET and
the body is dropped; a streamed body (an export) is stopped at its first chunk, so a HEAD costs
the first chunk's query, not the whole export.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _BodyDroppedError(Exception):
    """Raised into a streaming response after its headers went out: nobody reads the rest."""


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def headers_only(message: Message) -> None:
            nonlocal ended
            if message["type"] != "http.response.body":
                await send(message)
                return
            if not ended:
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            if message.get("more_body", False):
                raise _BodyDroppedError

        inner = {**scope, "method": "GET"}
        try:
            await self.app(inner, receive, headers_only)
        except* _BodyDroppedError:
            pass
        finally:
            # What routing wrote into the copy, for the middlewares outside (the metrics' route
            # label); the method stays HEAD there.
            for key in ("route", "endpoint", "path_params"):
                if key in inner:
                    scope[key] = inner[key]
