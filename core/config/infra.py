"""Where the embedded broker and database keep their state on a developer's machine."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from core.config.base import cached, settings_config


class InfraSettings(BaseSettings):
    model_config = settings_config("REVIEWSCORE_")

    state_dir: Path = Field(
        default=Path(".reviewscore"),
        description="Directory for the embedded PostgreSQL data dir, broker logs and pid files.",
    )
    broker_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of the embedded Tansu broker; 0 picks a free one.",
    )
    log_level: str = Field(default="INFO", description="Log level of every reviewscore process.")
    log_json: bool = Field(default=False, description="Emit structured JSON logs instead of text.")


@cached
def get_infra_settings() -> InfraSettings:
    return InfraSettings()
