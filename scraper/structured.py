"""Reviews from any page's schema.org JSON-LD: what the ``schemaorg`` spider reads.

Shops, review sites and local-business pages mark their reviews up for search engines' rich
results: ``Review`` nodes inside the ``Product``, ``Organization`` or ``LocalBusiness`` they
are about (its ``review`` list), or standing alone with an ``itemReviewed``. That markup is
the one layout many sites share, so reading it needs no selectors per site; the HTML around
it is not guessed at. The brand is the reviewed product's ``brand``, else the reviewed thing's
name, else the company the page describes.

Ids decide whether a review re-crawled is the same message (``source:review_id``), so they are
taken only where they name one review: an ``@id`` or ``url`` resolved to an absolute URL, less
its scheme (a link to the page itself or to the product reviewed names that, not a review), else an
``identifier`` scoped by what the review is about (its ``@id``, ``url``, ``sku`` or name on that page; else the
page's path and the query that names it), since a site numbers reviews per product as often as
overall. Ids that several different reviews of one page share are dropped, and those reviews keyed
by their content, rather than let one overwrite the others; one review shown twice keeps its id.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from parsel import Selector

from scraper.extract import (
    Extraction,
    absolute_http_url,
    clean_text,
    company_from_json_ld,
    html_link,
    json_ld_documents,
    json_ld_types,
    json_ld_walk,
    review_from_json_ld,
)
from scraper.items import ReviewItem

# schema.org's Review and the subtypes that are reviews of a thing (not ClaimReview, a fact check).
REVIEW_TYPES = frozenset({"Review", "UserReview", "CriticReview", "EmployerReview"})
MAX_REVIEW_ID_CHARS = 256  # the contract's limit
NEXT_LINKS = 'link[rel~="next"]::attr(href), a[rel~="next"]::attr(href)'
# Query parameters that page or order a list of reviews: the document is the same without them.
# Any other (``?product_id=42``, ``?id=7``) names what the page is about, so it stays.
PAGING_PARAMS = frozenset(
    {"page", "p", "pg", "paged", "pagenum", "page_number", "start", "offset", "sort", "order", "orderby", "limit"}
)


def review_holders(nodes: list[dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """What holds each review in its ``review``/``reviews`` list, by the review node itself (nested)
    or by the ``@id`` a flattened ``@graph`` refers to it with (``"review": [{"@id": "#r1"}]``)."""
    held_by: dict[int | str, dict[str, Any]] = {}
    for candidate in nodes:
        for key in ("review", "reviews"):
            held = candidate.get(key)
            for entry in held if isinstance(held, list) else [held]:
                if isinstance(entry, dict) and json_ld_types(entry) & REVIEW_TYPES:
                    held_by.setdefault(id(entry), candidate)
                ref_id = entry.get("@id") if isinstance(entry, dict) else entry
                if isinstance(ref_id, str):
                    held_by.setdefault(ref_id, candidate)
    return held_by


def subject_of(review: dict[str, Any], holder: dict[str, Any] | None, by_id: dict[str, dict[str, Any]]) -> Any:
    """What a review is about: its ``itemReviewed`` (a node, or a reference to one), else its holder."""
    target = review.get("itemReviewed")
    if isinstance(target, list):
        target = target[0] if target else None
    if isinstance(target, str):
        target = by_id.get(target)
    elif isinstance(target, dict) and set(target) == {"@id"} and isinstance(target["@id"], str):
        target = by_id.get(target["@id"], target)
    if isinstance(target, dict) and set(target) == {"@id"} and holder is not None:
        return holder  # a reference to nothing on the page: what holds the review says more
    return target if isinstance(target, dict) else holder


def brand_of(subject: Any, by_id: dict[str, dict[str, Any]] | None = None) -> str | None:
    """A product's brand, else the reviewed thing's own name (a company, a shop, a product)."""
    if not isinstance(subject, dict):
        return None
    brand = subject.get("brand")
    if isinstance(brand, list):
        brand = brand[0] if brand else None
    if isinstance(brand, dict) and "name" not in brand and isinstance(brand.get("@id"), str) and by_id:
        brand = by_id.get(brand["@id"], brand)  # {"@id": "#brand"}: the Brand node of the @graph
    if isinstance(brand, dict):
        brand = brand.get("name")
    if isinstance(brand, str) and (name := clean_text(brand)):
        return name
    name = subject.get("name")
    return clean_text(name) if isinstance(name, str) else None


def document_of(page_url: str) -> str:
    """The page as its listing or document, whatever page of it this is (``_document``)."""
    return _document(page_url)


def _document(page_url: str) -> str:
    """The page as the document its ``#fragment`` ids live in: without the query parameters that
    only page or sort it (``?page=2``), with those that say which page it is (``?product_id=42``)."""
    parts = urlsplit(page_url)
    kept = [
        pair for pair in parts.query.split("&") if pair and unquote(pair.split("=", 1)[0]).lower() not in PAGING_PARAMS
    ]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(kept), ""))


def _link(value: str, page_url: str) -> str | None:
    """An ``@id``/``url`` as an absolute http(s) URL; a bare ``#fragment`` belongs to the document."""
    return urljoin(_document(page_url), value) if value.startswith("#") else absolute_http_url(value, page_url)


def _without_paging(link: str, page_url: str) -> str:
    """A review's link into the page it was read on, less that page's paging parameters: a
    template that prints the request's URL (``…/kettle?page=2#review-4``) would give the review
    another id, and another row, once newer reviews push it to the next page. A link to another
    page is left whole: there ``?p=123`` may be the post it names (WordPress)."""
    parts, page = urlsplit(link), urlsplit(page_url)
    if (parts.netloc.lower(), parts.path) != (page.netloc.lower(), page.path):
        return link
    document = _document(link)
    if document == urlunsplit(parts._replace(fragment="")):
        return link  # nothing to drop: the link as the page wrote it
    return f"{document}#{parts.fragment}" if parts.fragment else document


def _without_scheme(url: str) -> str:
    """``shop.example/p/kettle#r1``: the same id whether the site was read over http or https."""
    return url.split("://", 1)[1]


def _scope(subject: Any, page_url: str) -> str:
    """What an ``identifier`` is unique within: the reviewed thing, named as stably as it can be."""
    if isinstance(subject, dict):
        for key in ("@id", "url", "sku", "gtin", "productID", "name"):
            value = subject.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
                text = str(value).strip()
                if key in ("@id", "url") and (link := _link(text, page_url)):
                    return _without_scheme(link)
                if key == "name":  # a chain's locations share one; the page's path tells them apart
                    page = urlsplit(page_url)
                    return f"{page.netloc.lower()}{page.path} name={text}"
                if key not in ("@id", "url"):
                    return f"{key}={text}"
    return _without_scheme(_document(page_url))


def _plain(link: str) -> str:
    """A link as compared for "the same page": no scheme, no query-free trailing slash."""
    return _without_scheme(_document(link)).rstrip("/")


def review_id_of(node: dict[str, Any], page_url: str, subject: Any = None) -> str | None:
    """The review's id (see the module's docstring), or None: keyed by its content then."""
    document = _document(page_url)
    pages = {_plain(page_url)}  # the page, and what the review is about, under any spelling
    if isinstance(subject, dict):
        for key in ("@id", "url"):
            named = _link(subject[key].strip(), page_url) if isinstance(subject.get(key), str) else None
            if named and not urlsplit(named).fragment:
                pages.add(_plain(named))
    for key in ("@id", "url"):
        value = node.get(key)
        if not isinstance(value, str) or not value.strip() or value.strip().startswith("_:"):
            continue  # a blank node's label is local to its JSON-LD block
        link = _link(value.strip(), page_url)
        if link is None or (not urlsplit(link).fragment and (_document(link) == document or _plain(link) in pages)):
            continue  # not a link, or the page itself (any of its pages), or the product it is about
        if len(review_id := _without_scheme(_without_paging(link, page_url))) <= MAX_REVIEW_ID_CHARS:
            return review_id
    identifier = node.get("identifier")
    if isinstance(identifier, dict):
        identifier = identifier.get("value")
    if isinstance(identifier, (str, int)) and not isinstance(identifier, bool) and str(identifier).strip():
        scoped = f"{_scope(subject, page_url)} #{str(identifier).strip()}"
        return scoped if len(scoped) <= MAX_REVIEW_ID_CHARS else None
    return None


def structured_reviews(selector: Selector, page_url: str) -> Extraction:
    """Every schema.org review in a page's JSON-LD, with the brand of what it reviews."""
    out = Extraction()
    documents = json_ld_documents(selector, out.problems)
    nodes = [node for document in documents for node in json_ld_walk(document)]
    by_id = {node["@id"]: node for node in nodes if isinstance(node.get("@id"), str) and len(node) > 1}
    page_company = company_from_json_ld(nodes, page_url)
    held_by = review_holders(nodes)
    items: list[ReviewItem] = []
    for node in nodes:
        if not json_ld_types(node) & REVIEW_TYPES:
            continue
        holder = held_by.get(id(node)) or (held_by.get(node["@id"]) if isinstance(node.get("@id"), str) else None)
        subject = subject_of(node, holder, by_id)
        identify = functools.partial(review_id_of, page_url=page_url, subject=subject)
        if not isinstance(node.get("reviewBody"), str) and isinstance(node.get("description"), str):
            node = {**node, "reviewBody": node["description"]}  # some shops put the text there
        item = review_from_json_ld(node, page_url, out.problems, identify=identify)
        if item is None:
            out.skipped += 1
            continue
        item.company_name = brand_of(subject, by_id) or page_company.name
        item.url = item.url or _document(page_url)  # where it can be read, when it has no link of its own
        item.company_website = page_company.website
        item.company_logo = page_company.logo
        items.append(item)
    # The same review twice (a theme's block and a review app's, say) is one review under its id;
    # an id on reviews that differ names none of them.
    once: list[ReviewItem] = []
    shown: set[tuple[str, str, str | None]] = set()
    for item in items:
        if item.review_id is not None:
            if (item.review_id, item.text, item.author) in shown:
                continue
            shown.add((item.review_id, item.text, item.author))
        once.append(item)
    items = once
    shared = {review_id for review_id, n in Counter(i.review_id for i in items if i.review_id).items() if n > 1}
    if shared:
        out.problems.append(
            f"{len(shared)} review id(s) shared by several reviews ({', '.join(sorted(shared)[:3])}): "
            "those reviews are keyed by their content instead"
        )
        for item in items:
            if item.review_id in shared:
                item.review_id = None
    out.used_json_ld = bool(items)
    out.reviews = items
    return out


def next_page_link(selector: Selector, page_url: str) -> str | None:
    """The page's ``rel="next"`` link (``<link>`` in the head or ``<a>`` in the body), absolute."""
    for href in selector.css(NEXT_LINKS).getall():
        if url := html_link(href, page_url):
            return url
    return None
