"""Query API settings (prefix ``API_``)."""

from pydantic import Field
from pydantic_settings import BaseSettings

from core.config.base import cached, settings_config


class ApiSettings(BaseSettings):
    model_config = settings_config("API_")

    host: str = Field(default="127.0.0.1", description="Bind address of the HTTP server.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port of the HTTP server.")
    workers: int = Field(default=1, ge=1, description="uvicorn worker processes.")
    page_limit_default: int = Field(default=50, ge=1, description="Rows per page when no limit is given.")
    page_limit_max: int = Field(default=500, ge=1, description="Largest accepted page size.")
    max_body_bytes: int = Field(default=64_000, ge=1024, description="Largest accepted request body.")
    submit_wait_max: float = Field(
        default=30.0, ge=0, description="Longest ?wait= a submission may block for its score (s)."
    )


@cached
def get_api_settings() -> ApiSettings:
    return ApiSettings()
