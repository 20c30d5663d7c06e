"""The spider's walk over a company's pages: where it stops, and what one bad page costs."""

from __future__ import annotations

from typing import Any

import pytest
import scrapy
from scrapy.http import HtmlResponse
from scrapy.utils.test import get_crawler

import scraper.spiders.trustpilot as trustpilot
from scraper.items import ReviewItem
from scraper.spiders.trustpilot import TrustpilotSpider

BASE = "http://reviews.test/review/acme.example"


def company_page(url: str, *cards: tuple[str, str], next_page: str | None = None) -> HtmlResponse:
    body = "".join(
        f"<article data-review-card data-review-id='{rid}'><p data-review-text>{text}</p></article>"
        for rid, text in cards
    )
    if next_page:
        body += f"<nav><a rel='next' data-pagination-next href='{next_page}'>Next</a></nav>"
    return HtmlResponse(url=url, body=f"<html><body>{body}</body></html>".encode(), encoding="utf-8")


def walk(spider: TrustpilotSpider, response: HtmlResponse) -> tuple[list[ReviewItem], list[str]]:
    out = list(spider.parse_company(response))
    return [o for o in out if isinstance(o, ReviewItem)], [o.url for o in out if isinstance(o, scrapy.Request)]


@pytest.fixture
def spider() -> TrustpilotSpider:
    crawler = get_crawler(TrustpilotSpider)
    crawler.stats.open_spider()  # type: ignore[union-attr]
    made: Any = TrustpilotSpider.from_crawler(crawler, start_url=BASE)
    return made  # type: ignore[no-any-return]


def test_a_page_with_new_reviews_leads_to_the_next_one(spider: TrustpilotSpider) -> None:
    items, requests = walk(spider, company_page(BASE, ("a1", "Good"), ("a2", "Bad"), next_page="?page=2"))
    assert [item.review_id for item in items] == ["a1", "a2"]
    assert requests == [f"{BASE}?page=2"]


def test_a_site_whose_next_link_never_ends_is_left_at_the_first_page_without_new_reviews(
    spider: TrustpilotSpider,
) -> None:
    walk(spider, company_page(BASE, ("a1", "Good"), next_page="?page=2"))
    _, after_repeat = walk(spider, company_page(f"{BASE}?page=2", ("a1", "Good"), next_page="?page=3"))
    _, after_empty = walk(spider, company_page(f"{BASE}?page=3", next_page="?page=4"))
    assert after_repeat == []  # the last page served again under a new number
    assert after_empty == []  # an empty page past the last


def test_a_page_that_cannot_be_read_is_counted_and_the_next_page_still_read(
    spider: TrustpilotSpider, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("a page shape nobody foresaw")

    monkeypatch.setattr(trustpilot, "extract_reviews", broken)
    items, requests = walk(spider, company_page(BASE, ("a1", "Good"), next_page="?page=2"))
    assert (items, requests) == ([], [f"{BASE}?page=2"])
    assert spider.crawler.stats.get_value("reviewscore/unreadable_pages") == 1  # type: ignore[union-attr]
