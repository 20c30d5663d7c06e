"""Opaque keyset cursors: the last row's sort key, the sort and the filters they belong to.

Keyset (``WHERE (key, id) < (:key, :id)``) rather than OFFSET: a deep page costs the same as
the first, and rows inserted during a walk cannot shift rows already seen into the next page
(no duplicates, no gaps). The token is URL-safe base64 of a small JSON object; clients must
treat it as opaque, so its layout may change with ``v``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

Sort = Literal["newest", "oldest", "score_desc", "score_asc"]
SORTS: tuple[Sort, ...] = ("newest", "oldest", "score_desc", "score_asc")
_VERSION = 1


class CursorError(ValueError):
    """The token is malformed, or belongs to another sort or other filters."""


@dataclass(frozen=True, slots=True)
class Cursor:
    sort: Sort
    key: datetime | float
    id: int
    filters: str


def is_time_sort(sort: Sort) -> bool:
    return sort in ("newest", "oldest")


def encode_cursor(cursor: Cursor) -> str:
    key = cursor.key.isoformat() if isinstance(cursor.key, datetime) else repr(float(cursor.key))
    payload = {"v": _VERSION, "s": cursor.sort, "k": key, "i": cursor.id, "f": cursor.filters}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, sort: Sort, filters: str) -> Cursor:
    """Parse ``token`` and check it continues the same query (same sort, same filters)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
        if not isinstance(payload, dict) or payload.get("v") != _VERSION:
            raise CursorError("unknown cursor version")
        token_sort, key_text, row_id, token_filters = payload["s"], payload["k"], payload["i"], payload["f"]
        if not isinstance(row_id, int) or isinstance(row_id, bool) or not isinstance(key_text, str):
            raise CursorError("malformed cursor")
        key: datetime | float = datetime.fromisoformat(key_text) if is_time_sort(sort) else float(key_text)
    except CursorError:
        raise
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError, OverflowError) as exc:
        raise CursorError("malformed cursor") from exc
    if token_sort != sort:
        raise CursorError(f"the cursor belongs to sort={token_sort!r}, not {sort!r}")
    if token_filters != filters:
        raise CursorError("the cursor belongs to other filters; start again without a cursor")
    if isinstance(key, datetime):
        if key.tzinfo is None:
            raise CursorError("malformed cursor")
        try:  # PostgreSQL refuses offsets Python accepts (up to ±24 h): compare as UTC
            key = key.astimezone(UTC)
        except OverflowError as exc:
            raise CursorError("malformed cursor") from exc
    elif not math.isfinite(key):
        raise CursorError("malformed cursor")
    if not 0 <= row_id < 2**63:
        raise CursorError("malformed cursor")
    return Cursor(sort, key, row_id, filters)
