"""From a scraped item to the message on the ``reviews`` topic (pure functions).

The headline joins the body in the message text because on review sites it often carries
the verdict ("Never again"); the item keeps the two apart for anyone who wants them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from core.messages import ReviewMessage
from scraper.items import ReviewItem

SHORT_FIELD_CHARS = 256  # the contract's limit for author and brand


def source_for(spider_name: str) -> str:
    return f"scraper:{spider_name}"


def message_text(item: ReviewItem) -> str:
    """Title and body as one text; the title is left out when the body already starts with it."""
    body = item.text.strip()
    title = (item.title or "").strip()
    if not title or body.startswith(title):
        return body
    separator = " " if title[-1] in ".!?…" else ". "
    return f"{title}{separator}{body}"


def _short(value: str | None) -> str | None:
    return value[:SHORT_FIELD_CHARS] if value else value


def to_message(item: ReviewItem, spider_name: str) -> ReviewMessage:
    """The contract's message; raises ``pydantic.ValidationError`` for a review it cannot carry."""
    data: dict[str, Any] = {
        "text": message_text(item),
        "source": source_for(spider_name),
        "review_id": item.review_id,
        "brand": _short(item.company_name),
        "rating": item.rating,
        "url": item.url,
        "author": _short(item.author),
        "published_at": item.published_at,
        "lang": item.lang,
    }
    return ReviewMessage.model_validate({k: v for k, v in data.items() if v is not None})


def digest(value: bytes) -> str:
    """Fingerprint of a message value: a re-crawl compares it to tell unchanged from edited."""
    return hashlib.sha256(value).hexdigest()
