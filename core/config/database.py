"""PostgreSQL connection settings (prefix ``DATABASE_``; ``DATABASE_URL`` is the usual name)."""

from pydantic import Field
from pydantic_settings import BaseSettings

from core.config.base import cached, settings_config


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
    echo: bool = Field(default=False, description="Log every SQL statement (debugging only).")


@cached
def get_database_settings() -> DatabaseSettings:
    return DatabaseSettings()
