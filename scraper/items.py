"""What the spider yields: one dataclass per review, everything the page says about it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ReviewItem:
    """One review with its company; optional fields are None when the page does not have them.

    ``published_at`` is ISO-8601 (as found, normalized to UTC when it had no zone); ``title``
    is kept apart from ``text`` so consumers can choose; the message contract has no place for
    the company's website and logo, so they stay in the item (feeds, ``-o reviews.jsonl``).
    """

    text: str
    page_url: str
    review_id: str | None = None
    title: str | None = None
    rating: int | None = None
    published_at: str | None = None
    author: str | None = None
    lang: str | None = None
    url: str | None = None
    company_name: str | None = None
    company_website: str | None = None
    company_logo: str | None = None
