"""A spider for Trustpilot-style review sites.

Categories -> sub-categories -> company listings (paginated) -> company review pages
(paginated). Any page is a valid start: a category index, one category, or a single
company's review page (``-a start_url=URL``), or a file of such URLs (``-a url_file=PATH``,
one per line, ``#`` comments). Pages are told apart by URL (``page_selectors.COMPANY_PAGE``);
what is read from them lives in ``scraper.extract`` and ``scraper.page_selectors``.

A page that cannot be read (not HTML, no reviews, broken structured data) is logged and
counted, and the crawl goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.http import Response

from scraper.extract import extract_reviews, listing_links
from scraper.items import ReviewItem
from scraper.page_selectors import COMPANY_PAGE
from scraper.spiders.reporting import ReportingSpider
from scraper.start_urls import collect_start_urls, hosts_of, warn_if_several_sites
from scraper.structured import document_of

MAX_UNREADABLE_IN_A_ROW = 3  # then a company's pages are given up: a site broken for good is not walked for ever


def is_company_page(url: str) -> bool:
    return bool(COMPANY_PAGE.search(urlsplit(url).path))


class TrustpilotSpider(ReportingSpider):
    name = "trustpilot"

    def __init__(self, start_url: str | list[str] | None = None, url_file: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_urls = collect_start_urls(start_url, url_file)
        # Stay on the sites we were pointed at; company websites are recorded, never followed.
        self.allowed_domains = hosts_of(self.start_urls)
        warn_if_several_sites(self.logger, self.allowed_domains)
        self._reviews_on_pages: set[tuple[str, str]] = set()  # (company, review id or author + text)
        self._unreadable_in_a_row: dict[str, int] = {}  # company (``_walk_of``) -> unusable pages in a row
        self._listed: dict[str, set[str]] = {}  # listing -> the categories and companies its pages linked

    async def start(self) -> AsyncIterator[Any]:
        if not self.start_urls:
            self.logger.error("nothing to crawl: pass -a start_url=URL or -a url_file=FILE")
        for url in self.start_urls:
            if is_company_page(url):
                yield scrapy.Request(url, callback=self.parse_company)
            else:
                yield self._listing_request(url)

    def _listing_request(self, url: str, listing: str | None = None) -> scrapy.Request:
        """A listing page; ``listing`` names the listing a next page continues (``_walk_of``)."""
        meta: dict[str, Any] = {"playwright": True} if self.settings.getbool("REVIEWSCORE_RENDER_JS") else {}
        if listing is not None:
            meta["listing"] = listing
        return scrapy.Request(url, callback=self.parse_category, meta=meta)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        """Default callback: route by URL."""
        if is_company_page(response.url):
            yield from self.parse_company(response)
        else:
            yield from self.parse_category(response)

    def parse_category(self, response: Response) -> Iterator[scrapy.Request]:
        """A category index, a category, or a company listing: follow what it links to.

        @fixture_url /categories/electronics/
        @returns items 0 0
        @returns requests 3 3
        """
        page = self._text_response(response)
        if page is None:
            return
        self._count("listing_pages")
        links = listing_links(page.selector, page.url)
        if not (links.categories or links.companies):
            self.logger.warning(
                "no categories or companies on %s; if the listing is rendered by JavaScript, crawl with --render-js",
                page.url,
            )
        for url in links.categories:
            yield self._listing_request(url)
        for url in links.companies:
            yield scrapy.Request(url, callback=self.parse_company)
        # A page that links nothing its listing's pages have not linked ends the listing: an empty
        # page, or a site that serves its last page again for ?page=N+1 with a next link, for ever.
        # By listing, so a company listed in two categories does not end the second one's walk.
        listing = _walk_of(response, "listing")
        linked = {*links.categories, *links.companies}
        listed = self._listed.setdefault(listing, set())
        new = linked - listed
        listed |= linked
        if links.next_page and new:
            yield self._listing_request(links.next_page, listing)
        elif links.next_page and linked:
            self.logger.info("%s: nothing new on this listing page; not following its next link", page.url)

    def parse_company(self, response: Response) -> Iterator[ReviewItem | scrapy.Request]:
        """A company's review page: its reviews, then the next page of them.

        @fixture_url /review/acme-electronics.example
        @returns items 3 3
        @returns requests 1 1
        @scrapes text review_id rating published_at author url company_name company_website company_logo
        """
        page = self._text_response(response)
        if page is None:
            return
        self._count("review_pages")
        links = listing_links(page.selector, page.url)
        company = _walk_of(response, "company")
        try:
            extraction = extract_reviews(page.selector, page.url)
        except Exception:  # one unreadable page must not end the company's crawl
            # Counted: `reviewscore crawl` exits 1 naming it, and the next page is still read.
            self.logger.exception("could not read the reviews on %s", page.url)
            self._count("unreadable_pages")
            if links.next_page and self._another_bad_page(company):
                yield scrapy.Request(links.next_page, callback=self.parse_company, meta={"company": company})
            return
        self._report(extraction, page.url)
        if not extraction.reviews:
            self.logger.warning("no reviews found on %s", page.url)
        yield from extraction.reviews
        # A page with no review this crawl has not seen on the company's pages ends them: a site
        # that keeps a "next" link past the last page (?page=N+1 for ever, empty or repeating
        # the last page) would otherwise be crawled without end.
        # A page of malformed cards only is a bad page: followed, up to a few in a row.
        seen = {(company, item.review_id or f"{item.author}\x1f{item.text}") for item in extraction.reviews}
        new = seen - self._reviews_on_pages
        self._reviews_on_pages |= seen
        if new:
            self._unreadable_in_a_row.pop(company, None)
        if links.next_page and (
            new or (extraction.skipped and not extraction.reviews and self._another_bad_page(company))
        ):
            yield scrapy.Request(links.next_page, callback=self.parse_company, meta={"company": company})
        elif links.next_page:
            self.logger.info("%s: no new review on this page; not following its next link", page.url)

    def _another_bad_page(self, company: str) -> bool:
        """Count one more unusable page of ``company`` in a row; True while its next page is still worth reading."""
        self._unreadable_in_a_row[company] = self._unreadable_in_a_row.get(company, 0) + 1
        return self._unreadable_in_a_row[company] < MAX_UNREADABLE_IN_A_ROW


def _walk_of(response: Response, name: str) -> str:
    """The listing or company a page belongs to: named by its first page (path and the query that is
    not paging), which its next pages carry in ``meta[name]``, whether they number themselves in the
    query (``?page=3``) or in the path (``/page/3``)."""
    request = getattr(response, "request", None)
    carried = request.meta.get(name) if request is not None else None
    return carried if isinstance(carried, str) else document_of(response.url)
