"""The spider's walk over a company's pages: where it stops, and what one bad page costs."""

from __future__ import annotations

import pytest
import scrapy
from scrapy.http import HtmlResponse

import scraper.spiders.trustpilot as trustpilot
from scraper.items import ReviewItem
from scraper.spiders.trustpilot import TrustpilotSpider
from tests.fixtures.scraper import made_spider

BASE = "http://reviews.test/review/acme.example"


def company_page(url: str, *cards: tuple[str, ...], next_page: str | None = None) -> HtmlResponse:
    """Cards as (id, text) or (id, text, author); an empty id leaves the attribute out."""
    body = "".join(
        f"<article data-review-card{f' data-review-id={card[0]!r}' if card[0] else ''}>"
        + (f"<span data-consumer-name>{card[2]}</span>" if len(card) > 2 else "")
        + f"<p data-review-text>{card[1]}</p></article>"
        for card in cards
    )
    if next_page:
        body += f"<nav><a rel='next' data-pagination-next href='{next_page}'>Next</a></nav>"
    return HtmlResponse(url=url, body=f"<html><body>{body}</body></html>".encode(), encoding="utf-8")


def walk(spider: TrustpilotSpider, response: HtmlResponse) -> tuple[list[ReviewItem], list[str]]:
    out = list(spider.parse_company(response))
    return [o for o in out if isinstance(o, ReviewItem)], [o.url for o in out if isinstance(o, scrapy.Request)]


@pytest.fixture
def spider() -> TrustpilotSpider:
    return made_spider(TrustpilotSpider, start_url=BASE)


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


@pytest.fixture
def unreadable_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every page raises while its reviews are extracted."""

    def broken(*_args: object) -> None:
        raise RuntimeError("a page shape nobody foresaw")

    monkeypatch.setattr(trustpilot, "extract_reviews", broken)


@pytest.mark.usefixtures("unreadable_pages")
def test_a_page_that_cannot_be_read_is_counted_and_the_next_page_still_read(spider: TrustpilotSpider) -> None:
    items, requests = walk(spider, company_page(BASE, ("a1", "Good"), next_page="?page=2"))
    assert (items, requests) == ([], [f"{BASE}?page=2"])
    assert spider.crawler.stats.get_value("reviewscore/unreadable_pages") == 1  # type: ignore[union-attr]


def test_reviews_without_ids_are_told_apart_by_author_too(spider: TrustpilotSpider) -> None:
    """Short one-liners repeat; a page of other people's "Great service" is still new."""
    walk(spider, company_page(BASE, ("", "Great service", "Ann"), next_page="?page=2"))
    _, others = walk(spider, company_page(f"{BASE}?page=2", ("", "Great service", "Cat"), next_page="?page=3"))
    _, again = walk(spider, company_page(f"{BASE}?page=3", ("", "Great service", "Cat"), next_page="?page=4"))
    assert others == [f"{BASE}?page=3"]
    assert again == []


@pytest.mark.usefixtures("unreadable_pages")
def test_a_company_whose_pages_keep_failing_is_given_up_after_three(spider: TrustpilotSpider) -> None:
    followed = [walk(spider, company_page(f"{BASE}?page={n}", next_page=f"?page={n + 1}"))[1] for n in (1, 2, 3)]
    assert followed == [[f"{BASE}?page=2"], [f"{BASE}?page=3"], []]


def test_pages_of_malformed_cards_only_are_followed_a_few_times_not_for_ever(spider: TrustpilotSpider) -> None:
    followed = [
        walk(spider, company_page(f"{BASE}?page={n}", ("x", ""), next_page=f"?page={n + 1}"))[1] for n in (1, 2, 3)
    ]
    assert followed == [[f"{BASE}?page=2"], [f"{BASE}?page=3"], []]


LISTING = "http://reviews.test/categories/electronics/"


def listing_page(
    url: str, *companies: str, next_page: str | None = None, request: scrapy.Request | None = None
) -> HtmlResponse:
    body = "".join(f"<a data-business-unit-card href='/review/{name}'>{name}</a>" for name in companies)
    if next_page:
        body += f"<a rel='next' href='{next_page}'>Next</a>"
    html = f"<html><body>{body}</body></html>".encode()
    return HtmlResponse(url=url, body=html, encoding="utf-8", request=request)


def listing_walk(spider: TrustpilotSpider, response: HtmlResponse) -> list[str]:
    return [r.url for r in spider.parse_category(response) if r.callback == spider.parse_category]


def test_a_listing_that_serves_its_last_page_again_is_left_there(spider: TrustpilotSpider) -> None:
    """?page=N+1 answered with the last page and a next link again: walked for ever before."""
    assert listing_walk(spider, listing_page(LISTING, "a.example", "b.example", next_page="?page=2")) == [
        f"{LISTING}?page=2"
    ]
    assert listing_walk(spider, listing_page(f"{LISTING}?page=2", "c.example", next_page="?page=3")) == [
        f"{LISTING}?page=3"
    ]
    assert listing_walk(spider, listing_page(f"{LISTING}?page=3", "c.example", next_page="?page=4")) == []


def test_companies_listed_in_another_category_do_not_end_this_ones_walk(spider: TrustpilotSpider) -> None:
    gadgets = "http://reviews.test/categories/gadgets/"
    listing_walk(spider, listing_page(gadgets, "a.example", "b.example"))

    assert listing_walk(spider, listing_page(LISTING, "a.example", "b.example", next_page="?page=2")) == [
        f"{LISTING}?page=2"
    ]


def test_a_malformed_next_link_costs_the_company_only_its_next_page(spider: TrustpilotSpider) -> None:
    items, requests = walk(spider, company_page(BASE, ("a1", "Good"), next_page="http://[reviews.test/x?page=2"))

    assert ([item.review_id for item in items], requests) == (["a1"], [])


def test_a_listing_numbered_in_its_path_that_repeats_its_last_page_is_left_there(spider: TrustpilotSpider) -> None:
    """/page/3 is another path than /page/2: the listing is named by its first page, which its next pages carry."""
    (second,) = [
        r
        for r in spider.parse_category(listing_page(LISTING, "a.example", next_page=f"{LISTING}page/2"))
        if r.callback == spider.parse_category
    ]
    again = listing_page(f"{LISTING}page/2", "a.example", next_page=f"{LISTING}page/3", request=second)

    assert listing_walk(spider, again) == []


def test_a_company_numbered_in_its_path_that_repeats_its_last_page_is_left_there(spider: TrustpilotSpider) -> None:
    first = company_page(BASE, ("a1", "Good"), next_page=f"{BASE}/page/2")
    (second,) = [o for o in spider.parse_company(first) if isinstance(o, scrapy.Request)]
    repeat = company_page(f"{BASE}/page/2", ("a1", "Good"), next_page=f"{BASE}/page/3")
    again = HtmlResponse(url=repeat.url, body=repeat.body, encoding="utf-8", request=second)

    assert walk(spider, again)[1] == []


def test_two_listings_on_one_path_that_share_companies_both_walk_on(spider: TrustpilotSpider) -> None:
    """Two searches: keyed by path alone, the second ended at its first page, the companies only it lists unread."""
    search = "http://reviews.test/search"
    listing_walk(
        spider, listing_page(f"{search}?query=phone", "a.example", "b.example", next_page="?query=phone&page=2")
    )

    assert listing_walk(
        spider, listing_page(f"{search}?query=mobile", "a.example", "b.example", next_page="?query=mobile&page=2")
    ) == [f"{search}?query=mobile&page=2"]
