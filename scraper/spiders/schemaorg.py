"""A spider for any site that marks its reviews up with schema.org JSON-LD.

Give it the pages that hold reviews (a product, a shop, a company's page; ``-a start_url=URL``
or ``-a url_file=PATH``): it reads their ``Review`` nodes (``scraper.structured``) and follows
each page's ``rel="next"`` link on the same site, while that link leads to reviews not seen yet.
Listing pages are not walked: which pages hold reviews differs per site. A site's XML sitemap
(a start URL ending in ``.xml`` or ``.xml.gz``, a sitemap index included) is the list instead,
narrowed by ``-a follow=REGEX`` to the pages whose URL matches (``/products/``). A start page
without JSON-LD reviews is logged and counted; a sitemap's page without them only counted.
"""

from __future__ import annotations

import re
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.http import Response

from scraper.extract import html_link
from scraper.items import ReviewItem
from scraper.spiders.reporting import ReportingSpider
from scraper.start_urls import collect_start_urls, hosts_of, warn_if_several_sites
from scraper.structured import next_page_link, structured_reviews

MAX_SITEMAP_BYTES = 50 * 1024 * 1024  # the sitemaps protocol's own limit, uncompressed


def is_sitemap(url: str) -> bool:
    return urlsplit(url).path.lower().endswith((".xml", ".xml.gz"))


class SchemaOrgSpider(ReportingSpider):
    name = "schemaorg"

    def __init__(
        self,
        start_url: str | list[str] | None = None,
        url_file: str | None = None,
        follow: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._follow = re.compile(follow) if follow else None  # a bad pattern fails here, before the crawl
        self.start_urls = collect_start_urls(start_url, url_file)
        self.allowed_domains = hosts_of(self.start_urls)  # next links to another site are not followed
        warn_if_several_sites(self.logger, self.allowed_domains)
        self._seen: set[tuple[str | None, str]] = set()  # (author, text) of every review read
        self._review_by_id: dict[str, tuple[str | None, str]] = {}  # id -> (author, text) first seen with it

    async def start(self) -> AsyncIterator[Any]:
        if not self.start_urls:
            self.logger.error("nothing to crawl: pass -a start_url=URL or -a url_file=FILE")
        for url in self.start_urls:
            yield scrapy.Request(url, callback=self.parse_sitemap) if is_sitemap(url) else self._request(url)

    def _request(self, url: str, from_sitemap: bool = False) -> scrapy.Request:
        """Rendered in Chromium with --render-js: some shops add their JSON-LD from a script."""
        meta: dict[str, Any] = {"playwright": True} if self.settings.getbool("REVIEWSCORE_RENDER_JS") else {}
        if from_sitemap:
            meta["from_sitemap"] = True
        return scrapy.Request(url, callback=self.parse, meta=meta)

    def parse_sitemap(self, response: Response) -> Iterator[scrapy.Request]:
        """A sitemap: its pages (those ``follow`` matches) are read; a sitemap index, its sitemaps."""
        from scrapy.utils.gz import gunzip
        from scrapy.utils.sitemap import Sitemap

        body = response.body
        if body[:2] == b"\x1f\x8b":  # a .xml.gz served as a file, not as Content-Encoding
            try:
                body = gunzip(body, max_size=MAX_SITEMAP_BYTES)
            # gunzip re-raises EOFError and struct.error as they come; ValueError: over MAX_SITEMAP_BYTES
            except (OSError, EOFError, struct.error, ValueError) as exc:
                self.logger.warning("skipped %s: not a readable gzip file (%s)", response.url, exc)
                self._count("unreadable_sitemaps")
                return
        try:
            sitemap = Sitemap(body)
        except (SyntaxError, StopIteration):  # lxml's XMLSyntaxError: not XML at all; StopIteration: empty
            sitemap = None
        if sitemap is None or sitemap.type not in ("urlset", "sitemapindex"):
            self.logger.warning("skipped %s: not a sitemap (a <urlset> or <sitemapindex>)", response.url)
            self._count("unreadable_sitemaps")
            return
        self._count("listing_pages")  # only once it is one: `reviewscore crawl` reads these as pages read
        self._count("sitemaps")
        matched = 0
        offsite: set[str] = set()
        for entry in sitemap:
            url = html_link(entry.get("loc", ""), response.url)
            if url is None:
                continue
            host = (urlsplit(url).hostname or "").lower()
            if self.allowed_domains and not any(host == d or host.endswith("." + d) for d in self.allowed_domains):
                offsite.add(host)  # Scrapy's offsite filter would drop it, and log that only at DEBUG
                continue
            if sitemap.type == "sitemapindex":
                yield scrapy.Request(url, callback=self.parse_sitemap)
            elif self._follow is None or self._follow.search(url):
                matched += 1
                yield self._request(url, from_sitemap=True)
        if offsite:
            self.logger.warning(
                "%s: skipped what it lists on other sites than the start URLs' (%s)",
                response.url,
                ", ".join(sorted(offsite)),
            )
        if sitemap.type == "urlset" and not matched:
            self.logger.warning("%s: no page matched %s", response.url, self._follow.pattern if self._follow else "")
        self._count("sitemap_pages_listed", matched)

    def _with_a_unique_id(self, item: ReviewItem, page_url: str) -> ReviewItem:
        """An id met before on another review (a café whose every review links to its menu, one
        review per page) names neither: this one is keyed by its content, and the log says so."""
        if item.review_id is None:
            return item
        first = self._review_by_id.setdefault(item.review_id, (item.author, item.text))
        if first != (item.author, item.text):
            self.logger.warning(
                "%s: id %s was read before on another review; this one is keyed by its content",
                page_url,
                item.review_id,
            )
            self._count("shared_review_ids")
            item.review_id = None
        return item

    def parse(self, response: Response, **kwargs: Any) -> Iterator[ReviewItem | scrapy.Request]:
        """A page with reviews: its reviews, then its next page while that brings new ones.

        @fixture_url /shop/kettle
        @returns items 3 3
        @returns requests 1 1
        @scrapes text review_id rating published_at author company_name
        """
        page = self._text_response(response)
        if page is None:
            return
        self._count("review_pages")
        try:
            extraction = structured_reviews(page.selector, page.url)
        except Exception:  # one unreadable page must not end the crawl; counted, so the crawl exits 1
            self.logger.exception("could not read the reviews on %s", response.url)
            self._count("unreadable_pages")
            return
        self._report(extraction, response.url)
        if not extraction.reviews:
            # A sitemap lists every page of a site, most without reviews: counted, not logged.
            listed = response.request is not None and response.request.meta.get("from_sitemap")
            log = self.logger.debug if listed else self.logger.warning
            log("no schema.org reviews in the JSON-LD of %s", response.url)
        for item in extraction.reviews:
            yield self._with_a_unique_id(item, response.url)
        # Only a page that brought a review not read before leads on: a site whose "next" link
        # outlives its last page (?page=N+1 for ever) is not crawled without end. By content, as
        # ids can name a review differently on two pages (scoped by path where nothing else was).
        seen = {(item.author, item.text) for item in extraction.reviews}
        new = seen - self._seen
        self._seen |= seen
        link = next_page_link(response.selector, response.url)
        if link and new:
            yield self._request(link)
        elif link:
            self.logger.info("%s: no new review on this page; not following its next link", response.url)
