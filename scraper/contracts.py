"""``@fixture_url PATH``: a spider contract whose sample URL is a page of the fixture site.

Contracts need live URLs, and a real review site changes under them. ``scrapy check``
therefore runs against the bundled fixture site (``scraper.fixture_site``), which mimics
the real structure: the base URL comes from ``SCRAPER_FIXTURE_BASE_URL`` when set (a
site served elsewhere), else the bundled pages are served on 127.0.0.1 for the duration
of the check. ``cd scraper && scrapy check`` works with nothing else running.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from scrapy.contracts import Contract

_lock = threading.Lock()
_served_base: str | None = None


def bundled_site_url() -> str:
    """Serve the bundled fixture site once per process and return its base URL."""
    global _served_base
    with _lock:
        if _served_base is None:
            from scraper.fixture_site import serve

            _server, _served_base = serve(port=0)
        return _served_base


class FixtureUrlContract(Contract):  # type: ignore[misc]  # scrapy is untyped for mypy here
    """Sets the sample request's URL to ``<fixture site>/PATH``.

    .. code-block:: none

        @fixture_url /review/acme-electronics.example
    """

    name = "fixture_url"

    def __init__(self, method: Callable[..., Any], *args: Any) -> None:
        super().__init__(method, *args)
        self.method = method

    def adjust_request_args(self, args: dict[str, Any]) -> dict[str, Any]:
        spider = getattr(self.method, "__self__", None)
        configured = spider.settings.get("REVIEWSCORE_FIXTURE_BASE_URL") if spider is not None else None
        base = (configured or bundled_site_url()).rstrip("/")
        args["url"] = base + "/" + str(self.args[0]).lstrip("/")
        return args
