"""A small Trustpilot-style site, bundled for tests, ``scrapy check`` and the demo.

The pages under ``pages/`` mimic what the spider meets in the wild: categories with
sub-categories, paginated company listings (``?page=N``), paginated company review pages,
JSON-LD on some pages and not others, missing fields, a windows-1252 page, broken
structured data, truncated HTML, a binary file where a page should be, a 404, a listing
rendered by JavaScript, and a robots.txt that disallows one company and a private area.
Under ``/shop/`` are pages of another kind for the ``schemaorg`` spider: a product whose
reviews are schema.org JSON-LD only, paginated with ``rel="next"`` one page past its last, and a
café whose reviews all link to its menu.

``serve()`` runs it on 127.0.0.1 in a daemon thread. Every response carries ``ETag`` and
``Last-Modified`` with ``Cache-Control: max-age=0``, so an RFC 2616 cache must revalidate
each page and gets ``304 Not Modified`` for unchanged ones: that is what makes incremental
re-crawls observable (``server.requests`` records every status served).
"""

from __future__ import annotations

import hashlib
import mimetypes
import threading
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

SITE_ROOT = Path(__file__).parent / "pages"


@dataclass(frozen=True)
class Served:
    """One request as the site saw it."""

    method: str
    path: str
    status: int
    user_agent: str


class FixtureSiteServer(ThreadingHTTPServer):
    """An HTTP server over a directory of pages that remembers what it served."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], root: Path) -> None:
        super().__init__(address, _Handler)
        self.root = root.resolve()
        self.requests: list[Served] = []
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def record(self, served: Served) -> None:
        with self._lock:
            self.requests.append(served)

    def served(self) -> list[Served]:
        with self._lock:
            return list(self.requests)

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()


def resolve(root: Path, raw_path: str) -> Path | None:
    """Map a URL path (+ ``?page=N``) to a file under ``root``; None when there is none.

    ``/x/`` and ``/x`` both serve ``x/index.html``; ``?page=N`` (N > 1) serves ``page-N.html``
    next to it, like a paginated listing. Paths escaping ``root`` resolve to None.
    """
    parts = urlsplit(raw_path)
    target = (root / unquote(parts.path).lstrip("/")).resolve()
    if target != root and root not in target.parents:
        return None
    if target.is_dir():
        page = parse_qs(parts.query).get("page", ["1"])[0]
        name = f"page-{page}.html" if page.isdigit() and int(page) > 1 else "index.html"
        target = target / name
    return target if target.is_file() else None


class _Handler(BaseHTTPRequestHandler):
    server: FixtureSiteServer
    server_version = "FixtureReviews/1.0"

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _respond(self, *, send_body: bool) -> None:
        path = resolve(self.server.root, self.path)
        if path is None:
            self._finish(HTTPStatus.NOT_FOUND, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html")
            return
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        if self.headers.get("If-None-Match") == etag:
            self._finish(HTTPStatus.NOT_MODIFIED, b"", None, etag=etag, mtime=path.stat().st_mtime)
            return
        # No charset for HTML: pages declare their own in a <meta> tag, as many real sites do.
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self._finish(HTTPStatus.OK, body if send_body else b"", content_type, etag=etag, mtime=path.stat().st_mtime)

    def _finish(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str | None,
        *,
        etag: str | None = None,
        mtime: float | None = None,
    ) -> None:
        # Logged before the response leaves: a client holding its answer finds it in ``served()``.
        self.server.record(Served(self.command, self.path, int(status), self.headers.get("User-Agent", "")))
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        if etag:
            self.send_header("ETag", etag)
            self.send_header("Cache-Control", "max-age=0")
        if mtime is not None:
            self.send_header("Last-Modified", formatdate(mtime, usegmt=True))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``server.requests`` instead of stderr."""


def serve(port: int = 0, root: Path | None = None, host: str = "127.0.0.1") -> tuple[FixtureSiteServer, str]:
    """Start the site in a daemon thread; returns the server (``shutdown()`` it) and its base URL."""
    server = FixtureSiteServer((host, port), root or SITE_ROOT)
    thread = threading.Thread(target=server.serve_forever, name="fixture-site", daemon=True)
    thread.start()
    return server, server.base_url


__all__ = ["SITE_ROOT", "FixtureSiteServer", "Served", "resolve", "serve"]
