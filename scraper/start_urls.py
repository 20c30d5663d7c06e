"""Where a crawl starts: start URLs from options and files, checked, and the sites they name.

Shared by every spider and by ``reviewscore crawl``, which checks them before Scrapy starts.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import urlsplit

from core.text import not_utf8


def read_url_file(path: Path) -> list[str]:
    """URLs of a start file: one per line; blank lines and ``#`` comments are ignored.

    ValueError naming the file when it is not UTF-8 text (a URL is ASCII once percent-encoded).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(not_utf8(path, exc)) from exc
    urls = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            urls.append(line)
    return urls


def not_http_urls(urls: list[str]) -> list[str]:
    """The start URLs that are not absolute http(s) URLs, or cannot be requested as written."""
    return [u for u in urls if not _is_http_url(u)]


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not one, as the request would mid-crawl
    except ValueError:  # "http://[oops/": an unclosed IPv6 bracket
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def site_of(host: str) -> str:
    """The site a host serves, roughly: its last two labels (uk.trustpilot.com and www.trustpilot.com
    are one site with one set of review ids); an IP address or a one-label name as it is."""
    labels = host.lower().rstrip(".").split(".")
    if len(labels) <= 2 or all(label.isdigit() for label in labels) or ":" in host:
        return host.lower()
    return ".".join(labels[-2:])


_NEXT_URL = re.compile(r",(?=\s*https?://)", re.IGNORECASE)


def split_start_urls(value: str) -> list[str]:
    """``A,B`` (``-a start_url=``, a compose variable) split where the next URL starts, so a comma
    inside one (``?stars=4,5``) stays in it."""
    return [url.strip() for url in _NEXT_URL.split(value) if url.strip()]


def collect_start_urls(start_url: str | list[str] | None, url_file: str | None) -> list[str]:
    """A spider's ``-a start_url=`` (one or several, comma-joined) and ``-a url_file=`` URLs, checked."""
    urls: list[str] = []
    for value in [start_url] if isinstance(start_url, str) else start_url or []:
        urls.extend(split_start_urls(value))
    if url_file:
        urls.extend(read_url_file(Path(url_file)))
    bad = not_http_urls(urls)
    if bad:
        raise ValueError(f"start URLs must be absolute http(s) URLs: {', '.join(bad)}")
    return urls


def hosts_of(urls: list[str]) -> list[str]:
    return sorted({urlsplit(u).hostname or "" for u in urls})


def warn_if_several_sites(logger: logging.Logger | logging.LoggerAdapter[logging.Logger], hosts: list[str]) -> None:
    """Review ids are unique within a site only: two sites under one message source can collide."""
    if len(sites := sorted({site_of(host) for host in hosts})) > 1:
        logger.warning(
            "start URLs on %d sites (%s) share one message source: review ids are unique within a site "
            "only, so one site's review would overwrite another's of the same id; crawl each site on its "
            "own with --source (SCRAPER_SOURCE)",
            len(sites),
            ", ".join(sites),
        )
