"""From a scraped item to the message on the ``reviews`` topic (pure functions).

The headline joins the body in the message text because on review sites it often carries
the verdict ("Never again"); the item keeps the two apart for anyone who wants them.
An optional field the contract refuses (an odd id, a URL over 2048 characters) is left out
rather than costing the review, as in ``scraper.extract``; only a review whose text or
source the contract refuses is lost.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import ValidationError

from core.messages import MAX_TEXT_CHARS, ReviewMessage, describe_validation_error
from scraper.items import ReviewItem

SHORT_FIELD_CHARS = 256  # the contract's limit for author and brand
# Fields a message can do without: everything the contract does not require.
OPTIONAL_FIELDS = frozenset(name for name, info in ReviewMessage.model_fields.items() if not info.is_required())


def source_for(spider_name: str) -> str:
    return f"scraper:{spider_name}"


def source_problem(source: str) -> str | None:
    """Why the contract refuses ``source`` for every message, or None: told once, before a crawl."""
    try:
        ReviewMessage(text="-", source=source)
    except ValidationError as exc:
        return describe_validation_error(exc)
    return None


def message_text(item: ReviewItem) -> str:
    """Title and body as one text, within the contract's length.

    The title is left out when the body already starts with it as words ("Great" before "Great
    kettle", not before "Greatest kettle"), or when it would push the text over the limit. A body
    over the limit is cut at a word and marked with an ellipsis: refused whole, the review was lost.
    """
    body = item.text.strip()
    title = (item.title or "").strip()
    if title and not _opens_with(body, title):
        separator = " " if title[-1] in ".!?…" else ". "
        if len(joined := f"{title}{separator}{body}") <= MAX_TEXT_CHARS:
            return joined
    return _within_limit(body)


def _opens_with(body: str, title: str) -> bool:
    if not body.startswith(title) or len(body) == len(title):
        return body == title
    return not (title[-1].isalnum() and body[len(title)].isalnum())  # "Great" is not "Greatest"


def _within_limit(text: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    cut = text[: MAX_TEXT_CHARS - 1]
    at_word = cut.rsplit(None, 1)[0] if " " in cut[-100:] else cut  # a 100-character "word": cut anyway
    return f"{at_word.rstrip()}…"


def _short(value: str | None) -> str | None:
    return value[:SHORT_FIELD_CHARS] if value else value


def message_fields(item: ReviewItem, source: str) -> dict[str, Any]:
    """The message's fields as the item has them (absent ones left out), before validation."""
    data: dict[str, Any] = {
        "text": message_text(item),
        "source": source,
        "review_id": item.review_id,
        "brand": _short(item.company_name),
        "rating": item.rating,
        "url": item.url,
        "author": _short(item.author),
        "published_at": item.published_at,
        "lang": item.lang,
    }
    return {k: v for k, v in data.items() if v is not None}


def refused_optional_fields(exc: ValidationError) -> dict[str, str] | None:
    """Field -> why, when every error is on an optional field; None when a required one failed."""
    refused: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        name = str(error["loc"][0]) if error["loc"] else ""
        if name not in OPTIONAL_FIELDS:
            return None
        refused.setdefault(name, error["msg"])
    return refused


def to_message(item: ReviewItem, source: str, problems: list[str] | None = None) -> ReviewMessage:
    """The contract's message, without the optional fields it refuses (each noted in ``problems``).

    Raises ``pydantic.ValidationError`` for a review it cannot carry at all (its text).
    """
    data = message_fields(item, source)
    try:
        return ReviewMessage.model_validate(data)
    except ValidationError as exc:
        refused = refused_optional_fields(exc)
        if not refused:
            raise
        if problems is not None:
            problems.extend(f"{name} left out: {why}" for name, why in refused.items())
        return ReviewMessage.model_validate({k: v for k, v in data.items() if k not in refused})


def digest(value: bytes) -> str:
    """Fingerprint of a message value: a re-crawl compares it to tell unchanged from edited."""
    return hashlib.sha256(value).hexdigest()
