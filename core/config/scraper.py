"""Crawler settings (prefix ``SCRAPER_``)."""

from pydantic import Field
from pydantic_settings import BaseSettings

from core.config.base import cached, settings_config


class ScraperSettings(BaseSettings):
    model_config = settings_config("SCRAPER_")

    user_agent: str = Field(
        default="reviewscore-bot/0.1 (+https://github.com/reviewscore/reviewscore)",
        description="User agent that identifies the crawler to site owners.",
    )
    obey_robots: bool = Field(default=True, description="Honour robots.txt.")
    concurrency_per_domain: int = Field(default=2, ge=1, description="Parallel requests per domain.")
    download_delay: float = Field(default=0.5, ge=0, description="Base delay between requests (AutoThrottle start).")
    httpcache_enabled: bool = Field(default=True, description="Cache pages so unchanged ones are not re-fetched.")


@cached
def get_scraper_settings() -> ScraperSettings:
    return ScraperSettings()
