"""Every CSS selector, JSON-LD type and URL pattern the spider relies on, in one place.

When the site changes its markup, this is the file to edit. The names follow the
``data-*`` attributes of Trustpilot-style pages (and of the bundled fixture site).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class PageSelectors:
    json_ld: str = 'script[type="application/ld+json"]::text'

    # Listing pages (category index, categories, sub-categories, company listings).
    category_links: str = "a[data-category-link]::attr(href)"
    company_links: str = "a[data-business-unit-card]::attr(href)"
    next_page: str = 'a[rel="next"]::attr(href)'

    # Company header on a review page.
    company_name: str = "[data-business-name]"
    company_website: str = "a[data-business-website]::attr(href)"
    company_logo: str = "img[data-business-logo]::attr(src)"

    # Review cards on a review page, relative to one card. Text fields select the element: its
    # text is read as a reader sees it (``extract.element_text``), not as its text nodes.
    review_card: str = "article[data-review-card]"
    card_id: str = "::attr(data-review-id)"
    card_link: str = 'a[href*="reviews/"]::attr(href)'
    card_author: str = "[data-consumer-name]"
    card_rating: str = "[data-review-rating]::attr(data-review-rating)"
    card_rating_alt: str = 'img[alt^="Rated"]::attr(alt)'
    card_date: str = "time::attr(datetime)"
    card_title: str = "[data-review-title]"
    card_text: str = "[data-review-text]"


SELECTORS = PageSelectors()

# JSON-LD @type values that describe the reviewed company.
COMPANY_TYPES = frozenset({"Organization", "LocalBusiness", "Corporation", "OnlineStore", "Store", "Airline"})
REVIEW_TYPE = "Review"

# A company review page: /review/<domain>; anything else the spider treats as a listing.
COMPANY_PAGE = re.compile(r"/review/[^/?#]+/?$")
# The site's review id inside a review URL or a JSON-LD @id.
REVIEW_ID_IN_URL = re.compile(r"/reviews?/(?:[^/?#]+/)?([A-Za-z0-9_-]+)/?$", re.IGNORECASE)
# Where a review lives when a page gives only its id.
REVIEW_URL_TEMPLATE = "/reviews/{review_id}"
# "Rated 4 out of 5 stars" -> 4 out of 5; "8/10" -> 8 out of 10 (scaled onto stars)
RATING_IN_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:out of|/)\s*(\d+(?:\.\d+)?)")
