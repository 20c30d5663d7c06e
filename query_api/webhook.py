"""Posting an alert to a webhook (a chat's incoming webhook, an alert manager) without leaking its URL.

Imported only when an alert is posted: ``urllib.request`` and ``http.client`` are not every
command's start-up cost.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping


class WebhookError(RuntimeError):
    """The webhook did not take the alert; the message never holds the URL (it carries a token)."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would be followed as a GET without the alert: refuse it instead."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def check_webhook_url(url: str) -> urllib.parse.SplitResult:
    """``url`` split, or ``WebhookError`` unless it is an absolute http(s) URL (the message never
    repeats it: such URLs carry their token). Also asked up front, so a wrong one fails every day,
    not only the day an alert fires."""
    try:
        parts = urllib.parse.urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # "http://[hooks.example/..." (an unclosed IPv6 bracket): a traceback, exit 1
        hostname = None
    if not hostname or parts.scheme not in ("http", "https"):
        raise WebhookError("the webhook URL must be an absolute http(s) URL")
    return parts


def post_webhook(url: str, payload: Mapping[str, object], timeout: float, idempotency_key: str | None = None) -> None:
    """POST the alert as JSON (``text`` is what Slack-style incoming webhooks show); raise
    ``WebhookError`` unless a 2xx answers. Errors name the host at most, never the path or query.
    ``idempotency_key`` goes out as the ``Idempotency-Key`` header, for receivers that drop repeats."""
    parts = check_webhook_url(url)
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={
            "Content-Type": "application/json",
            "User-Agent": "reviewscore-trends",
            **({"Idempotency-Key": idempotency_key} if idempotency_key else {}),
        },
        method="POST",
    )
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise WebhookError(f"{parts.hostname} answered HTTP {exc.code}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, timed out, garbled, bad URL
        raise WebhookError(f"no answer from {parts.hostname} ({type(exc).__name__})") from None
