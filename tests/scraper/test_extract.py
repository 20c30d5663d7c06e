"""Reading reviews and links out of pages: structured data first, HTML as the fallback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from parsel import Selector
from w3lib.encoding import html_to_unicode

from scraper.extract import (
    clean_text,
    extract_reviews,
    listing_links,
    normalize_date,
    normalize_lang,
    normalize_rating,
    review_id_from,
)
from scraper.fixture_site import SITE_ROOT
from scraper.publishing import to_message

BASE = "http://reviews.test"


def page(path: str) -> Selector:
    """A fixture page decoded as a browser would: BOM, then <meta charset>, then UTF-8."""
    _encoding, text = html_to_unicode(None, (SITE_ROOT / path).read_bytes())
    return Selector(text=text)


def html(body: str) -> Selector:
    return Selector(text=f"<html><body>{body}</body></html>")


def json_ld_review(**fields: Any) -> str:
    """A page's JSON-LD block holding one Review node."""
    node = {"@context": "https://schema.org", "@type": "Review", **fields}
    return f'<script type="application/ld+json">{json.dumps(node)}</script>'


def card(text: str, *, review_id: str | None = None, author: str | None = None, link: str | None = None) -> str:
    """An HTML review card as the site renders it; attributes left out when not given."""
    id_attr = f' data-review-id="{review_id}"' if review_id else ""
    name = f"<span data-consumer-name>{author}</span>" if author else ""
    anchor = f'<a href="{link}">read</a>' if link else ""
    return f"<article data-review-card{id_attr}>{name}<p data-review-text>{text}</p>{anchor}</article>"


def test_json_ld_reviews_are_read_with_the_cards_filling_their_gaps() -> None:
    result = extract_reviews(page("review/acme-electronics.example/index.html"), f"{BASE}/review/acme")

    assert result.used_json_ld
    assert result.problems == []
    first = result.reviews[0]
    assert (first.review_id, first.rating, first.author, first.title) == ("ae0001", 5, "Jane D.", "Fast delivery")
    assert first.published_at == "2026-10-02T09:15:00+00:00"
    assert first.lang == "en"
    # The JSON-LD has no review URL; the card's link supplies it.
    assert first.url == f"{BASE}/reviews/ae0001"
    assert (first.company_name, first.company_website, first.company_logo) == (
        "Acme Electronics",
        "https://acme-electronics.example",
        f"{BASE}/static/logo.png",
    )
    assert [r.review_id for r in result.reviews] == ["ae0001", "ae0002", "ae0003"]


def test_a_page_without_structured_data_is_read_from_its_cards() -> None:
    result = extract_reviews(page("review/acme-electronics.example/page-2.html"), f"{BASE}/review/acme?page=2")

    assert not result.used_json_ld
    by_id = {r.review_id: r for r in result.reviews}
    assert set(by_id) == {"ae0003", "ae0004", "ae0005"}
    assert by_id["ae0004"].text == "Picture quality is great. The remote feels cheap & flimsy, though."
    assert by_id["ae0004"].author == "Marco Rossi"  # whitespace collapsed


def test_reviews_that_exist_only_as_structured_data_are_found() -> None:
    result = extract_reviews(page("review/skyways.example/index.html"), f"{BASE}/review/skyways.example")

    assert [(r.review_id, r.rating, r.author) for r in result.reviews] == [
        ("sw0001", 1, "Olu A."),
        ("sw0002", 4, "Mei"),
    ]
    assert result.reviews[0].text == "They lost my bag on a direct flight & took ten days to find it."
    assert result.reviews[0].url == f"{BASE}/reviews/sw0001"
    assert result.reviews[1].published_at == "2026-10-08T00:00:00+00:00"
    assert result.reviews[0].company_website == "https://skyways.example/"


def test_missing_optional_fields_stay_empty_and_a_card_without_text_is_skipped() -> None:
    result = extract_reviews(page("review/volt-gadgets.example/index.html"), f"{BASE}/review/volt")

    by_id = {r.review_id: r for r in result.reviews}
    assert set(by_id) == {"vg0001", "vg0002", "vg0003"}
    assert by_id["vg0001"].author is None
    assert by_id["vg0002"].published_at is None
    assert by_id["vg0003"].rating is None
    assert by_id["vg0001"].company_logo is None
    assert result.skipped == 1
    assert result.problems == ["review card vg0004 has no text; skipped"]


def test_a_windows_1252_page_decodes_to_the_right_characters() -> None:
    result = extract_reviews(page("review/maison-eloise.example/index.html"), f"{BASE}/review/maison")

    texts = {r.review_id: r.text for r in result.reviews}
    assert texts["me0001"] == "Très belle qualité, livraison rapide – je recommande «vivement»."
    assert texts["me0002"] == "Größe fällt klein aus, Rücksendung dauerte 3 Wochen … schade."
    assert result.reviews[0].company_name == "Maison Éloïse"
    assert result.reviews[1].author == "Jürgen Müller"
    assert result.reviews[1].published_at == "2026-07-02T09:00:00+00:00"  # +02:00 converted to UTC


def test_broken_structured_data_and_bad_values_are_reported_without_losing_the_review() -> None:
    result = extract_reviews(page("review/broken-shop.example/index.html"), f"{BASE}/review/broken")

    assert [r.review_id for r in result.reviews] == ["bs0001", None]
    kept = result.reviews[0]
    assert kept.text == "The structured data on this page is broken, but this review still counts."
    assert (kept.rating, kept.published_at, kept.company_website) == (None, None, None)
    assert any(p.startswith("JSON-LD block 1 is not valid JSON") for p in result.problems)
    assert "review bs0001: rating '7' is not 1-5 stars" in result.problems
    assert "review bs0001: date 'yesterday' is not ISO-8601" in result.problems


def test_a_json_ld_review_without_an_id_and_its_card_with_one_are_one_review() -> None:
    body = "Quick refund,   no questions asked."
    selector = html(
        json_ld_review(reviewBody=body, reviewRating={"ratingValue": 5}, inLanguage="en")
        + card("Quick refund, no questions asked.", review_id="abc123", author="Ana")
    )

    result = extract_reviews(selector, f"{BASE}/review/acme")

    (review,) = result.reviews
    assert (review.review_id, review.rating, review.author, review.lang) == ("abc123", 5, "Ana", "en")
    assert review.url == f"{BASE}/reviews/abc123"
    assert to_message(review, "scraper:trustpilot").review_key == "scraper:trustpilot:abc123"


def test_a_json_ld_review_with_an_id_and_its_card_without_one_are_one_review() -> None:
    selector = html(
        json_ld_review(reviewBody="Quick refund.", url="/reviews/abc123", author={"name": "Ana"})
        + card("Quick refund.", author="Ana")
    )

    result = extract_reviews(selector, f"{BASE}/review/acme")

    assert [(r.review_id, r.author, r.url) for r in result.reviews] == [("abc123", "Ana", f"{BASE}/reviews/abc123")]


def test_the_same_words_by_different_authors_or_under_different_ids_stay_different_reviews() -> None:
    selector = html(
        json_ld_review(reviewBody="Great!", author={"name": "Ana"})
        + json_ld_review(reviewBody="Fine.", url="/reviews/r1")
        + card("Great!", review_id="r2", author="Bo")
        + card("Fine.", review_id="r3")
    )

    result = extract_reviews(selector, f"{BASE}/review/acme")

    assert [(r.text, r.review_id, r.author) for r in result.reviews] == [
        ("Great!", None, "Ana"),
        ("Fine.", "r1", None),
        ("Great!", "r2", "Bo"),
        ("Fine.", "r3", None),
    ]


def test_two_reviews_with_the_same_words_are_each_paired_with_one_card() -> None:
    selector = html(
        json_ld_review(reviewBody="Great!", reviewRating={"ratingValue": 5})
        + json_ld_review(reviewBody="Great!", reviewRating={"ratingValue": 4})
        + card("Great!", review_id="g1")
        + card("Great!", review_id="g2")
    )

    result = extract_reviews(selector, f"{BASE}/review/acme")

    assert [(r.review_id, r.rating) for r in result.reviews] == [("g1", 5), ("g2", 4)]


def test_a_language_tag_written_as_a_locale_is_read_as_bcp_47_and_a_bad_one_costs_only_itself() -> None:
    selector = html(
        json_ld_review(reviewBody="Colour was off.", url="/reviews/l1", inLanguage="EN_gb")
        + json_ld_review(reviewBody="Nice.", url="/reviews/l2", inLanguage="English (UK)")
    )

    result = extract_reviews(selector, f"{BASE}/review/acme")

    assert [(r.review_id, r.lang) for r in result.reviews] == [("l1", "en-GB"), ("l2", None)]
    assert "review l2: language 'English (UK)' is not a BCP-47 tag" in result.problems
    assert to_message(result.reviews[0], "scraper:trustpilot").lang == "en-GB"


def test_an_overlong_json_ld_url_gives_way_to_the_cards_link() -> None:
    long_url = "/reviews/u1?" + "x" * 2100
    selector = html(json_ld_review(reviewBody="Fine.", url=long_url) + card("Fine.", link="/reviews/u1"))

    result = extract_reviews(selector, f"{BASE}/review/acme")

    (review,) = result.reviews
    assert (review.review_id, review.url) == ("u1", f"{BASE}/reviews/u1")
    assert any("is too long" in p for p in result.problems)


@pytest.mark.parametrize(
    ("raw", "tag"),
    [
        ("en", "en"),
        ("EN", "en"),
        ("en_US", "en-US"),
        ("en-gb", "en-GB"),
        ("ZH_hant_tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        (" fr ", "fr"),
        ("English", None),
        ("e", None),
        ("", None),
        (None, None),
        (["en"], None),
    ],
)
def test_languages_become_bcp_47_tags_in_their_usual_casing(raw: object, tag: str | None) -> None:
    assert normalize_lang(raw) == tag


def test_listing_links_are_absolute_and_unique() -> None:
    links = listing_links(page("categories/electronics/index.html"), f"{BASE}/categories/electronics/")

    assert links.companies == [f"{BASE}/review/acme-electronics.example", f"{BASE}/review/volt-gadgets.example"]
    assert links.next_page == f"{BASE}/categories/electronics/?page=2"
    assert links.categories == []


def test_a_listing_rendered_by_javascript_shows_no_links_without_a_browser() -> None:
    links = listing_links(page("categories/late-deals/index.html"), f"{BASE}/categories/late-deals/")

    assert (links.categories, links.companies, links.next_page) == ([], [], None)


def test_the_last_listing_page_has_no_next_page() -> None:
    links = listing_links(html('<a rel="prev" href="/c/">prev</a><a data-category-link href="/c/x/">x</a>'), BASE)

    assert links.next_page is None
    assert links.categories == [f"{BASE}/c/x/"]


@pytest.mark.parametrize(
    ("raw", "stars"),
    [(5, 5), ("4", 4), ("1.0", 1), ("Rated 3 out of 5 stars", 3), (7, None), ("2.5", None), ("", None), (True, None)],
)
def test_ratings_are_whole_stars_from_one_to_five(raw: object, stars: int | None) -> None:
    assert normalize_rating(raw) == stars


@pytest.mark.parametrize(
    ("raw", "best", "worst", "stars"),
    [
        (10, 10, None, 5),
        (1, 10, None, 1),
        (4, 10, None, 2),  # stored as four stars before
        ("7.5", "10", "1", 4),
        (0, 5, 0, 1),
        (3, 5, 0, 3),
        (80, 100, 0, 4),
        ("Rated 8 out of 10", None, None, 4),
        ("9/10", None, None, 5),
        ("Posted 12/05/2024: 4 out of 5", None, None, 4),  # the date is no rating
        (11, 10, None, None),
        (5, 5, 5, None),
        (3, "ten", None, None),
    ],
)
def test_ratings_on_another_scale_are_mapped_onto_five_stars(
    raw: object, best: object, worst: object, stars: int | None
) -> None:
    assert normalize_rating(raw, best, worst) == stars


def test_a_json_ld_rating_out_of_ten_is_stored_as_stars_and_one_off_its_scale_is_a_problem() -> None:
    page_html = json_ld_review(
        url="/reviews/t1", reviewBody="Solid", reviewRating={"ratingValue": 4, "bestRating": 10}
    ) + json_ld_review(
        url="/reviews/t2", reviewBody="Odd", reviewRating={"ratingValue": 12, "bestRating": 10, "worstRating": 0}
    )

    result = extract_reviews(html(page_html), f"{BASE}/review/x")

    assert [(r.review_id, r.rating) for r in result.reviews] == [("t1", 2), ("t2", None)]
    assert "review t2: rating 12 on a scale of 0 to 10 is not 1-5 stars" in result.problems


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("2026-10-02T09:15:00.000Z", "2026-10-02T09:15:00+00:00"),
        ("2026-07-14", "2026-07-14T00:00:00+00:00"),
        ("2026-07-02T11:00:00+02:00", "2026-07-02T09:00:00+00:00"),
        ("yesterday", None),
        (None, None),
    ],
)
def test_dates_become_utc_iso_8601(raw: object, iso: str | None) -> None:
    assert normalize_date(raw) == iso


@pytest.mark.parametrize(
    ("value", "review_id"),
    [
        ("/reviews/ae0001", "ae0001"),
        ("http://h/reviews/me0001?utm=x", "me0001"),
        ("/#/schema/Review/skyways.example/sw0001", "sw0001"),
        ("/review/acme-electronics.example", None),
        (None, None),
    ],
)
def test_review_ids_come_from_review_urls_and_json_ld_ids(value: str | None, review_id: str | None) -> None:
    assert review_id_from(value) == review_id


def test_text_loses_nul_characters_and_extra_whitespace_but_keeps_its_words() -> None:
    cleaned = clean_text(["Great\x00 shoes,", "  fast\n delivery &amp; nice box"])
    assert cleaned == "Great shoes, fast delivery & nice box"
    assert clean_text("\x00 \x00") is None


def test_every_fixture_page_is_readable(tmp_path: Path) -> None:
    """No fixture page makes the extractor raise, whatever is wrong with it."""
    for path in SITE_ROOT.rglob("*.html"):
        extract_reviews(page(str(path.relative_to(SITE_ROOT))), f"{BASE}/x")
        listing_links(page(str(path.relative_to(SITE_ROOT))), f"{BASE}/x")


def test_values_past_what_python_can_hold_are_dropped_as_problems_not_raised() -> None:
    """Before, each of these raised out of the page's extraction: its reviews and every later
    page of the company were lost."""
    late = card("Late but fine", review_id="r1") + "<time datetime='9999-12-31T23:00:00-05:00'>x</time>"
    assert normalize_date("9999-12-31T23:00:00-05:00") is None  # past year 9999 once in UTC
    assert normalize_rating(10**400) is None
    huge_number = '<script type="application/ld+json">{"@type": "Review", "reviewRating": ' + "9" * 5000 + "}</script>"
    deep = '<script type="application/ld+json">' + "[" * 100_000 + "]" * 100_000 + "</script>"
    result = extract_reviews(html(late + huge_number + deep), f"{BASE}/review/x")
    assert [review.text for review in result.reviews] == ["Late but fine"]
    assert len([p for p in result.problems if "unreadable" in p]) == 2


def test_text_with_inline_markup_reads_as_the_page_shows_it_and_matches_its_structured_twin() -> None:
    """Joined text nodes read "Great product !": another text than the JSON-LD, so the same review
    was published twice, once under its id and once under a content key."""
    page_html = json_ld_review(url="/reviews/r42", reviewBody="Great product! Arrived quickly.") + card(
        "Great <b>product</b>! Arrived quickly."
    )
    result = extract_reviews(html(page_html), f"{BASE}/review/x")
    assert [(review.review_id, review.text) for review in result.reviews] == [
        ("r42", "Great product! Arrived quickly.")
    ]

    spans = extract_reviews(html(card("I don<span>'</span>t mind.<br>Second line")), f"{BASE}/r")
    assert [review.text for review in spans.reviews] == ["I don't mind. Second line"]


def test_html_in_structured_text_reads_as_the_page_shows_it_and_matches_its_card() -> None:
    """A reviewBody with ``<br/>`` was kept as written: another text than the card's, so the review
    was published twice (a content key with the markup in it, and the card's id)."""
    page_html = json_ld_review(reviewBody="Great kettle.<br/>Would buy <b>again</b> &amp; again") + card(
        "Great kettle.<br>Would buy <b>again</b> &amp; again", review_id="r1"
    )
    result = extract_reviews(html(page_html), f"{BASE}/review/x")
    assert [(review.review_id, review.text) for review in result.reviews] == [
        ("r1", "Great kettle. Would buy again & again")
    ]

    escaped = extract_reviews(
        html(json_ld_review(reviewBody="&lt;p&gt;Terrible&lt;/p&gt;&lt;p&gt;Broke in a week&lt;/p&gt;")), BASE
    )
    assert [review.text for review in escaped.reviews] == ["Terrible Broke in a week"]
    for words in ("Love it <3 and > the old one", "Size <s or m> fits", "Great product <a must have> for sure"):
        kept = extract_reviews(html(json_ld_review(reviewBody=words)), BASE)
        assert [review.text for review in kept.reviews] == [words]  # a reviewer's words, not tags


def test_the_brand_is_the_reviewed_company_not_the_review_sites_own_organization() -> None:
    site = {"@type": "Organization", "@id": "https://reviews.test/#org", "name": "ReviewSite"}
    company = {"@type": "LocalBusiness", "@id": "https://reviews.test/#acme", "name": "Acme Electronics"}
    review = {"@type": "Review", "reviewBody": "Solid.", "itemReviewed": {"@id": "https://reviews.test/#acme"}}
    graph = {"@context": "https://schema.org", "@graph": [site, company, review]}
    block = f'<script type="application/ld+json">{json.dumps(graph)}</script>'
    result = extract_reviews(html(block), f"{BASE}/review/acme")
    assert [review.company_name for review in result.reviews] == ["Acme Electronics"]

    # Without a reference, a specific type (LocalBusiness) is taken over the bare Organization.
    unlinked = {"@context": "https://schema.org", "@graph": [site, company, {"@type": "Review", "reviewBody": "Ok."}]}
    block = f'<script type="application/ld+json">{json.dumps(unlinked)}</script>'
    assert [r.company_name for r in extract_reviews(html(block), f"{BASE}/x").reviews] == ["Acme Electronics"]


def test_a_company_holding_its_reviews_or_named_by_a_list_is_the_reviewed_one() -> None:
    from scraper.extract import company_from_json_ld

    holder = {"@type": "Organization", "name": "Acme", "review": [{"@type": "Review", "reviewBody": "Fine."}]}
    site = {"@type": "Corporation", "name": "ReviewSite"}
    assert company_from_json_ld([holder, site], BASE).name == "Acme"
    listed = {"@type": "Review", "itemReviewed": [{"@id": "#acme"}]}
    acme = {"@type": "Organization", "@id": "#acme", "name": "Acme"}
    assert company_from_json_ld([site, acme, listed], BASE).name == "Acme"
    by_string = {"@type": "Review", "itemReviewed": "#acme"}
    assert company_from_json_ld([site, acme, by_string], BASE).name == "Acme"


def test_relative_links_in_html_resolve_as_a_browser_resolves_them() -> None:
    """A card linking ``../reviews/r7`` lost its review id and link before (only absolute links
    and paths from the root counted), so it was keyed by its text instead."""
    page_url = f"{BASE}/review/acme.example"
    cards = card("Good", link="../reviews/r7") + card("Bad", link="reviews/r8") + card("Meh", link="/reviews/r 9")
    logo = '<img data-business-logo src="img/logo.png">'

    result = extract_reviews(html(cards + logo), page_url)

    assert [(r.review_id, r.url) for r in result.reviews] == [
        ("r7", f"{BASE}/reviews/r7"),
        ("r8", f"{BASE}/review/reviews/r8"),
        (None, f"{BASE}/reviews/r%209"),
    ]
    assert result.reviews[0].company_logo == f"{BASE}/review/img/logo.png"


def test_listing_links_that_are_not_http_are_not_followed() -> None:
    links = listing_links(
        html('<a rel="next" href="javascript:void(0)">next</a><a data-category-link href="mailto:x@y">x</a>'), BASE
    )

    assert (links.next_page, links.categories) == (None, [])


def test_a_card_with_a_malformed_link_costs_only_its_link() -> None:
    """A port past 65535 or an unclosed IPv6 bracket made the whole page unreadable."""
    result = extract_reviews(
        html(
            card("Fine shop", review_id="r1")
            + card("Typo in the port", link="https://reviews.test:80443/reviews/r2")
            + card("Broken bracket", link="http://[reviews.test/reviews/r3")
        ),
        f"{BASE}/review/acme.example",
    )

    assert [(r.review_id, r.text, r.url) for r in result.reviews] == [
        ("r1", "Fine shop", "http://reviews.test/reviews/r1"),  # the site links a card from its id
        (None, "Typo in the port", None),
        (None, "Broken bracket", None),
    ]


def test_a_json_ld_text_cut_in_the_middle_of_an_emoji_keeps_the_review() -> None:
    """JSON allows a lone surrogate ("\\ud83d"); no UTF-8 can carry it, and the contract refused the
    review. It reads as U+FFFD, as the card's copy of the same text does in HTML."""
    raw = '{"@type": "Review", "reviewBody": "Love it \\ud83d", "author": "Ann \\udc00", "url": "/reviews/r9"}'
    result = extract_reviews(
        html(f'<script type="application/ld+json">{raw}</script>' + card("Love it &#xd83d;", review_id="r9")),
        f"{BASE}/review/acme.example",
    )

    (review,) = result.reviews
    assert (review.review_id, review.text, review.author) == ("r9", "Love it \ufffd", "Ann \ufffd")
    assert to_message(review, "scraper:test").text == "Love it \ufffd"  # the contract takes it
