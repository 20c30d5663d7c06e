"""Query API settings (prefix ``API_``)."""

import ipaddress
import json
import re
from typing import Annotated, Any, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from core.config.base import cached, settings_config
from core.messages import MAX_MESSAGE_BYTES

PAGE_LIMIT_BOUND = 500
"""The page size the OpenAPI schema promises clients at most."""

_KEY_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

MIN_NAMED_KEY_LENGTH = 16
"""A named producer's key is at least this long (``openssl rand -hex 16`` gives 32)."""

SUBMIT_BATCH_BOUND = 1000
"""The most reviews in one POST /sentiments/batch the OpenAPI schema admits."""


class ApiSettings(BaseSettings):
    model_config = settings_config("API_")

    host: str = Field(default="127.0.0.1", description="Bind address of the HTTP server.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port of the HTTP server.")
    workers: int = Field(default=1, ge=1, description="uvicorn worker processes.")
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description=(
            "Proxies trusted for X-Forwarded-For/-Proto, comma-separated addresses or networks (10.0.0.0/8): the "
            "client's address, which the submission rate limit counts by, is then the one they forwarded. Behind "
            "an ingress, its addresses or network; '*' trusts any peer, so a client that reaches the API directly "
            "or through a proxy that appends to the header picks its own address."
        ),
    )
    db_pre_ping: bool = Field(
        default=False,
        description=(
            "Test each pooled connection with a round trip before a request (~0.6 ms of CPU). Off: after a "
            "database restart, the requests already holding a connection get 503 database_unavailable and "
            "the pool reconnects."
        ),
    )
    page_limit_default: int = Field(default=50, ge=1, description="Rows per page when no limit is given.")
    page_limit_max: int = Field(
        default=PAGE_LIMIT_BOUND,
        ge=1,
        le=PAGE_LIMIT_BOUND,
        description="Largest accepted page size; may be lowered below the 500 the API documents, not raised.",
    )
    max_body_bytes: int = Field(
        default=MAX_MESSAGE_BYTES,
        ge=1024,
        description=(
            "Largest accepted request body. The default admits the longest review the contract allows however "
            "a client escapes it (every field at its limit as \\uXXXX surrogate pairs: about 274 kB)."
        ),
    )
    submit_wait_max: float = Field(
        default=30.0, ge=0, description="Longest ?wait= a submission may block for its score (s)."
    )
    wait_poll_interval: float = Field(
        default=0.1, gt=0, description="How often a ?wait= request re-reads the database for its row (s)."
    )
    publish_timeout: float = Field(
        default=10.0, gt=0, description="Longest wait for the broker to acknowledge a submission (s)."
    )
    submit_api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated keys a POST /sentiments/ must carry (`Authorization: Bearer KEY` or `X-API-Key: KEY`; "
            "401 without one); empty: submission is open. Reads are never keyed."
        ),
    )
    submit_named_keys: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict,
        description=(
            'Keys of named producers, as a JSON object `{"shop-a": "KEY", ...}` (keys of 16+ characters; blank: '
            "none): a submission with one is "
            "published with source `api:<name>`, so two producers' `review_id`s never land on one row (every "
            "other submission is source `user`). Any key set here also makes a key required."
        ),
    )
    submit_rate_per_minute: int = Field(
        default=0,
        ge=0,
        description=(
            "Submissions per minute per client (its API key, else its address) in each API process, in bursts "
            "of up to a minute's worth; over it, 429 with Retry-After. 0: no limit."
        ),
    )
    submit_batch_max: int = Field(
        default=500,
        ge=1,
        le=SUBMIT_BATCH_BOUND,
        description=(
            "Most reviews in one POST /sentiments/batch (at most 1000); the body must also fit API_MAX_BODY_BYTES."
        ),
    )
    alert_webhook: SecretStr | None = Field(
        default=None,
        description=(
            "URL `reviewscore trends --alert-drop` POSTs its alert to ({text, alert_id, alerts}: a Slack-style "
            "incoming webhook shows `text`); a secret, as such URLs carry their token. "
            "Unset: the alert is printed only."
        ),
    )
    stats_max_rows: int = Field(
        default=10_000, ge=1, description="Most (bucket, group) rows one stats query may return."
    )
    export_chunk_rows: int = Field(default=2_000, ge=1, description="Rows fetched and sent per export chunk.")
    export_max_rows: int = Field(default=5_000_000, ge=1, description="Largest accepted export ?limit=.")
    read_cache_mb: float = Field(
        default=64.0,
        ge=0,
        description=(
            "Memory per process for rendered read answers (first list pages, stats, brands, trends, charts), "
            "each kept until PostgreSQL announces a write to sentiments (or API_READ_CACHE_STALENESS after it). "
            "0 turns the cache off."
        ),
    )
    read_cache_staleness: float = Field(
        default=0.0,
        ge=0,
        description=(
            "Seconds a cached answer may still be served after a write to its data was announced. 0: dropped at "
            "once, so a hit is what a fresh read returns. A second or two keeps dashboards on the cache while a "
            "worker commits batch after batch."
        ),
    )
    read_cache_max_age: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Seconds a cached answer is served at most, announced change or not: the bound on staleness "
            "should a notification be lost without the listening connection failing."
        ),
    )
    read_concurrency: int = Field(
        default=2,
        ge=0,
        description=(
            "Reads a process starts at once (query and rendering); the others wait their turn in arrival order. A read "
            "counts for API_READ_SLOT_HOLD at most. One or two per process kept the p99 lowest on 2 cores; 0: no limit."
        ),
    )
    read_slot_hold: float = Field(
        default=0.02,
        gt=0,
        description=(
            "Seconds a read counts against API_READ_CONCURRENCY at most: a slower one (an aggregate over the "
            "rows, a query waiting on a lock) runs on and lets the next read in, so it cannot hold up cheap ones."
        ),
    )

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses_or_networks(cls, value: str) -> str:
        """uvicorn takes what is not an address or network as a literal host and never matches it:
        a typo, or 10.0.0.1/8 for 10.0.0.0/8, would trust nobody and rate-limit the proxy as one client."""
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        if entries == ["*"]:
            return "*"
        if not entries:
            raise ValueError("name at least one address or network, or '*'")
        for entry in entries:
            try:
                ipaddress.ip_network(entry)
            except ValueError as exc:
                hint = "'*' trusts every peer and stands alone" if entry == "*" else str(exc)
                raise ValueError(f"{entry!r} is not an address or a network: {hint}") from None
        return ",".join(entries)

    @field_validator("submit_api_keys", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """One variable, ``key1,key2``: a rotation adds the new key beside the old, then drops the old.

        A JSON list (``["key1","key2"]``, how pydantic-settings reads every other list setting, and
        what the settings table's default ``[]`` suggests) is read as one: split at its commas, it
        made the keys ``["key1"`` and ``"key2"]``, and every submission with a real key got a 401.
        """
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                # Not raised on when it does not parse: pydantic's error would print the keys.
                try:
                    parsed = json.loads(text)
                except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
                    parsed = None
                if isinstance(parsed, list) and all(isinstance(key, str) for key in parsed):
                    return [key.strip() for key in parsed if key.strip()]
            return [key.strip() for key in text.split(",") if key.strip()]
        return value

    @field_validator("submit_named_keys", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        """Blank is none (compose's ``${VAR:-}``); else a JSON object. Said without the value: it holds keys."""
        parsed = value
        if isinstance(value, str):
            if not value.strip():
                return {}
            try:
                parsed = json.loads(value)
            except (ValueError, RecursionError):
                parsed = None
        if not isinstance(parsed, dict) or not all(isinstance(key, str) for key in parsed.values()):
            raise ValueError('must be a JSON object of names and keys, {"shop-a": "KEY", ...}')
        # Stripped as the presented key is: a Secret read from a file ends in a newline.
        return {name: key.strip() for name, key in parsed.items()}

    @field_validator("submit_named_keys")
    @classmethod
    def _names_make_sources(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        """A name becomes the ``api:<name>`` source of the message contract: a short slug, no ``:``.

        Neither a name nor a key is ever put in the message: written the wrong way round, the
        "name" is the key. Keys are at least 16 characters, which also catches that swap (a name
        as a key), before a guessable key is accepted and the real one published as a source.
        """
        for index, (name, key) in enumerate(value.items(), start=1):
            if not _KEY_NAME.fullmatch(name) or name == "sha256":
                raise ValueError(
                    f"name {index} must be 1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
                )
            if len(key.get_secret_value().strip()) < MIN_NAMED_KEY_LENGTH:
                raise ValueError(
                    f"the key of name {index} is shorter than {MIN_NAMED_KEY_LENGTH} characters "
                    "(names and keys swapped?)"
                )
        return value

    @model_validator(mode="after")
    def _each_key_once(self) -> Self:
        """One key, one producer: a key under two names (or named and unnamed) credits one of them at random."""
        keys = [key.get_secret_value() for key in self.submit_api_keys]
        keys += [key.get_secret_value() for key in self.submit_named_keys.values()]
        if len(set(keys)) < len(keys):
            raise ValueError("API_SUBMIT_API_KEYS and API_SUBMIT_NAMED_KEYS give one key more than once")
        return self

    @model_validator(mode="after")
    def _default_page_fits(self) -> Self:
        if self.page_limit_default > self.page_limit_max:
            raise ValueError(
                f"API_PAGE_LIMIT_DEFAULT ({self.page_limit_default}) exceeds API_PAGE_LIMIT_MAX ({self.page_limit_max})"
            )
        return self


@cached
def get_api_settings() -> ApiSettings:
    return ApiSettings()
