"""Query API settings (prefix ``API_``)."""

from pydantic import Field
from pydantic_settings import BaseSettings

from core.config.base import cached, settings_config


class ApiSettings(BaseSettings):
    model_config = settings_config("API_")

    host: str = Field(default="127.0.0.1", description="Bind address of the HTTP server.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port of the HTTP server.")
    workers: int = Field(default=1, ge=1, description="uvicorn worker processes.")
    db_pre_ping: bool = Field(
        default=False,
        description=(
            "Test each pooled connection with a round trip before a request (~0.6 ms of CPU). Off: after a "
            "database restart, the requests already holding a connection get 503 database_unavailable and "
            "the pool reconnects."
        ),
    )
    page_limit_default: int = Field(default=50, ge=1, description="Rows per page when no limit is given.")
    page_limit_max: int = Field(default=500, ge=1, description="Largest accepted page size.")
    max_body_bytes: int = Field(default=64_000, ge=1024, description="Largest accepted request body.")
    submit_wait_max: float = Field(
        default=30.0, ge=0, description="Longest ?wait= a submission may block for its score (s)."
    )
    wait_poll_interval: float = Field(
        default=0.1, gt=0, description="How often a ?wait= request re-reads the database for its row (s)."
    )
    publish_timeout: float = Field(
        default=10.0, gt=0, description="Longest wait for the broker to acknowledge a submission (s)."
    )
    stats_max_rows: int = Field(
        default=10_000, ge=1, description="Most (bucket, group) rows one stats query may return."
    )
    export_chunk_rows: int = Field(default=2_000, ge=1, description="Rows fetched and sent per export chunk.")
    export_max_rows: int = Field(default=5_000_000, ge=1, description="Largest accepted export ?limit=.")


@cached
def get_api_settings() -> ApiSettings:
    return ApiSettings()
