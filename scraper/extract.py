"""Pure functions from one page (a ``parsel.Selector`` and its URL) to reviews and links.

Structured data first: JSON-LD ``Review`` nodes give the most reliable fields. The HTML
review cards are the fallback, and fill fields the JSON-LD lacks; the two are merged per
review id, or by text (and author) when only one side names the id, since one review must
never become two messages with two keys. Every odd value (a rating of 7, a date of
"yesterday", a language of "English", broken JSON) is dropped with a note in
``Extraction.problems`` so the spider can log it: one bad field never costs the review, and
one bad review never costs the page.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from parsel import Selector

from core.messages import normalize_text
from core.text import unescape_html
from scraper.items import ReviewItem
from scraper.page_selectors import (
    COMPANY_TYPES,
    RATING_IN_TEXT,
    REVIEW_ID_IN_URL,
    REVIEW_TYPE,
    REVIEW_URL_TEMPLATE,
    SELECTORS,
)


@dataclass(frozen=True)
class Company:
    name: str | None = None
    website: str | None = None
    logo: str | None = None


@dataclass(frozen=True)
class ListingLinks:
    categories: list[str]
    companies: list[str]
    next_page: str | None


@dataclass
class Extraction:
    reviews: list[ReviewItem] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: int = 0
    used_json_ld: bool = False


# --- small normalizers ---------------------------------------------------------------------


# JSON allows "\ud83d" alone (a site's script cut an emoji in half) and json.loads keeps it; no
# UTF-8 can carry it, so the message contract refused the text and the review was lost. Replaced
# as lxml replaces the same character in the card's HTML, so both copies still read alike.
_LONE_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_text(parts: list[str] | str | None) -> str | None:
    """Join text nodes, unescape entities left in structured data, collapse whitespace.

    NUL characters are dropped: page noise, and the message contract refuses them (PostgreSQL
    text cannot store them), which would lose the whole review.
    """
    if parts is None:
        return None
    text = parts if isinstance(parts, str) else " ".join(parts)
    return _scrubbed(unescape_html(text)) or None


def _scrubbed(text: str) -> str:
    """``text`` as the contract takes it: lone surrogates as U+FFFD, no NUL, whitespace collapsed."""
    return " ".join(_LONE_SURROGATES.sub("\ufffd", text).replace("\x00", "").split())


# Where a reader sees a break between words: line breaks and block elements (inline markup such
# as <b> or <span> joins the words as written).
_BREAKS = re.compile(
    r"(?i)<br\s*/?>|</?(?:p|div|li|ul|ol|h[1-6]|tr|td|th|blockquote|section|article|header|footer)\b[^>]*>"
)


# Inline elements a shop's structured data carries in its text, with attributes only as name=value.
# Named and shaped, not any ``<...>``: "love it <3 and > the old one", "a <grin>", "Size <s or m>"
# and "<a must have>" are a reviewer's words and must stay.
_INLINE_TAGS = re.compile(
    r"(?i)</?(?:a|b|i|u|em|strong|span|font|small|big|sup|sub|mark|abbr|cite|q|s|strike|del|ins|code|img|hr"
    r"|wbr|time|label|bdi|bdo|dfn|kbd|samp|var|tt|nobr)"
    r"""(?:\s+[\w:-]+\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'<>]+))*\s*/?>"""
)


def markup_text(value: str) -> str | None:
    """The text of a string of structured data as a reader of the page sees it.

    Shops put HTML in ``reviewBody`` (``Great kettle.<br/>Would buy again``), escaped or not: kept
    as it was, the text differed from the card's for the same review, which was then published twice
    under two keys, and the markup reached the model and the table.
    """
    text = unescape_html(value)
    text = _INLINE_TAGS.sub("", _BREAKS.sub(" ", text))
    return _scrubbed(text) or None


def element_text(elements: Any) -> str | None:
    """The text of ``elements`` as a reader sees it.

    Joining an element's text nodes with spaces turned ``Great <b>product</b>!`` into "Great
    product !" and ``don<span>'</span>t`` into "don ' t": another text than the page's structured
    data holds for the same review, so it was published twice under two keys.
    """
    from w3lib.html import remove_tags, remove_tags_with_content

    parts = []
    for element in elements:
        markup = remove_tags_with_content(element.get(), which_ones=("script", "style"))
        parts.append(remove_tags(_BREAKS.sub(" ", markup)))
    return clean_text(parts)


def _number(value: Any) -> float | None:
    """A finite number from a JSON number or a numeric string; None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer of 400 digits
        return None
    return number if math.isfinite(number) else None


def normalize_rating(value: Any, best: Any = None, worst: Any = None) -> int | None:
    """1-5 stars from ``5``, ``"4"``, ``"1.0"`` or ``"Rated 4 out of 5 stars"``; None otherwise.

    A rating on another scale (schema.org's ``bestRating``/``worstRating``, whose defaults are 5
    and 1, or "8 out of 10" in text) is mapped linearly onto 1-5 and rounded half up: read as
    stars, a site's 4 out of 10 was stored as a four-star review, and 7 to 10 were refused.
    On the 1-5 scale itself only whole stars count (a 2.5 is refused, not guessed).
    """
    if isinstance(value, str):
        # The first "N out of M" that is a rating on its own scale: "Posted 12/05: 4 out of 5" is 4.
        for match in RATING_IN_TEXT.finditer(value):
            if (stars := normalize_rating(match.group(1), match.group(2))) is not None:
                return stars
    number = _number(value)
    top = 5.0 if best is None else _number(best)
    bottom = 1.0 if worst is None else _number(worst)
    if number is None or top is None or bottom is None or not bottom <= number <= top:
        return None
    if (top, bottom) == (5.0, 1.0):
        return int(number) if number.is_integer() else None
    if top <= bottom:
        return None
    return math.floor(1 + 4 * (number - bottom) / (top - bottom) + 0.5)


def normalize_date(value: Any) -> str | None:
    """ISO-8601 in UTC from a date or date-time string; None when it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC).isoformat()
    except (ValueError, OverflowError):  # OverflowError: 9999-12-31T23:00-05:00 is past year 9999 in UTC
        return None


def html_link(value: Any, base: str) -> str | None:
    """An HTML attribute's link resolved as a browser does (``reviews/r1``, ``../r1`` included).

    Structured data's ``url`` values go through ``absolute_http_url`` instead: there a bare word
    is more often a mistake than a path. Only http(s) links count (not ``javascript:`` or ``mailto:``).
    """
    if not isinstance(value, str) or not value.strip():
        return None
    from w3lib.url import safe_url_string  # what Scrapy does to a request's URL: spaces become %20

    try:
        joined = safe_url_string(urljoin(base, value.strip()))
        parts = urlsplit(joined)
    except ValueError:  # "http://[oops", a port past 65535: one bad link must not cost its page
        return None
    return joined if parts.scheme in ("http", "https") and parts.netloc else None


def absolute_http_url(value: Any, base: str) -> str | None:
    """``value`` joined to ``base`` when it is a link (absolute, or a path starting with /)."""
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    if not (value.startswith(("http://", "https://", "/")) and " " not in value):
        return None
    try:
        joined = urljoin(base, value)
        parts = urlsplit(joined)
        parts.port  # noqa: B018 - raises for a port past 65535, as a request for it would
    except ValueError:
        return None
    return joined if parts.scheme in ("http", "https") and parts.netloc else None


MAX_REVIEW_URL_CHARS = 2048  # the contract's limit for a review's url


def review_url(
    value: Any, base: str, review_id: str | None, problems: list[str], *, resolve: Callable[[Any, str], str | None]
) -> str | None:
    """A review's link, or None when it is longer than the contract takes (the card's may fill in)."""
    url = resolve(value, base)
    if url is not None and len(url) > MAX_REVIEW_URL_CHARS:
        problems.append(f"review {review_id or '?'}: URL of {len(url)} characters is too long")
        return None
    return url


def external_url(value: Any) -> str | None:
    """A company's website: only an absolute http(s) URL counts."""
    if isinstance(value, str) and re.match(r"^https?://[^\s/]+", value.strip()):
        return value.strip()
    return None


# A well-formed BCP-47 tag once ``_`` became ``-``: a 2-3 letter language, then 2-8 character subtags.
_LANG_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")
MAX_LANG_CHARS = 35  # the contract's limit


def normalize_lang(value: Any) -> str | None:
    """A BCP-47 tag in its usual casing (``en``, ``en-GB``, ``zh-Hant-TW``) from ``"EN"`` or ``"en_us"``.

    Pages write locales as they please; the contract wants the BCP-47 form, and a review whose
    tag it refuses would otherwise be dropped whole. None when the value is not a tag at all.
    """
    if not isinstance(value, str):
        return None
    tag = value.strip().replace("_", "-")
    if len(tag) > MAX_LANG_CHARS or not _LANG_TAG.fullmatch(tag):
        return None
    language, *subtags = tag.split("-")
    cased = [language.lower()]
    for subtag in subtags:
        if len(subtag) == 4 and subtag.isalpha():
            cased.append(subtag.title())  # script: Hant, Latn
        elif len(subtag) == 2 and subtag.isalpha():
            cased.append(subtag.upper())  # region: GB, US
        else:
            cased.append(subtag.lower())  # numeric region (419), variants
    return "-".join(cased)


def review_id_from(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    match = REVIEW_ID_IN_URL.search(value.split("?")[0])
    return match.group(1) if match else None


# --- JSON-LD -------------------------------------------------------------------------------


_SCHEMA_PREFIXES = ("https://schema.org/", "http://schema.org/", "schema:")


def json_ld_types(node: dict[str, Any]) -> set[str]:
    """The node's ``@type`` names, also when written as IRIs (``https://schema.org/Review``, ``schema:Review``)."""
    kind = node.get("@type")
    kinds = (
        [kind] if isinstance(kind, str) else [k for k in kind if isinstance(k, str)] if isinstance(kind, list) else []
    )
    names = set()
    for name in kinds:
        for prefix in _SCHEMA_PREFIXES:
            if name.startswith(prefix):
                name = name.removeprefix(prefix)
                break
        names.add(name)
    return names


def json_ld_walk(value: Any) -> list[dict[str, Any]]:
    """Every JSON object in a JSON-LD document, depth-first (``@graph``, nested ``review`` …)."""
    found: list[dict[str, Any]] = []
    stack = [value]
    while stack:
        current = stack.pop(0)
        if isinstance(current, dict):
            found.append(current)
            stack.extend(v for v in current.values() if isinstance(v, (dict, list)))
        elif isinstance(current, list):
            stack.extend(current)
    return found


def json_ld_documents(selector: Selector, problems: list[str]) -> list[Any]:
    """The page's JSON-LD blocks, parsed; one that cannot be read is a problem, not the page's end."""
    documents: list[Any] = []
    for index, raw in enumerate(selector.css(SELECTORS.json_ld).getall()):
        try:
            documents.append(json.loads(raw))
        except json.JSONDecodeError as exc:
            problems.append(f"JSON-LD block {index + 1} is not valid JSON ({exc})")  # exc.msg may end in "at"
        except (ValueError, RecursionError) as exc:  # a number over 4,300 digits; nesting past the stack
            problems.append(f"JSON-LD block {index + 1} is unreadable ({type(exc).__name__})")
    return documents


def json_ld_nodes(selector: Selector, problems: list[str]) -> list[dict[str, Any]]:
    return [node for document in json_ld_documents(selector, problems) for node in json_ld_walk(document)]


def _name(value: Any) -> str | None:
    if isinstance(value, list):  # several authors: the first names the review
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("name")
    return clean_text(value) if isinstance(value, str) else None


def _rating(value: Any) -> tuple[Any, Any, Any]:
    """A Rating node's value and scale (``bestRating``, ``worstRating``), or a bare value."""
    if isinstance(value, dict):
        return value.get("ratingValue"), value.get("bestRating"), value.get("worstRating")
    return value, None, None


def review_from_json_ld(
    node: dict[str, Any],
    page_url: str,
    problems: list[str],
    identify: Callable[[dict[str, Any]], str | None] | None = None,
) -> ReviewItem | None:
    """A ``Review`` node as an item; ``identify`` reads its id (default: the site's review URLs)."""
    text = markup_text(node["reviewBody"]) if isinstance(node.get("reviewBody"), str) else None
    title = markup_text(node["headline"]) if isinstance(node.get("headline"), str) else None
    if identify is not None:
        review_id = identify(node)
    else:
        review_id = review_id_from(node.get("url")) or review_id_from(node.get("@id"))
    if not text:
        problems.append(f"JSON-LD review {review_id or '?'} has no text")
        return None
    raw_rating, best, worst = _rating(node.get("reviewRating"))
    rating = normalize_rating(raw_rating, best, worst)
    if raw_rating is not None and rating is None:
        scale = (
            ""
            if best is None and worst is None
            else f" on a scale of {1 if worst is None else worst} to {5 if best is None else best}"
        )
        problems.append(f"review {review_id or '?'}: rating {raw_rating!r}{scale} is not 1-5 stars")
    raw_date = node.get("datePublished")
    published = normalize_date(raw_date)
    if raw_date is not None and published is None:
        problems.append(f"review {review_id or '?'}: date {raw_date!r} is not ISO-8601")
    raw_lang = node.get("inLanguage")
    lang = normalize_lang(raw_lang)
    if raw_lang is not None and lang is None:
        problems.append(f"review {review_id or '?'}: language {raw_lang!r} is not a BCP-47 tag")
    return ReviewItem(
        text=text,
        page_url=page_url,
        review_id=review_id,
        title=title,
        rating=rating,
        published_at=published,
        author=_name(node.get("author")),
        lang=lang,
        url=review_url(node.get("url"), page_url, review_id, problems, resolve=absolute_http_url),
    )


def company_from_json_ld(nodes: list[dict[str, Any]], page_url: str) -> Company:
    """The reviewed company: a review site describes itself too (an ``Organization`` block for
    the site, often first in its ``@graph``), and taking the first company node named the site."""
    candidates = [node for node in nodes if json_ld_types(node) & COMPANY_TYPES and isinstance(node.get("name"), str)]
    if not candidates:
        return Company()
    reviewed: list[Any] = []
    for node in nodes:
        if "Review" in json_ld_types(node):
            target = node.get("itemReviewed")
            reviewed.extend(target if isinstance(target, list) else [target])
    reviewed_ids = {t.get("@id") if isinstance(t, dict) else t for t in reviewed if isinstance(t, (dict, str))} - {None}
    reviewed_nodes = {id(target) for target in reviewed if isinstance(target, dict)}

    def holds_reviews(node: dict[str, Any]) -> bool:
        held = node.get("review")
        return any(
            isinstance(r, dict) and "Review" in json_ld_types(r) for r in (held if isinstance(held, list) else [held])
        )

    def rank(node: dict[str, Any]) -> int:
        if id(node) in reviewed_nodes or node.get("@id") in reviewed_ids or holds_reviews(node):
            return 0  # what the reviews are about: named by their itemReviewed, or holding them
        return 1 if json_ld_types(node) - {"Organization"} else 2  # a LocalBusiness, Store … before a bare Organization

    node = min(candidates, key=rank)  # the first of the best rank
    logo = node.get("logo")
    if isinstance(logo, dict):
        logo = logo.get("url")
    return Company(
        name=clean_text(node["name"]),
        website=external_url(node.get("url")),
        logo=absolute_http_url(logo, page_url),
    )


# --- HTML fallback -------------------------------------------------------------------------


def review_from_card(card: Selector, page_url: str, problems: list[str]) -> ReviewItem | None:
    raw_link = card.css(SELECTORS.card_link).get()
    review_id = clean_text(card.css(SELECTORS.card_id).get()) or review_id_from(html_link(raw_link, page_url))
    link = review_url(raw_link, page_url, review_id, problems, resolve=html_link)
    text = element_text(card.css(SELECTORS.card_text))
    if not text:
        problems.append(f"review card {review_id or '?'} has no text; skipped")
        return None
    raw_rating = card.css(SELECTORS.card_rating).get() or card.css(SELECTORS.card_rating_alt).get()
    rating = normalize_rating(raw_rating)
    if raw_rating is not None and rating is None:
        problems.append(f"review {review_id or '?'}: rating {raw_rating!r} is not 1-5 stars")
    raw_date = card.css(SELECTORS.card_date).get()
    published = normalize_date(raw_date)
    if raw_date is not None and published is None:
        problems.append(f"review {review_id or '?'}: date {raw_date!r} is not ISO-8601")
    return ReviewItem(
        text=text,
        page_url=page_url,
        review_id=review_id,
        title=element_text(card.css(SELECTORS.card_title)),
        rating=rating,
        published_at=published,
        author=element_text(card.css(SELECTORS.card_author)),
        url=link,
    )


def company_from_html(selector: Selector, page_url: str) -> Company:
    return Company(
        name=element_text(selector.css(SELECTORS.company_name)),
        website=external_url(selector.css(SELECTORS.company_website).get()),
        logo=html_link(selector.css(SELECTORS.company_logo).get(), page_url),
    )


# --- merging -------------------------------------------------------------------------------


def merge(preferred: ReviewItem, fallback: ReviewItem) -> ReviewItem:
    """Fields of ``preferred``, with its gaps filled from ``fallback``."""
    filled = {
        name: getattr(fallback, name)
        for name in ("review_id", "title", "rating", "published_at", "author", "lang", "url")
        if getattr(preferred, name) is None
    }
    return replace(preferred, **filled)


def _same_words(item: ReviewItem) -> str:
    return normalize_text(item.text).casefold()


def _same_author(item: ReviewItem) -> str | None:
    return normalize_text(item.author).casefold() if item.author else None


def _is_twin(structured: ReviewItem, card: ReviewItem) -> bool:
    """One review seen twice: the same id, or, when a side lacks the id, the same words by the same author.

    Authors are compared only when both sides name one (the JSON-LD often leaves it out);
    two different ids are two reviews whatever their words.
    """
    if structured.review_id and card.review_id:
        return structured.review_id == card.review_id
    if _same_words(structured) != _same_words(card):
        return False
    authors = (_same_author(structured), _same_author(card))
    return None in authors or authors[0] == authors[1]


def merge_reviews(from_json: list[ReviewItem], from_cards: list[ReviewItem]) -> list[ReviewItem]:
    """One item per review: each JSON-LD review merged with its card, then the cards nobody claimed.

    A twin with the same id wins over one matched by text, and each card merges at most once,
    so two reviews with the same words ("Great!") stay two, paired in page order. Further cards
    repeating an id the JSON-LD has are absorbed, as the page shows that review twice.
    """
    unclaimed = list(from_cards)
    merged: list[ReviewItem] = []
    for item in from_json:
        twin = next((c for c in unclaimed if item.review_id and c.review_id == item.review_id), None)
        if twin is None:
            twin = next((c for c in unclaimed if _is_twin(item, c)), None)
        if twin is None:
            merged.append(item)
            continue
        unclaimed.remove(twin)
        merged.append(merge(item, twin))
    known_ids = {item.review_id for item in merged if item.review_id}
    return merged + [card for card in unclaimed if not card.review_id or card.review_id not in known_ids]


def merge_company(preferred: Company, fallback: Company) -> Company:
    return Company(
        name=preferred.name or fallback.name,
        website=preferred.website or fallback.website,
        logo=preferred.logo or fallback.logo,
    )


def extract_reviews(selector: Selector, page_url: str) -> Extraction:
    """All reviews of a company page, JSON-LD first, HTML cards filling the gaps."""
    out = Extraction()
    nodes = json_ld_nodes(selector, out.problems)
    from_json: list[ReviewItem] = []
    for node in nodes:
        if REVIEW_TYPE in json_ld_types(node):
            item = review_from_json_ld(node, page_url, out.problems)
            if item is None:
                out.skipped += 1
            else:
                from_json.append(item)
    from_cards: list[ReviewItem] = []
    for card in selector.css(SELECTORS.review_card):
        item = review_from_card(card, page_url, out.problems)
        if item is None:
            out.skipped += 1
        else:
            from_cards.append(item)
    out.used_json_ld = bool(from_json)

    merged = merge_reviews(from_json, from_cards)
    company = merge_company(company_from_json_ld(nodes, page_url), company_from_html(selector, page_url))
    origin = f"{urlsplit(page_url).scheme}://{urlsplit(page_url).netloc}"
    for item in merged:
        item.company_name = company.name
        item.company_website = company.website
        item.company_logo = company.logo
        if item.url is None and item.review_id:
            item.url = origin + REVIEW_URL_TEMPLATE.format(review_id=item.review_id)
    out.reviews = merged
    return out


def listing_links(selector: Selector, page_url: str) -> ListingLinks:
    """Category, company and next-page links of a listing page, absolute and de-duplicated."""

    def links(css: str) -> list[str]:
        seen: dict[str, None] = {}
        for href in selector.css(css).getall():
            url = html_link(href, page_url)
            if url:
                seen.setdefault(url, None)
        return list(seen)

    next_links = links(SELECTORS.next_page)
    return ListingLinks(
        categories=links(SELECTORS.category_links),
        companies=links(SELECTORS.company_links),
        next_page=next_links[0] if next_links else None,
    )


def next_page(selector: Selector, page_url: str) -> str | None:
    return listing_links(selector, page_url).next_page
