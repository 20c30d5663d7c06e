"""Maps ``ScraperSettings`` (``SCRAPER_*`` environment / ``.env``) onto Scrapy's settings.

An add-on (Scrapy's ``ADDONS``) rather than module-level code in ``settings.py``, so the
settings object is built when a crawler starts, never at import, and command-line ``-s``
values (higher priority) still override it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from core.config import ScraperSettings, get_infra_settings, get_scraper_settings

log = logging.getLogger(__name__)
PRIORITY = "addon"
PIPELINE = "scraper.pipelines.KafkaPublishPipeline"
CONTRACT_PIPELINE = "scraper.pipelines.ContractPipeline"


def scrapy_settings(config: ScraperSettings) -> dict[str, Any]:
    """The Scrapy settings that follow from ours (pure, so it is tested without a crawler)."""
    # Under the project's state directory unless set: a private REVIEWSCORE_STATE_DIR covers it too.
    state_dir = (config.state_dir or get_infra_settings().state_dir / "scraper").expanduser().resolve()
    values: dict[str, Any] = {
        "USER_AGENT": config.user_agent,
        "ROBOTSTXT_OBEY": config.obey_robots,
        "CONCURRENT_REQUESTS_PER_DOMAIN": config.concurrency_per_domain,
        "DOWNLOAD_DELAY": config.download_delay,
        "AUTOTHROTTLE_ENABLED": config.autothrottle,
        "AUTOTHROTTLE_START_DELAY": max(config.download_delay, 0.1),
        "AUTOTHROTTLE_TARGET_CONCURRENCY": config.autothrottle_target_concurrency,
        "HTTPCACHE_ENABLED": config.httpcache_enabled,
        "HTTPCACHE_DIR": str(state_dir / "httpcache"),
        "CLOSESPIDER_PAGECOUNT": config.max_pages,
        "REVIEWSCORE_STATE_DIR": str(state_dir),
        "REVIEWSCORE_INCREMENTAL": config.incremental,
        "REVIEWSCORE_DELIVERY_TIMEOUT": config.delivery_timeout_s,
        "REVIEWSCORE_PUBLISH_RETRIES": config.publish_retries,
        "REVIEWSCORE_RENDER_JS": config.render_js,
        "REVIEWSCORE_FIXTURE_BASE_URL": config.fixture_base_url,
        "REVIEWSCORE_SOURCE": config.source,
    }
    if config.render_js:
        values.update(browser_settings(config.browser_executable))
    return values


def browser_available(executable: str | None = None) -> str | None:
    """None when scrapy-playwright can be used and has a Chromium to drive, else why not."""
    if importlib.util.find_spec("scrapy_playwright") is None:
        return "scrapy-playwright is not installed (pip install scrapy-playwright)"
    if executable:
        if not (shutil.which(executable) or Path(executable).is_file()):
            return f"SCRAPER_BROWSER_EXECUTABLE={executable} is no program"
        return None
    if shutil.which("chromium") or shutil.which("chromium-browser") or _playwright_chromium():
        return None
    # Without a browser every page failed to download, and the crawl blamed the network.
    return (
        "no Chromium was found: install one (Debian: apt-get install chromium), set SCRAPER_BROWSER_EXECUTABLE, "
        "or run `playwright install chromium`"
    )


def _playwright_chromium() -> bool:
    """Whether ``playwright install`` put a Chromium where Playwright looks for its own."""
    root = os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or str(Path.home() / ".cache" / "ms-playwright")
    return any(Path(root).glob("chromium*"))


def browser_settings(executable: str | None) -> dict[str, Any]:
    """Download handlers and launch options of scrapy-playwright for ``render_js``."""
    reason = browser_available(executable)
    if reason:
        raise RuntimeError(f"SCRAPER_RENDER_JS is on but {reason}")
    executable = executable or shutil.which("chromium") or shutil.which("chromium-browser")
    launch: dict[str, Any] = {"headless": True}
    if executable:
        launch["executable_path"] = executable
    return {
        "DOWNLOAD_HANDLERS": {
            "http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
            "https": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
        },
        "PLAYWRIGHT_BROWSER_TYPE": "chromium",
        "PLAYWRIGHT_LAUNCH_OPTIONS": launch,
    }


class ReviewscoreAddon:
    """Scrapy add-on: applies ``SCRAPER_*`` settings when the crawler is configured."""

    def update_settings(self, settings: Any) -> None:
        for name, value in scrapy_settings(get_scraper_settings()).items():
            settings.set(name, value, priority=PRIORITY)
        # `scrapy check` sets SCRAPY_CHECK: contracts test callbacks, nothing is published.
        if os.environ.get("SCRAPY_CHECK"):
            return
        # Without publishing, the feed (-o) still gets each review once, and none the contract refuses.
        publish = settings.getbool("REVIEWSCORE_PUBLISH", True)
        settings["ITEM_PIPELINES"][PIPELINE if publish else CONTRACT_PIPELINE] = 300
