"""Where the embedded broker and database keep their state on a developer's machine."""

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from core.config.base import cached, settings_config

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(value: str) -> str:
    """``value`` as a level name (any case), or ValueError: REVIEWSCORE_LOG_LEVEL and --log-level alike."""
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level


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

    @field_validator("state_dir")
    @classmethod
    def _home_expanded(cls, value: Path) -> Path:
        """``~/.rs`` as a shell reads it: unexpanded, the embedded database went to ``./~/.rs``
        while the scraper, which expands it, kept its state under the home directory."""
        return value.expanduser()

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        return log_level(value)

    log_json: bool = Field(default=False, description="Emit structured JSON logs instead of text.")


@cached
def get_infra_settings() -> InfraSettings:
    return InfraSettings()
