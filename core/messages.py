"""The message contract on the ``reviews`` topic, shared by every producer and the worker.

The JSON Schema committed at ``core/schemas/review_message.v1.json`` is generated from
``ReviewMessage`` (``python -m core.messages``); a test fails when the two drift apart, so
external producers can validate against the file and trust it.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from core.iso_time import IsoDateTime

SCHEMA_VERSION = 1
MAX_TEXT_CHARS = 20_000
MAX_MESSAGE_BYTES = 300_000
"""Largest message value the worker reads. Above the longest valid message however it is escaped:
every field at its limit written as ``\\uXXXX`` surrogate pairs (``json.dumps``' default) is about
274 kB; at 256,000 such a valid review was dead-lettered ``too_large``, a reason replay skips."""
JSON_SCHEMA_PATH = Path(__file__).parent / "schemas" / f"review_message.v{SCHEMA_VERSION}.json"

_SOURCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/\-]*$"
# The same, in the JSON Schema, with the rule of ``_no_content_key_segment`` (ECMA-262 has lookahead).
_SOURCE_SCHEMA_PATTERN = r"^(?!(?:.*:)?sha256(?::|$))[A-Za-z0-9][A-Za-z0-9_.:/\-]*$"
_LANG_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
# What the NUL validator enforces, in the JSON Schema, so producers validating against the file agree.
_NO_NUL: dict[str, Any] = {"pattern": "^[^\\u0000]*$"}
# Whitespace as the model's stripping sees it: Unicode White_Space, spelled out, because \s means
# something else in Python's re (also U+001C-U+001F) and in ECMA-262 (also U+FEFF, not U+0085).
_BLANK = "\\t\\n\\u000b\\u000c\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
# Text: not blank once stripped, and no NUL (one pattern: a field's schema holds one).
_TEXT_SCHEMA: dict[str, Any] = {"pattern": f"^(?=[\\s\\S]*[^{_BLANK}])[^\\u0000]*$"}
# ``_URL_PATTERN`` after stripping (its \s is Python's: White_Space and U+001C-U+001F), case-insensitive
# by hand (JSON Schema regexes take no flags).
_URL_CHAR = f"[^{_BLANK}\\u001c-\\u001f\\u0000"
_URL_SCHEMA: dict[str, Any] = {
    "pattern": f"^[{_BLANK}]*[Hh][Tt][Tt][Pp][Ss]?://{_URL_CHAR}/$.?#]{_URL_CHAR}]*[{_BLANK}]*$"
}
RESERVED_ID_PREFIX = "sha256:"
RESERVED_SEGMENT = RESERVED_ID_PREFIX.rstrip(":")
_URL_PATTERN = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


def _check_url(value: str | None) -> str | None:
    if value is not None and not _URL_PATTERN.match(value):
        raise ValueError("must be an absolute http(s) URL")
    return value


ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
Url = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2048), AfterValidator(_check_url)]


def _refuse_reserved_segment(value: str) -> None:
    if RESERVED_SEGMENT in value.split(":"):
        raise ValueError(
            f"must not have a ':'-separated segment {RESERVED_SEGMENT!r} (the marker of text-derived keys)"
        )


class ReviewMessage(BaseModel):
    """One review as published to Kafka (JSON, UTF-8; Kafka key = ``review_key``)."""

    model_config = ConfigDict(
        extra="ignore",  # newer producers may add optional fields; older workers must not choke
        frozen=True,
        json_schema_extra={
            "$id": f"https://reviewscore.dev/schemas/review_message.v{SCHEMA_VERSION}.json",
            "examples": [
                {
                    "schema_version": 1,
                    "text": "Delivery was fast and the support team solved my problem in minutes.",
                    "source": "scraper:trustpilot",
                    "review_id": "5f2a9c",
                    "brand": "Acme",
                    "rating": 5,
                    "url": "https://www.trustpilot.com/reviews/5f2a9c",
                    "author": "Jane D.",
                    "published_at": "2026-11-20T14:03:00Z",
                    "lang": "en",
                }
            ],
        },
    )

    schema_version: Literal[1] = Field(default=1, description="Version of this contract.")
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS)] = Field(
        description="The review text; must not be empty after stripping whitespace. No text field may hold NUL.",
        json_schema_extra=_TEXT_SCHEMA,
    )
    source: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=_SOURCE_PATTERN)
    ] = Field(
        description=(
            "Who produced it: 'scraper:<spider>', 'user', or a producer's name. No ':'-separated "
            "segment may be 'sha256' (keys derived from the text are 'source:sha256:<hash>')."
        ),
        json_schema_extra={"pattern": _SOURCE_SCHEMA_PATTERN},
    )
    review_id: ShortText | None = Field(
        default=None,
        description=(
            "The producer's stable id of the review; makes re-publishing idempotent. No ':'-separated "
            "segment may be 'sha256' (keys derived from the text are 'source:sha256:<hash>')."
        ),
        json_schema_extra={"pattern": "^(?![\\s\\u0085]*(?:[^:]*:)*sha256(?::|$))[^\\u0000-\\u001f\\u007f]*$"},
    )
    brand: ShortText | None = Field(
        default=None, description="Brand or company the review is about.", json_schema_extra=_NO_NUL
    )
    rating: Annotated[int, Field(ge=1, le=5, strict=True)] | None = Field(
        default=None,
        description=(
            "Stars (1-5) given by the review's author, when the source has them: a JSON integer "
            "(4, not 4.0, which JSON Schema's integer type also takes and the worker refuses)."
        ),
    )
    url: Url | None = Field(
        default=None,
        description="Where the review was published (an absolute http(s) URL).",
        json_schema_extra=_URL_SCHEMA,
    )
    author: ShortText | None = Field(
        default=None, description="The review's author as shown by the source.", json_schema_extra=_NO_NUL
    )
    published_at: IsoDateTime | None = Field(
        default=None, description="When the review was published (ISO-8601; naive times are taken as UTC)."
    )
    lang: Annotated[str, StringConstraints(max_length=35, pattern=_LANG_PATTERN)] | None = Field(
        default=None, description="BCP-47 language tag of the text, e.g. 'en' or 'en-GB'."
    )

    @field_validator("text", "review_id", "brand", "url", "author")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # PostgreSQL text cannot store U+0000: refused here, where the producer hears why,
        # not at the sink, after the API has already answered 202.
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL (U+0000) characters")
        return value

    @field_validator("source")
    @classmethod
    def _no_content_key_segment(cls, value: str) -> str:
        # `source:review_id` with source 'user:sha256' and a 32-hex id is another review's
        # content key, 'user:sha256:<hash>': the review_id rule alone does not stop that.
        _refuse_reserved_segment(value)
        return value

    @field_validator("review_id")
    @classmethod
    def _not_a_content_key(cls, value: str | None) -> str | None:
        # `source:sha256:<hash>` is the key of a review without an id. An id of that shape would
        # land on (and overwrite) that review, whose key anyone can read off the API. Checked on
        # what `review_key` uses: Python's strip() also removes U+001C-U+001F, which pydantic's
        # whitespace stripping keeps, so those (and every other control character) are refused.
        if value is None:
            return None
        if any(ord(char) < 0x20 or char == "\x7f" for char in value):
            raise ValueError("must not contain control characters")
        # Anywhere: source 'scraper' + id 'trustpilot:sha256:<hash>' is source
        # 'scraper:trustpilot''s content key just as well.
        _refuse_reserved_segment(value.strip())
        return value

    @field_validator("published_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """In UTC: PostgreSQL refuses offsets Python accepts (up to ±24 h); stored as an instant anyway."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of range once converted to UTC") from None

    @cached_property
    def review_key(self) -> str:
        """Computed once per message: the worker reads it several times per review."""
        return review_key(self.source, self.text, self.review_id, brand=self.brand, author=self.author)

    def to_kafka(self) -> tuple[bytes, bytes]:
        """(key, value) as they go on the topic."""
        return self.review_key.encode("utf-8"), self.model_dump_json(exclude_none=True).encode("utf-8")


# What a producer says about a review, as ``sentiments`` stores it (message field -> column). The
# sink compares these to tell an edit from a re-delivery, the API to tell the row of a submission
# from an earlier version's: one list, so a field added to the contract reaches both.
REVIEW_COLUMNS: dict[str, str] = {
    "text": "sentence",
    "brand": "brand",
    "rating": "rating",
    "url": "url",
    "author": "author",
    "lang": "lang",
    "published_at": "published_at",
}


def normalize_text(text: str) -> str:
    """Unicode NFC and collapsed whitespace: the same review re-typed or re-scraped hashes the same."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def review_key(
    source: str, text: str, review_id: str | None = None, *, brand: str | None = None, author: str | None = None
) -> str:
    """``source:review_id`` when the producer has an id, else ``source:sha256:<content hash>``.

    Without an id the key is what the review *is*: who wrote which words about whom. Brand and
    author are in the hash, so "Great quality!" about two brands, or by two authors, is two
    reviews rather than one row whose brand the second overwrote; a review with neither hashes
    source + text exactly as the first schema did, so those keys never changed (migration 0006
    re-keyed the stored rows that have a brand or an author). sha256 over explicit UTF-8 bytes
    (never ``hash()``) keeps the key identical across processes, machines and Python versions;
    the parts are joined by U+001F, which ``normalize_text`` never leaves inside a part.
    """
    source = source.strip()
    if review_id is not None and review_id.strip():
        return f"{source}:{review_id.strip()}"
    parts = [source, normalize_text(text)]
    brand, author = normalize_text(brand or ""), normalize_text(author or "")
    if brand or author:
        parts += [brand, author]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    return f"{source}:{RESERVED_ID_PREFIX}{digest}"


class MessageError(ValueError):
    """A message that can never be scored; ``reason`` is a stable code for the dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_message(raw: bytes | None, max_bytes: int = MAX_MESSAGE_BYTES) -> ReviewMessage:
    """Decode and validate one message value, raising ``MessageError`` with a precise reason."""
    if raw is None or len(raw) == 0:
        raise MessageError("empty", "the message has no value")
    if len(raw) > max_bytes:
        raise MessageError("too_large", f"{len(raw)} bytes exceeds the limit of {max_bytes}")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageError("not_utf8", str(exc)) from exc
    try:
        payload: Any = json.loads(decoded)
    except (ValueError, RecursionError) as exc:
        # Besides syntax errors: nesting deeper than the interpreter's stack (RecursionError) and
        # integers past Python's 4,300-digit conversion limit (ValueError) are unreadable JSON too.
        raise MessageError("bad_json", f"{type(exc).__name__}: {exc}"[:500]) from exc
    if not isinstance(payload, dict):
        raise MessageError("not_object", f"expected a JSON object, got {type(payload).__name__}")
    version = payload.get("schema_version", SCHEMA_VERSION)
    # ``true`` equals 1 in Python, not in JSON Schema, whose const refuses it (and takes 1.0).
    if isinstance(version, bool) or version != SCHEMA_VERSION:
        raise MessageError("unsupported_version", f"schema_version {version!r} is not {SCHEMA_VERSION}")
    try:
        return ReviewMessage.model_validate(payload)
    except ValidationError as exc:
        raise MessageError("invalid", describe_validation_error(exc)) from exc


def describe_validation_error(exc: ValidationError) -> str:
    """One line per failing field, without echoing the (possibly huge) input back."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"]) or "message"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def json_schema() -> dict[str, Any]:
    schema = ReviewMessage.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def render_json_schema() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def now_utc() -> datetime:
    return datetime.now(UTC)


if __name__ == "__main__":  # pragma: no cover - regenerates the committed schema file
    JSON_SCHEMA_PATH.parent.mkdir(exist_ok=True)
    JSON_SCHEMA_PATH.write_text(render_json_schema(), encoding="utf-8")
    print(f"wrote {JSON_SCHEMA_PATH}")
