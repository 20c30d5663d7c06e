"""What every spider of ours counts and logs the same way, so ``reviewscore crawl`` reads one set
of statistics (``reviewscore/*``) whichever spider ran."""

from __future__ import annotations

import scrapy
from scrapy.http import Response, TextResponse

from scraper.extract import Extraction

STAT = "reviewscore/{}"


class ReportingSpider(scrapy.Spider):  # type: ignore[misc]  # scrapy is untyped for mypy here
    def _count(self, name: str, count: int = 1) -> None:
        if self.crawler.stats is not None:
            self.crawler.stats.inc_value(STAT.format(name), count)

    def _text_response(self, response: Response) -> TextResponse | None:
        """The page as text, or None (counted and logged) when it is not one: a PDF, an image."""
        if isinstance(response, TextResponse):
            return response
        self._count("not_html")
        content_type = response.headers.get(b"Content-Type", b"?").decode("latin-1")
        self.logger.warning("skipped %s: not an HTML page (Content-Type %s)", response.url, content_type)
        return None

    def _report(self, extraction: Extraction, url: str) -> None:
        """A page's problems logged, and its problems, malformed and found reviews counted."""
        for problem in extraction.problems:
            self.logger.warning("%s: %s", url, problem)
        if extraction.problems:
            self._count("page_problems", len(extraction.problems))
        if extraction.skipped:
            self._count("malformed_reviews", extraction.skipped)
        self._count("reviews_found", len(extraction.reviews))
