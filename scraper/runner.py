"""Running one crawl in this process and reporting its statistics (``reviewscore crawl``).

The Twisted reactor cannot be restarted, so this runs at most once per process; tests run
crawls in subprocesses.
"""

from __future__ import annotations

import logging
from typing import Any

from scraper.pipelines import summary

PROJECT_SETTINGS = "scraper.settings"


def crawl_settings(overrides: dict[str, Any] | None = None) -> Any:
    """The project's Scrapy settings with ``overrides`` at command-line priority."""
    from scrapy.settings import Settings

    settings = Settings()
    settings.setmodule(PROJECT_SETTINGS, priority="project")
    for name, value in (overrides or {}).items():
        settings.set(name, value, priority="cmdline")
    return settings


def run_crawl(
    spider: str, spider_args: dict[str, Any], overrides: dict[str, Any] | None = None
) -> tuple[dict[str, int], dict[str, Any]]:
    """Crawl to the end; returns (summary figures, Scrapy's full stats)."""
    from scrapy.crawler import CrawlerProcess

    # reviewscore already configured logging; Scrapy's own root handler would duplicate it,
    # and Scrapy sets its loggers to DEBUG, which would print every item.
    settings = crawl_settings({"LOG_INSTALL_ROOT_HANDLER": False, **(overrides or {})})
    process = CrawlerProcess(settings)
    logging.getLogger("scrapy").setLevel(logging.getLogger().getEffectiveLevel())
    crawler = process.create_crawler(spider)
    process.crawl(crawler, **spider_args)
    process.start()
    try:
        stats: dict[str, Any] = crawler.stats.get_stats() if crawler.stats else {}
    except RuntimeError:  # the crawler never started (a bad setting, a missing plugin): no stats yet
        stats = {}
    if process.bootstrap_failed:
        stats.setdefault("finish_reason", "bootstrap_failed")
    return summary(stats), stats
