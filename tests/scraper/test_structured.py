"""Reviews from any page's schema.org JSON-LD (``scraper.structured``) and the ``schemaorg`` spider's walk."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
import scrapy
from scrapy.http import HtmlResponse, Response

from scraper.items import ReviewItem
from scraper.spiders.schemaorg import SchemaOrgSpider
from scraper.structured import next_page_link, structured_reviews
from tests.fixtures.scraper import made_spider

PAGE = "https://shop.example/p/kettle"


def page(*blocks: Any, url: str = PAGE, head: str = "", body: str = "") -> HtmlResponse:
    scripts = "".join(f'<script type="application/ld+json">{json.dumps(block)}</script>' for block in blocks)
    html = f"<html><head>{head}{scripts}</head><body>{body}</body></html>"
    return HtmlResponse(url=url, body=html.encode(), encoding="utf-8")


def reviews(response: HtmlResponse) -> list[ReviewItem]:
    return structured_reviews(response.selector, response.url).reviews


def review(text: str, **fields: Any) -> dict[str, Any]:
    return {"@type": "Review", "reviewBody": text, **fields}


def test_reviews_nested_in_a_product_carry_its_brand_not_the_shops_name() -> None:
    shop = {"@context": "https://schema.org", "@type": "Organization", "name": "Fixture Shop"}
    product = {"@type": "Product", "name": "Aurora Kettle", "brand": {"@type": "Brand", "name": "Brewline"}}
    product["review"] = [review("Boils fast.", author={"name": "Priya"}), review("Leaks.", author="Tom")]

    items = reviews(page(shop, product))

    assert [(i.text, i.company_name, i.author) for i in items] == [
        ("Boils fast.", "Brewline", "Priya"),
        ("Leaks.", "Brewline", "Tom"),
    ]


def test_a_review_names_what_it_reviews_by_reference_or_inline() -> None:
    business = {"@type": "LocalBusiness", "@id": "#cafe", "name": "Corner Café"}
    by_reference = review("Great coffee.", itemReviewed={"@id": "#cafe"})
    inline = review("Slow service.", itemReviewed={"@type": "Product", "name": "Flat white"})
    loose = review("Nice place.")  # about nothing it names: the company the page describes
    graph = {"@context": "https://schema.org", "@graph": [business, by_reference, inline, loose]}

    assert [(i.text, i.company_name) for i in reviews(page(graph))] == [
        ("Great coffee.", "Corner Café"),
        ("Slow service.", "Flat white"),
        ("Nice place.", "Corner Café"),
    ]


def test_review_subtypes_are_read_and_a_fact_check_is_not() -> None:
    items = reviews(
        page(
            {"@type": "UserReview", "reviewBody": "A user's review."},
            {"@type": ["CriticReview", "Thing"], "reviewBody": "A critic's review."},
            {"@type": "ClaimReview", "reviewBody": "This claim is false."},
        )
    )
    assert [i.text for i in items] == ["A user's review.", "A critic's review."]


def test_ratings_on_other_scales_become_stars_and_titles_and_dates_are_kept() -> None:
    items = reviews(
        page(
            review(
                "Good.",
                headline="Solid kettle",
                reviewRating={"ratingValue": "8", "bestRating": "10", "worstRating": "0"},
                datePublished="2026-11-10T18:30:00+01:00",
                inLanguage="en_GB",
            ),
            review("Bad.", reviewRating={"ratingValue": 11}),
        )
    )
    good, bad = items
    assert (good.title, good.rating, good.published_at, good.lang) == (
        "Solid kettle",
        4,
        "2026-11-10T17:30:00+00:00",
        "en-GB",
    )
    assert bad.rating is None


@pytest.mark.parametrize(
    ("fields", "page_url", "review_id"),
    [
        ({"@id": "https://shop.example/reviews/991"}, PAGE, "shop.example/reviews/991"),
        ({"url": "/reviews/991"}, PAGE, "shop.example/reviews/991"),
        ({"@id": "#review-4"}, PAGE + "?page=3", "shop.example/p/kettle#review-4"),  # its document, any page
        ({"url": PAGE + "?page=2"}, PAGE, None),  # a link to the page names the page, not the review
        ({"@id": "_:b0"}, PAGE, None),  # a blank node's label is local to its block
        ({"identifier": 102}, PAGE + "?page=2", "shop.example/p/kettle #102"),
        ({"identifier": {"@type": "PropertyValue", "value": "r-7"}}, PAGE, "shop.example/p/kettle #r-7"),
        ({"url": "javascript:void(0)", "identifier": "7"}, PAGE, "shop.example/p/kettle #7"),
        ({}, PAGE, None),  # keyed by its content
    ],
)
def test_a_review_id_names_one_review_wherever_it_is_shown(
    fields: dict[str, Any], page_url: str, review_id: str | None
) -> None:
    (item,) = reviews(page(review("Text.", **fields), url=page_url))
    assert item.review_id == review_id


def test_an_identifier_is_scoped_by_the_product_it_belongs_to() -> None:
    """Sites number reviews per product: review 1 of the kettle is not review 1 of the toaster."""
    kettle = {"@type": "Product", "name": "Kettle", "sku": "AK-17", "review": [review("Hot.", identifier=1)]}
    toaster = {"@type": "Product", "@id": "/p/toaster#product", "name": "Toaster"}
    toaster["review"] = [review("Crisp.", identifier=1)]

    assert [i.review_id for i in reviews(page(kettle, toaster))] == [
        "sku=AK-17 #1",
        "shop.example/p/toaster#product #1",
    ]


def test_an_id_several_reviews_share_is_dropped_for_their_content_keys() -> None:
    """A shop that gives every review its product page's URL would otherwise publish one review
    under one key, each overwriting the one before."""
    shared = "https://cafe.example/menu"
    response = page(review("Great.", url=shared), review("Awful.", url=shared), review("Fine.", url="/r/3"))

    extraction = structured_reviews(response.selector, response.url)

    assert [(i.text, i.review_id) for i in extraction.reviews] == [
        ("Great.", None),
        ("Awful.", None),
        ("Fine.", "shop.example/r/3"),
    ]
    assert any("shared by several reviews" in problem for problem in extraction.problems)


def test_a_review_without_text_is_skipped_and_a_broken_block_is_a_problem_not_the_page() -> None:
    response = page(
        review("Kept."),
        {"@type": "Review", "author": "Nobody"},
        head='<script type="application/ld+json">{oops</script>',
    )

    extraction = structured_reviews(response.selector, response.url)

    assert [i.text for i in extraction.reviews] == ["Kept."]
    assert extraction.skipped == 1
    assert any("not valid JSON" in problem for problem in extraction.problems)


def test_the_next_page_is_a_link_or_an_anchor_marked_rel_next() -> None:
    assert next_page_link(page(head='<link rel="next" href="?page=2">').selector, PAGE) == PAGE + "?page=2"
    anchor = page(body='<a rel="nofollow next" href="/p/kettle/reviews/2">More</a>')
    assert next_page_link(anchor.selector, PAGE) == "https://shop.example/p/kettle/reviews/2"
    assert next_page_link(page(body='<a href="?page=2">2</a>').selector, PAGE) is None


@pytest.fixture
def spider() -> SchemaOrgSpider:
    return made_spider(SchemaOrgSpider, start_url=PAGE)


def walk(spider: SchemaOrgSpider, response: HtmlResponse) -> tuple[list[str], list[str]]:
    out = list(spider.parse(response))
    return [o.text for o in out if isinstance(o, ReviewItem)], [o.url for o in out if isinstance(o, scrapy.Request)]


def test_the_spider_follows_next_links_while_they_bring_new_reviews(spider: SchemaOrgSpider) -> None:
    nxt = '<link rel="next" href="?page={}">'
    assert walk(spider, page(review("One."), head=nxt.format(2))) == (["One."], [PAGE + "?page=2"])
    second = page(review("One."), review("Two."), url=PAGE + "?page=2", head=nxt.format(3))
    assert walk(spider, second) == (["One.", "Two."], [PAGE + "?page=3"])
    # A site past its last page repeats it: the reviews are yielded (the pipeline drops the
    # second copies), and its next link is not followed.
    third = page(review("One."), review("Two."), url=PAGE + "?page=3", head=nxt.format(4))
    assert walk(spider, third) == (["One.", "Two."], [])
    stats = spider.crawler.stats
    assert stats.get_value("reviewscore/review_pages") == 3


def test_the_spider_counts_a_page_without_reviews(spider: SchemaOrgSpider) -> None:
    assert walk(spider, page({"@type": "Product", "name": "Kettle"})) == ([], [])
    assert spider.crawler.stats.get_value("reviewscore/reviews_found") == 0
    assert spider.crawler.stats.get_value("reviewscore/review_pages") == 1


def test_a_flattened_graph_keeps_the_product_that_lists_its_reviews_by_reference() -> None:
    graph = {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "Organization", "@id": "https://shop.example/#org", "name": "Fixture Shop"},
            {"@type": "Brand", "@id": "https://shop.example/#brewline", "name": "Brewline"},
            {
                "@type": "Product",
                "@id": PAGE + "#product",
                "name": "Aurora Kettle",
                "brand": {"@id": "https://shop.example/#brewline"},
                "review": [{"@id": PAGE + "#r1"}],
            },
            review("Boils fast.", **{"@id": PAGE + "#r1"}),
        ],
    }
    assert [(i.company_name, i.review_id) for i in reviews(page(graph))] == [("Brewline", "shop.example/p/kettle#r1")]


def test_a_review_shown_twice_keeps_its_id() -> None:
    """A theme's Product block and a review app's both list it: one review, not an id shared by several."""
    product = {"@type": "Product", "name": "Kettle", "review": [review("Hot.", author="A", **{"@id": "#r1"})]}
    extraction = structured_reviews(page(product, product).selector, PAGE)
    assert [i.review_id for i in extraction.reviews] == ["shop.example/p/kettle#r1"]
    assert extraction.problems == []


def test_a_query_that_names_the_product_is_part_of_the_document_and_paging_is_not() -> None:
    url = "https://shop.example/index.php?route=product/product&product_id=42"
    product = {"@type": "Product", "@id": "#product", "name": "Kettle"}
    product["review"] = [review("A.", **{"@id": "#review-1"}), review("B.", identifier=7)]
    assert [i.review_id for i in reviews(page(product, url=url + "&page=2"))] == [
        "shop.example/index.php?route=product/product&product_id=42#review-1",
        "shop.example/index.php?route=product/product&product_id=42#product #7",
    ]


def test_a_link_to_the_reviewed_product_is_not_a_review_id() -> None:
    """Shopify shows a product under /collections/…/products/kettle; its reviews link to /products/kettle."""
    product = {"@type": "Product", "name": "Kettle", "url": "https://shop.example/products/kettle"}
    product["review"] = [review("Hot.", url="https://shop.example/products/kettle")]
    response = page(product, url="https://shop.example/collections/kitchen/products/kettle")
    assert [i.review_id for i in reviews(response)] == [None]


def test_an_id_met_before_on_another_review_is_dropped_for_the_later_one(spider: SchemaOrgSpider) -> None:
    """A café whose reviews all link to its menu, one review per page: no page shows the clash."""
    menu = "https://cafe.example/menu"
    first = list(spider.parse(page(review("Great coffee.", url=menu), url=PAGE + "?page=1")))
    second = list(spider.parse(page(review("Slow service.", url=menu), url=PAGE + "?page=2")))
    again = list(spider.parse(page(review("Great coffee.", url=menu), url=PAGE + "?page=3")))
    ids = [item.review_id for item in [*first, *second, *again] if isinstance(item, ReviewItem)]
    assert ids == ["cafe.example/menu", None, "cafe.example/menu"]  # the same review keeps it
    assert spider.crawler.stats.get_value("reviewscore/shared_review_ids") == 1


def test_with_render_js_the_spider_asks_for_rendered_pages() -> None:
    rendering = made_spider(SchemaOrgSpider, {"REVIEWSCORE_RENDER_JS": True}, start_url=PAGE)
    assert rendering._request(PAGE).meta == {"playwright": True}
    assert made_spider(SchemaOrgSpider, start_url=PAGE)._request(PAGE).meta == {}


def test_types_written_as_iris_authors_as_lists_and_text_in_description_are_read() -> None:
    items = reviews(
        page(
            {
                "@type": "https://schema.org/Review",
                "reviewBody": "By IRI.",
                "author": [{"name": "Ann"}, {"name": "Bo"}],
            },
            {"@type": "schema:UserReview", "description": "Text in description."},
        )
    )
    assert [(i.text, i.author) for i in items] == [("By IRI.", "Ann"), ("Text in description.", None)]


SITEMAP_NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def sitemap(url: str, kind: str, *locs: str, gzipped: bool = False) -> Response:
    entry = "sitemap" if kind == "sitemapindex" else "url"
    body = f"<?xml version='1.0'?><{kind} {SITEMAP_NS}>" + "".join(
        f"<{entry}><loc>{loc}</loc></{entry}>" for loc in locs
    )
    data = (body + f"</{kind}>").encode()
    return Response(url=url, body=gzip.compress(data) if gzipped else data)


def test_a_sitemap_lists_the_pages_to_read_narrowed_by_follow() -> None:
    made = made_spider(SchemaOrgSpider, start_url="https://shop.example/sitemap.xml", follow="/p/")
    crawler = made.crawler
    pages = list(
        made.parse_sitemap(
            sitemap(
                "https://shop.example/sitemap.xml", "urlset", "/p/kettle", "/about", "https://shop.example/p/toaster"
            )
        )
    )
    assert [(r.url, r.callback.__name__, r.meta.get("from_sitemap")) for r in pages] == [
        ("https://shop.example/p/kettle", "parse", True),
        ("https://shop.example/p/toaster", "parse", True),
    ]
    index = sitemap("https://shop.example/index.xml", "sitemapindex", "/sitemap-1.xml.gz")
    assert [(r.url, r.callback.__name__) for r in made.parse_sitemap(index)] == [
        ("https://shop.example/sitemap-1.xml.gz", "parse_sitemap")
    ]
    packed = sitemap("https://shop.example/sitemap-1.xml.gz", "urlset", "/p/kettle", gzipped=True)
    assert [r.url for r in made.parse_sitemap(packed)] == ["https://shop.example/p/kettle"]
    assert list(made.parse_sitemap(Response(url="https://shop.example/x.xml", body=b"<html>nope</html>"))) == []
    assert list(made.parse_sitemap(Response(url="https://shop.example/x.xml.gz", body=b"\x1f\x8b\x08garbage"))) == []
    offsite = sitemap("https://shop.example/sitemap.xml", "urlset", "https://cdn.example/p/kettle")
    assert list(made.parse_sitemap(offsite)) == []
    assert crawler.stats.get_value("reviewscore/unreadable_sitemaps") == 2  # type: ignore[union-attr]
    assert crawler.stats.get_value("reviewscore/listing_pages") == 4  # the sitemaps, not what was not one


def test_a_start_url_ending_in_xml_is_read_as_a_sitemap() -> None:
    from scraper.spiders.schemaorg import is_sitemap

    assert [is_sitemap(u) for u in ("https://s.example/sitemap.xml", "https://s.example/sm.XML.gz", PAGE)] == [
        True,
        True,
        False,
    ]


def test_an_absolute_review_link_keeps_its_id_when_the_review_moves_to_the_next_page() -> None:
    """A template that prints the request's URL: without this, newer reviews pushing one to page 2
    gave it a new key and the table a second row."""
    ids = [
        reviews(page(review("Hot.", url=f"{PAGE}?page={n}&sort=new#review-4"), url=f"{PAGE}?page={n}"))[0].review_id
        for n in (1, 2)
    ]
    assert ids == ["shop.example/p/kettle#review-4"] * 2
    (named,) = reviews(page(review("Hot.", url=f"{PAGE}?product_id=42&page=2#review-4")))
    assert named.review_id == "shop.example/p/kettle?product_id=42#review-4"  # the query that names the product stays


def test_a_review_link_to_another_page_keeps_its_whole_query() -> None:
    """WordPress names a post ?p=123: stripped as paging, every review of a blog read as one id."""
    listing = "https://blog.example/reviews/"
    posts = [reviews(page(review(f"Post {n}.", url=f"https://blog.example/?p={n}"), url=listing))[0] for n in (1, 2)]
    assert [item.review_id for item in posts] == ["blog.example/?p=1", "blog.example/?p=2"]


def test_an_identifier_scoped_only_by_a_name_is_scoped_by_the_page_too() -> None:
    """A chain's locations share a name and number their reviews each from 1."""
    place = {"@type": "Restaurant", "name": "Pizza Place"}
    leeds = page({**place, "review": [review("Great crust.", identifier=1)]}, url="https://pizza.example/leeds?page=2")
    york = page({**place, "review": [review("Cold slice.", identifier=1)]}, url="https://pizza.example/york")
    # Any query is left out, paging the list names or not: the same review on its next page keeps its id.
    later = page(
        {**place, "review": [review("Great crust.", identifier=1)]}, url="https://pizza.example/leeds?pageNumber=3"
    )

    assert [reviews(one)[0].review_id for one in (leeds, york, later)] == [
        "pizza.example/leeds name=Pizza Place #1",
        "pizza.example/york name=Pizza Place #1",
        "pizza.example/leeds name=Pizza Place #1",
    ]


def test_a_malformed_review_link_costs_only_that_link() -> None:
    kettle = {"@type": "Product", "name": "Kettle"}
    kettle["review"] = [
        review("Hot.", url="https://[shop.example/r/1"),
        review("Cold.", url="https://shop.example:99999/r/2"),
    ]

    assert [(item.text, item.review_id) for item in reviews(page(kettle))] == [("Hot.", None), ("Cold.", None)]


def test_a_malformed_loc_costs_only_its_entry_of_the_sitemap() -> None:
    made = made_spider(SchemaOrgSpider, start_url="https://shop.example/sitemap.xml")
    listed = sitemap("https://shop.example/sitemap.xml", "urlset", "/p/a", "http://[shop.example/p/b", "/p/c")

    assert [r.url for r in made.parse_sitemap(listed)] == ["https://shop.example/p/a", "https://shop.example/p/c"]
