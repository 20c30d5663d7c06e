"""Crawler settings (prefix ``SCRAPER_``)."""

from pathlib import Path

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
    autothrottle: bool = Field(default=True, description="Adapt the delay to the server's latency (AutoThrottle).")
    autothrottle_target_concurrency: float = Field(
        default=1.0, gt=0, description="AutoThrottle's average number of parallel requests per site."
    )
    state_dir: Path | None = Field(
        default=None,
        description=(
            "HTTP cache and seen-review state of incremental re-crawls, and undelivered messages. "
            "Unset: `scraper/` under REVIEWSCORE_STATE_DIR."
        ),
    )
    incremental: bool = Field(
        default=True, description="Publish only reviews that are new or changed since an earlier crawl."
    )
    delivery_timeout_s: float = Field(
        default=30.0, gt=0, description="How long one message may wait for the broker's acknowledgement."
    )
    publish_retries: int = Field(default=3, ge=0, description="Re-sends of a message whose delivery failed.")
    max_pages: int = Field(default=0, ge=0, description="Stop after this many pages (0: no limit).")
    render_js: bool = Field(
        default=False, description="Render listing pages in a headless browser (needs scrapy-playwright)."
    )
    browser_executable: str | None = Field(
        default=None, description="Chromium binary for render_js (default: chromium on PATH, else Playwright's)."
    )
    source: str | None = Field(
        default=None,
        description=(
            "Message source of the crawled reviews (default: scraper:<spider>). Review ids are unique within a "
            "site only: give each site the spider crawls besides Trustpilot a source of its own."
        ),
    )
    fixture_base_url: str | None = Field(
        default=None,
        description="Base URL of the fixture site for `scrapy check` contracts (unset: the bundled one is served).",
    )


@cached
def get_scraper_settings() -> ScraperSettings:
    return ScraperSettings()
