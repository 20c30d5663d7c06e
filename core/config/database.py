"""PostgreSQL connection settings (prefix ``DATABASE_``; ``DATABASE_URL`` is the usual name)."""

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from core.config.base import cached, settings_config

# PostgreSQL's reserved key words (pg_get_keywords(), category R): a role of one of these names
# cannot be written unquoted, and the migrations splice it into GRANT statements as it is.
_RESERVED_WORDS = (
    "all analyse analyze and any array as asc asymmetric both case cast check collate column constraint "
    "create current_catalog current_date current_role current_time current_timestamp current_user "
    "default deferrable desc distinct do else end except false fetch for foreign from grant group having "
    "in initially intersect into lateral leading limit localtime localtimestamp not null offset on only "
    "or order placing primary references returning select session_user some symmetric table then to "
    "trailing true union unique user using variadic when where window with"
)
_RESERVED = frozenset(_RESERVED_WORDS.split())


class DatabaseSettings(BaseSettings):
    model_config = settings_config("DATABASE_")

    url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy/libpq URL of the writer connection (worker, migrations). "
            "Unset: the database of a running `reviewscore infra up`; `demo` and `worker --embedded` "
            "start the embedded PostgreSQL under REVIEWSCORE_STATE_DIR; other commands exit 2."
        ),
    )
    readonly_url: str | None = Field(
        default=None,
        description="URL the query API connects with (the SELECT-only role). Unset: derived from url.",
    )
    readonly_role: str = Field(
        default="reviewscore_reader",
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="Name of the SELECT-only role that the first migration creates.",
    )
    pool_size: int = Field(default=5, ge=1, description="Connections kept open per process.")
    max_overflow: int = Field(default=5, ge=0, description="Extra connections allowed under load.")
    pool_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for a pooled connection.")
    pool_recycle: int = Field(default=1800, ge=-1, description="Seconds before a connection is recycled.")
    connect_timeout: int = Field(default=5, ge=1, description="libpq connect timeout in seconds.")
    statement_timeout_ms: int = Field(
        default=30_000, ge=0, description="Server-side statement timeout for every session (0: none)."
    )
    dead_peer_timeout: int = Field(
        default=60,
        ge=0,
        description=(
            "Seconds after which a connection whose server stopped answering (a network partition, a host "
            "gone) fails instead of hanging, so the worker retries and reports itself unhealthy: TCP "
            "keepalives and tcp_user_timeout (0: the OS defaults, about 15 minutes)."
        ),
    )
    echo: bool = Field(default=False, description="Log every SQL statement (debugging only).")
    migration_lock_timeout_ms: int = Field(
        default=10_000,
        ge=0,
        description=(
            "How long `migrate` waits for a table lock before it gives up and names the sessions in its way "
            "(3 tries); while it waits, every reader and writer of that table waits behind it (0: no limit)."
        ),
    )

    @field_validator("url", "readonly_url")
    @classmethod
    def _postgresql_url(cls, value: str | None) -> str | None:
        # Caught here, where the message names the variable: SQLAlchemy's own parse error (or a
        # missing MySQL driver for mysql://) came out as a traceback from whichever command ran.
        if value is None or not value.strip():
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            scheme = make_url(value).drivername.partition("+")[0]
        except ArgumentError:
            scheme = ""
        if scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a PostgreSQL URL, postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
        return value

    @field_validator("readonly_role")
    @classmethod
    def _creatable_role(cls, value: str) -> str:
        if value.startswith("pg_") or value in {"public", "none"}:
            raise ValueError(f"{value!r} is a role name PostgreSQL reserves for itself")
        if value in _RESERVED:
            raise ValueError(f"{value!r} is an SQL reserved word; pick another role name")
        return value


@cached
def get_database_settings() -> DatabaseSettings:
    return DatabaseSettings()
