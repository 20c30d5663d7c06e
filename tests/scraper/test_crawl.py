"""Crawling the fixture site end to end: real HTTP, real Scrapy, the real broker.

Each crawl runs as ``reviewscore crawl trustpilot …`` in a subprocess (the Twisted reactor
cannot restart in one process) against the fixture site on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import scraper
from core.config import KafkaSettings
from core.messages import parse_message
from scraper.seen import SeenState
from tests.fixtures.kafka import consume_all
from tests.fixtures.scraper import FAST_CRAWL_ENV, Crawl, FixtureSite

pytestmark = pytest.mark.integration

SITE_REVIEW_IDS = {
    "ae0001", "ae0002", "ae0003", "ae0004", "ae0005",  # JSON-LD page 1 + HTML-only page 2 (ae0003 on both)
    "vg0001", "vg0002", "vg0003",  # missing optional fields (vg0004 has no text)
    "bs0001",  # broken JSON-LD, out-of-range rating, bad date
    "me0001", "me0002",  # windows-1252 page
    "sw0001", "sw0002", "sw0003",  # JSON-LD only, paginated
}  # fmt: skip
NO_ID_TEXT = "A card with no id and no link"


def messages_on(settings: KafkaSettings, at_least: int) -> dict[str, Any]:
    """Every message on the topic by key; reads on for 2 s after the expected ones, so extras show."""
    records = consume_all(settings, settings.topic, expected=at_least, settle=2)
    out = {}
    for key, value, _headers in records:
        assert key is not None
        assert value is not None
        out[key.decode()] = parse_message(value)
    assert len(out) == len(records), "a review was published twice"
    return out


def feed(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_crawling_the_site_publishes_exactly_its_reviews(
    fixture_site: FixtureSite, kafka_settings: KafkaSettings, crawl: Crawl
) -> None:
    result = crawl("--start-url", fixture_site.url("/"))  # the home page, as the demo starts

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.summary["published"] == 15
    assert result.summary["duplicates"] == 1  # ae0003 shown on two pages
    messages = messages_on(kafka_settings, 15)
    with_ids = {m.review_id for m in messages.values() if m.review_id}
    assert with_ids == SITE_REVIEW_IDS
    assert {m.source for m in messages.values()} == {"scraper:trustpilot"}
    (no_id,) = [m for m in messages.values() if m.review_id is None]
    assert no_id.text == NO_ID_TEXT
    assert no_id.review_key.startswith("scraper:trustpilot:sha256:")

    first = messages["scraper:trustpilot:ae0001"]
    assert first.text == "Fast delivery. The headphones arrived the next day and work perfectly."
    assert (first.brand, first.rating, first.author, first.lang) == ("Acme Electronics", 5, "Jane D.", "en")
    assert first.url == fixture_site.url("/reviews/ae0001")
    assert first.published_at is not None
    assert first.published_at.isoformat() == "2026-10-02T09:15:00+00:00"

    assert (
        messages["scraper:trustpilot:me0001"].text == "Très belle qualité, livraison rapide – je recommande «vivement»."
    )
    assert messages["scraper:trustpilot:me0001"].brand == "Maison Éloïse"
    assert messages["scraper:trustpilot:sw0003"].text == "Best flight ever 😀✈️ — on time, and the food was good!"
    broken = messages["scraper:trustpilot:bs0001"]
    assert (broken.rating, broken.published_at, broken.author) == (None, None, "Kim")
    assert messages["scraper:trustpilot:vg0003"].rating is None


def test_robots_txt_is_obeyed_and_bad_pages_are_logged_and_skipped(
    fixture_site: FixtureSite, crawl: Crawl, tmp_path: Path
) -> None:
    out = tmp_path / "items.jsonl"
    result = crawl("--start-url", fixture_site.url("/categories/"), "--no-publish", "--output", str(out))

    assert result.returncode == 0, result.stderr[-3000:]
    paths = fixture_site.paths()
    assert paths[0] == "/robots.txt"
    assert not [p for p in paths if p.startswith(("/review/hidden-deals.example", "/private/"))]
    assert result.summary["robots_forbidden"] == 1
    agents = {s.user_agent for s in fixture_site.server.served()}
    assert agents == {"reviewscore-bot/0.1 (+https://github.com/reviewscore/reviewscore)"}

    # Each bad page is named in the log, and the crawl carried on past all of them.
    log = result.stderr
    assert "broken-shop.example: JSON-LD block 1 is not valid JSON" in log
    assert "skipped " + fixture_site.url("/review/binary-blob.example") + ": not an HTML page" in log
    assert "404 " + fixture_site.url("/review/gone-away.example") in log
    assert "volt-gadgets.example: review card vg0004 has no text; skipped" in log
    assert "late-deals/; if the listing is rendered by JavaScript, crawl with --render-js" in log
    items = feed(out)
    assert {i["review_id"] for i in items if i["review_id"]} == SITE_REVIEW_IDS
    # What a publishing crawl would send, no more: ae0003, shown on two pages, is there once.
    assert len(items) == 15
    assert result.summary["duplicates"] == 1
    assert '"duplicates": 1' in log  # the crawl statistics line, as a publishing crawl logs it
    acme = next(i for i in items if i["review_id"] == "ae0001")
    assert acme["company_website"] == "https://acme-electronics.example"
    assert acme["company_logo"] == fixture_site.url("/static/logo.png")


def test_a_site_crawled_with_a_source_of_its_own_publishes_under_it(
    fixture_site: FixtureSite, kafka_settings: KafkaSettings, crawl: Crawl
) -> None:
    """Another site's review ids would collide with Trustpilot's under `scraper:trustpilot`."""
    result = crawl("--start-url", fixture_site.url("/review/acme-electronics.example"), "--source", "scraper:mirror")

    assert result.returncode == 0, result.stderr[-3000:]
    messages = messages_on(kafka_settings, result.summary["published"])
    assert {m.source for m in messages.values()} == {"scraper:mirror"}
    assert "scraper:mirror:ae0001" in messages


def test_a_recrawl_publishes_nothing_for_unchanged_pages_and_only_what_changed(
    fixture_site: FixtureSite, kafka_settings: KafkaSettings, crawl: Crawl
) -> None:
    start = fixture_site.url("/categories/")
    assert crawl("--start-url", start).summary["published"] == 15
    fixture_site.server.clear_log()

    again = crawl("--start-url", start)

    assert again.returncode == 0, again.stderr[-3000:]
    assert (again.summary["published"], again.summary["unchanged"]) == (0, 15)
    assert len(messages_on(kafka_settings, 15)) == 15  # zero new messages on the topic
    statuses = {s.status for s in fixture_site.server.served() if "gone-away" not in s.path}
    assert statuses == {304}, "unchanged pages are revalidated, not downloaded again"

    page = fixture_site.root / "review/acme-electronics.example/index.html"
    page.write_text(page.read_text().replace("nobody replied to three emails", "they replied after a month"))
    edited = crawl("--start-url", start)

    assert edited.summary["published"] == 1
    records = consume_all(kafka_settings, kafka_settings.topic, expected=16, settle=2)
    latest = [parse_message(v) for k, v, _ in records if k == b"scraper:trustpilot:ae0002"]
    assert len(records) == 16
    assert "they replied after a month" in latest[-1].text


def test_a_full_crawl_sends_everything_and_the_incremental_one_after_it_sends_nothing(
    fixture_site: FixtureSite, kafka_settings: KafkaSettings, crawl: Crawl
) -> None:
    """A full crawl kept no record before: the next incremental crawl sent all 15 once more."""
    start = fixture_site.url("/categories/")
    full = crawl("--start-url", start, "--full")
    again = crawl("--start-url", start, "--full")
    after = crawl("--start-url", start)

    assert (full.summary["published"], again.summary["published"]) == (15, 15)
    assert (after.summary["published"], after.summary["unchanged"]) == (0, 15)


def test_a_company_url_or_a_file_of_urls_is_a_valid_start(
    fixture_site: FixtureSite, crawl: Crawl, tmp_path: Path
) -> None:
    urls = tmp_path / "companies.txt"
    urls.write_text(f"# two companies\n{fixture_site.url('/review/acme-electronics.example')}\n")
    out = tmp_path / "items.jsonl"

    result = crawl(
        "--url-file", str(urls), "--start-url", fixture_site.url("/review/skyways.example"),
        "--no-publish", "-o", str(out),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(i["review_id"] for i in feed(out)) == [
        "ae0001", "ae0002", "ae0003", "ae0004", "ae0005", "sw0001", "sw0002", "sw0003",
    ]  # fmt: skip  # ae0003 is on two of Acme's pages: the feed holds it once, as publishing would
    assert not [p for p in fixture_site.paths() if p.startswith("/categories")]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_reviews_the_broker_did_not_take_are_kept_and_sent_by_the_next_crawl(
    fixture_site: FixtureSite, kafka_settings: KafkaSettings, crawl: Crawl, tmp_path: Path
) -> None:
    company = fixture_site.url("/review/volt-gadgets.example")
    down = {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{_closed_port()}",
        "SCRAPER_DELIVERY_TIMEOUT_S": "1",
        "SCRAPER_PUBLISH_RETRIES": "1",
    }

    failed = crawl("--start-url", company, env=down)

    assert failed.returncode == 1
    assert (failed.summary["published"], failed.summary["failed"], failed.summary["retried"]) == (0, 3, 3)
    kept = tmp_path / "state" / "undelivered-trustpilot.jsonl"
    assert {parse_message(line).review_id for line in kept.read_bytes().splitlines()} == {"vg0001", "vg0002", "vg0003"}

    for state in (tmp_path / "state").glob("seen-*.sqlite3"):
        with SeenState(state) as seen:
            assert len(seen) == 0, "a review the broker never acknowledged was marked seen"

    recovered = crawl("--start-url", company)  # the broker is back

    assert recovered.summary["published"] == 3
    assert {m.review_id for m in messages_on(kafka_settings, 3).values()} == {"vg0001", "vg0002", "vg0003"}


def test_the_schemaorg_spider_reads_the_pages_a_sitemap_lists_that_follow_matches(
    fixture_site: FixtureSite, crawl: Crawl, tmp_path: Path
) -> None:
    out = tmp_path / "items.jsonl"

    result = crawl(
        "--start-url", fixture_site.url("/shop/sitemap.xml"), "--follow", "/shop/(kettle|corner-cafe)$",
        "--no-publish", "-o", str(out), spider="schemaorg",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted({item["company_name"] for item in feed(out)}) == ["Brewline", "Corner Café"]
    assert result.summary["found"] == 9  # both pages, and the kettle's next pages, as from start URLs
    paths = fixture_site.paths()
    assert "/shop/kettle?page=2" in paths
    assert not [p for p in paths if p.startswith(("/shop/about-us", "/shop/delivery-terms"))]


@pytest.mark.parametrize(
    ("spider", "contracts", "scrapes"),
    [("trustpilot", 5, "parse_company"), ("schemaorg", 3, "parse")],
)
def test_spider_contracts_pass_with_scrapy_check(tmp_path: Path, spider: str, contracts: int, scrapes: str) -> None:
    project = Path(scraper.__file__).parent
    env = {**os.environ, **FAST_CRAWL_ENV, "SCRAPER_STATE_DIR": str(tmp_path / "state")}

    result = subprocess.run(
        [sys.executable, "-m", "scrapy", "check", "-v", spider],
        cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-3000:]
    assert f"Ran {contracts} contracts" in report
    assert f"{scrapes} (@scrapes post-hook) ... ok" in report


def test_a_listing_rendered_by_javascript_is_crawled_with_render_js(
    fixture_site: FixtureSite, crawl: Crawl, tmp_path: Path
) -> None:
    pytest.importorskip("scrapy_playwright", reason="the browser path needs scrapy-playwright (optional)")
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("the browser path needs a chromium binary on PATH (apt-get install chromium)")
    out = tmp_path / "items.jsonl"

    result = crawl(
        "--start-url", fixture_site.url("/categories/late-deals/"), "--render-js", "--no-publish", "-o", str(out)
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert [i["review_id"] for i in feed(out)] == ["nt0001"]


def test_scrapy_crawl_from_the_project_folder_publishes_too(
    fixture_site: FixtureSite, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    project = Path(scraper.__file__).parent
    env = {**os.environ, **FAST_CRAWL_ENV, "SCRAPER_STATE_DIR": str(tmp_path / "state")}
    start = "start_url=" + fixture_site.url("/review/volt-gadgets.example")

    result = subprocess.run(
        [sys.executable, "-m", "scrapy", "crawl", "trustpilot", "-a", start, "-s", "LOG_LEVEL=INFO"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    assert "'reviewscore/published': 3" in result.stderr
    assert {m.review_id for m in messages_on(kafka_settings, 3).values()} == {"vg0001", "vg0002", "vg0003"}


@pytest.mark.parametrize(
    ("start", "cause"),
    [
        ("unreachable", "download errors"),
        ("/review/hidden-deals.example", "1 forbidden by robots.txt"),
        ("/review/gone-away.example", "1 HTTP errors"),
    ],
)
def test_a_crawl_that_reads_no_page_fails_and_says_why(
    fixture_site: FixtureSite, crawl: Crawl, start: str, cause: str
) -> None:
    unreachable = f"http://127.0.0.1:{_closed_port()}/review/acme.example"
    url = unreachable if start == "unreachable" else fixture_site.url(start)

    result = crawl("--start-url", url, "--no-publish")

    assert result.returncode == 1, result.stderr[-3000:]
    assert (result.summary["listing_pages"], result.summary["review_pages"]) == (0, 0)
    assert "error: no page was crawled: " in result.stderr
    assert cause in result.stderr.split("error: no page was crawled: ")[1]


def test_a_review_with_a_field_the_contract_refuses_is_published_without_that_field(
    fixture_site: FixtureSite, kafka_settings: KafkaSettings, crawl: Crawl
) -> None:
    page = fixture_site.root / "review/volt-gadgets.example/index.html"
    page.write_text(page.read_text().replace('data-review-id="vg0001"', f'data-review-id="{"v" * 300}"'))

    result = crawl("--start-url", fixture_site.url("/review/volt-gadgets.example"))

    assert result.returncode == 0, result.stderr[-3000:]
    assert (result.summary["published"], result.summary["invalid"], result.summary["invalid_fields"]) == (3, 0, 1)
    assert "review_id left out: String should have at most 256 characters" in result.stderr
    messages = messages_on(kafka_settings, 3)
    (anonymous,) = [m for m in messages.values() if m.review_id is None]
    assert anonymous.text == "An anonymous review: the power bank holds its charge well."
    assert anonymous.url == fixture_site.url("/reviews/vg0001")


def test_any_site_with_schema_org_reviews_is_crawled_by_the_schemaorg_spider(
    fixture_site: FixtureSite, kafka_settings: KafkaSettings, crawl: Crawl
) -> None:
    """A shop page (a product with a brand, paginated with rel=next, one page past the last) and a
    café page (reviews of a local business that all link to its menu): no selectors written."""
    result = crawl(
        "--start-url", fixture_site.url("/shop/kettle"), "--start-url", fixture_site.url("/shop/corner-cafe"),
        spider="schemaorg",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.summary["published"] == 6
    assert result.summary["duplicates"] == 3  # k1 on pages 2 and 3, 104 on page 3
    host = fixture_site.base_url.removeprefix("http://")
    messages = messages_on(kafka_settings, 6)
    assert {m.source for m in messages.values()} == {"scraper:schemaorg"}
    assert sorted(m.review_id for m in messages.values() if m.brand == "Brewline") == [
        f"{host}/shop/kettle#product #102",
        f"{host}/shop/kettle#product #104",
        f"{host}/shop/kettle#review-k1",
        f"{host}/shop/kettle/reviews/k3",
    ]
    first = messages[f"scraper:schemaorg:{host}/shop/kettle#review-k1"]
    assert (first.rating, first.author, first.lang) == (4, "Priya", "en")  # 8 out of 10
    assert first.published_at is not None
    assert first.published_at.isoformat() == "2026-11-02T00:00:00+00:00"
    leak = messages[f"scraper:schemaorg:{host}/shop/kettle#product #102"]
    assert leak.text.startswith("Leaks after a month. The lid seal")  # the headline joins the text
    cafe = sorted((m.text, m.rating) for m in messages.values() if m.brand == "Corner Café")
    assert cafe == [("Best flat white in town, friendly staff.", 5), ("Waited 25 minutes for a sandwich.", 2)]
    assert all(
        m.review_key.startswith("scraper:schemaorg:sha256:") for m in messages.values() if m.brand == "Corner Café"
    )
    assert "/shop/kettle?page=4" not in fixture_site.paths()  # page 3 brought nothing new
