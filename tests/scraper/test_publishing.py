"""From item to message, the seen-state, and the settings a crawl runs with (no broker needed)."""

from __future__ import annotations

import hashlib
import logging
import socket
from pathlib import Path

import pytest
from confluent_kafka import Producer
from pydantic import ValidationError
from scrapy.utils.test import get_crawler

from core.config import KafkaSettings, ScraperSettings, clear_settings_cache
from core.messages import MAX_TEXT_CHARS, parse_message
from scraper import pipelines
from scraper.addon import scrapy_settings
from scraper.items import ReviewItem
from scraper.pipelines import KafkaPublishPipeline, summary
from scraper.publishing import digest, message_text, to_message
from scraper.seen import SeenState, SeenStateBusyError, state_file
from scraper.spiders.trustpilot import TrustpilotSpider, is_company_page
from scraper.start_urls import read_url_file, split_start_urls


def item(**changes: object) -> ReviewItem:
    values: dict[str, object] = {
        "text": "The parcel came two weeks late.",
        "page_url": "http://reviews.test/review/acme?page=2",
        "review_id": "ae0005",
        "title": "Late",
        "rating": 2,
        "published_at": "2026-09-01T06:05:00+00:00",
        "author": "Ana",
        "url": "http://reviews.test/reviews/ae0005",
        "company_name": "Acme Electronics",
        "company_website": "https://acme-electronics.example",
    }
    values.update(changes)
    return ReviewItem(**values)  # type: ignore[arg-type]


def test_a_review_becomes_a_contract_message_keyed_by_the_sites_id() -> None:
    message = to_message(item(), "scraper:trustpilot")

    assert message.source == "scraper:trustpilot"
    assert message.review_key == "scraper:trustpilot:ae0005"
    assert (message.brand, message.rating, message.author) == ("Acme Electronics", 2, "Ana")
    assert message.text == "Late. The parcel came two weeks late."
    key, value = message.to_kafka()
    assert key == b"scraper:trustpilot:ae0005"
    assert parse_message(value) == message  # what the worker will read back


def test_the_title_is_not_repeated_when_the_body_starts_with_it() -> None:
    assert message_text(item(title="The parcel", text="The parcel came late.")) == "The parcel came late."
    assert message_text(item(title="Never again!", text="Broken on arrival.")) == "Never again! Broken on arrival."
    assert message_text(item(title=None)) == "The parcel came two weeks late."
    # A title that is only the start of the body's first word is a title of its own.
    assert message_text(item(title="Great", text="Greatest kettle ever.")) == "Great. Greatest kettle ever."
    assert message_text(item(title="Great", text="Great, it works.")) == "Great, it works."
    assert message_text(item(title="Great.", text="Great.Really good")) == "Great.Really good"


def test_a_review_longer_than_the_contract_allows_is_cut_at_a_word_not_lost() -> None:
    """Refused by the contract, the whole review was dropped as invalid."""
    long = " ".join(["word"] * 5000)  # 24,999 characters

    message = to_message(item(title="Too long to read", text=long), "scraper:trustpilot")

    assert len(message.text) <= MAX_TEXT_CHARS
    assert message.text.endswith("word…")
    assert message.text.startswith("word word")  # the title gave way first
    fits = "x" * (MAX_TEXT_CHARS - 10)
    assert message_text(item(title="Title here", text=fits)) == fits  # the title would push it over


def test_a_review_without_a_site_id_is_keyed_by_its_content_brand_and_author() -> None:
    first = to_message(item(review_id=None), "scraper:trustpilot")
    rescraped = to_message(item(review_id=None, text="  The parcel came  two weeks late. "), "scraper:trustpilot")
    same_words_by_someone_else = to_message(item(review_id=None, author="someone else"), "scraper:trustpilot")

    assert first.review_key.startswith("scraper:trustpilot:sha256:")
    assert first.review_key == rescraped.review_key
    assert first.review_key != same_words_by_someone_else.review_key


def test_overlong_author_and_brand_are_cut_to_the_contract_limit() -> None:
    message = to_message(item(author="x" * 300, company_name="y" * 300), "scraper:trustpilot")

    assert (len(message.author or ""), len(message.brand or "")) == (256, 256)


def test_a_review_the_contract_cannot_carry_is_rejected() -> None:
    with pytest.raises(ValidationError):
        to_message(item(text="a NUL\x00 PostgreSQL cannot store"), "scraper:trustpilot")


def test_optional_fields_the_contract_refuses_are_left_out_and_the_review_kept() -> None:
    problems: list[str] = []
    odd = item(review_id="x" * 300, url="http://reviews.test/reviews/ae0005?" + "x" * 2100, lang="EN")

    message = to_message(odd, "scraper:trustpilot", problems)

    assert message.text == "Late. The parcel came two weeks late."
    assert (message.review_id, message.url, message.lang) == (None, None, None)
    assert (message.brand, message.rating, message.author) == ("Acme Electronics", 2, "Ana")
    assert message.review_key.startswith("scraper:trustpilot:sha256:")
    assert [p.split(" left out: ")[0] for p in problems] == ["review_id", "url", "lang"]


def test_a_review_whose_text_the_contract_refuses_is_rejected_whatever_else_is_wrong() -> None:
    problems: list[str] = []

    with pytest.raises(ValidationError, match="text"):
        to_message(item(text="a NUL\x00 PostgreSQL cannot store", lang="EN"), "scraper:trustpilot", problems)
    assert problems == []


def test_seen_state_remembers_delivered_messages_across_crawls(tmp_path: Path) -> None:
    path = tmp_path / "seen.sqlite3"
    value = to_message(item(), "scraper:trustpilot").to_kafka()[1]
    with SeenState(path) as seen:
        assert not seen.unchanged("scraper:trustpilot:ae0005", digest(value))
        seen.mark("scraper:trustpilot:ae0005", digest(value))

    with SeenState(path) as seen:  # the next crawl
        assert seen.unchanged("scraper:trustpilot:ae0005", digest(value))
        edited = to_message(item(text="The parcel came two weeks late; refund was quick."), "scraper:trustpilot")
        assert not seen.unchanged("scraper:trustpilot:ae0005", digest(edited.to_kafka()[1]))
        assert len(seen) == 1


def test_a_second_crawl_to_the_same_destination_is_refused_at_start_while_the_first_runs(tmp_path: Path) -> None:
    """Sharing the file, the second crawl failed at close ("database is locked"), exited 0, and
    left what it delivered unrecorded, to be re-sent by every later crawl."""
    path = tmp_path / "seen.sqlite3"
    with SeenState(path), pytest.raises(SeenStateBusyError, match="another crawl to the same destination"):
        SeenState(path)
    with SeenState(path) as seen:  # the first one is done: the next crawl gets it
        assert len(seen) == 0


def test_seen_state_is_kept_per_destination(tmp_path: Path) -> None:
    """Delivered to one cluster's topic is not delivered to another's: a fresh broker gets everything."""
    here = state_file(tmp_path, "trustpilot", "kafka-a:9092", "reviews")

    assert here == state_file(tmp_path, "trustpilot", "kafka-a:9092", "reviews")
    assert here != state_file(tmp_path, "trustpilot", "127.0.0.1:40123", "reviews")
    assert here != state_file(tmp_path, "trustpilot", "kafka-a:9092", "reviews-eu")
    assert here.name.startswith("seen-trustpilot-")


def test_one_cluster_written_two_ways_is_one_destination(tmp_path: Path) -> None:
    """Listing the same brokers in another order or case sent every review again."""
    both = state_file(tmp_path, "trustpilot", "kafka-a:9092,kafka-b:9092", "reviews")

    assert both == state_file(tmp_path, "trustpilot", " Kafka-B:9092, kafka-a:9092", "reviews")
    assert both != state_file(tmp_path, "trustpilot", "kafka-a:9092", "reviews")
    # The usual single host:port keeps the file name earlier releases gave it.
    assert state_file(tmp_path, "t", "kafka-a:9092", "reviews").name == "seen-t-" + (
        hashlib.sha256(b"kafka-a:9092\x1freviews").hexdigest()[:12] + ".sqlite3"
    )


def test_polite_defaults_for_real_runs(tmp_path: Path) -> None:
    values = scrapy_settings(ScraperSettings(state_dir=tmp_path / "state"))

    assert values["ROBOTSTXT_OBEY"] is True
    assert values["AUTOTHROTTLE_ENABLED"] is True
    assert values["CONCURRENT_REQUESTS_PER_DOMAIN"] == 2
    assert values["DOWNLOAD_DELAY"] == 0.5
    assert values["USER_AGENT"].startswith("reviewscore-bot/")
    assert values["HTTPCACHE_ENABLED"] is True
    assert values["HTTPCACHE_DIR"] == str((tmp_path / "state" / "httpcache").resolve())
    assert values["REVIEWSCORE_INCREMENTAL"] is True
    assert "DOWNLOAD_HANDLERS" not in values  # no browser unless asked for


def test_the_crawl_state_lives_under_the_projects_state_directory_unless_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A private REVIEWSCORE_STATE_DIR left the crawl's seen-state in ./.reviewscore/scraper."""
    monkeypatch.setenv("REVIEWSCORE_STATE_DIR", str(tmp_path / "private"))
    clear_settings_cache()

    assert scrapy_settings(ScraperSettings())["REVIEWSCORE_STATE_DIR"] == str(tmp_path / "private" / "scraper")
    assert scrapy_settings(ScraperSettings(state_dir=tmp_path / "own"))["REVIEWSCORE_STATE_DIR"] == str(
        tmp_path / "own"
    )


def test_settings_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRAPER_AUTOTHROTTLE", "false")
    monkeypatch.setenv("SCRAPER_MAX_PAGES", "40")
    monkeypatch.setenv("SCRAPER_OBEY_ROBOTS", "false")

    values = scrapy_settings(ScraperSettings())

    assert (values["AUTOTHROTTLE_ENABLED"], values["CLOSESPIDER_PAGECOUNT"], values["ROBOTSTXT_OBEY"]) == (
        False,
        40,
        False,
    )


def test_start_urls_come_from_an_option_or_a_file(tmp_path: Path) -> None:
    url_file = tmp_path / "urls.txt"
    url_file.write_text("# companies to watch\nhttp://a.test/review/x.example\n\nhttp://b.test/categories/  # all\n")

    assert read_url_file(url_file) == ["http://a.test/review/x.example", "http://b.test/categories/"]
    spider = TrustpilotSpider(start_url="http://c.test/categories/", url_file=str(url_file))
    assert spider.start_urls == [
        "http://c.test/categories/",
        "http://a.test/review/x.example",
        "http://b.test/categories/",
    ]
    assert spider.allowed_domains == ["a.test", "b.test", "c.test"]


def test_a_comma_inside_a_start_url_does_not_split_it() -> None:
    """The CLI joined its --start-url options with commas and the spider split them: `?stars=4,5` became '5'."""
    filtered = "http://a.test/review/x.example?stars=4,5"

    assert TrustpilotSpider(start_url=[filtered, "http://b.test/categories/"]).start_urls == [
        filtered,
        "http://b.test/categories/",
    ]
    assert TrustpilotSpider(start_url=f"{filtered},http://b.test/categories/").start_urls == [
        filtered,
        "http://b.test/categories/",
    ]
    assert split_start_urls(f"{filtered}, https://b.test/x") == [filtered, "https://b.test/x"]


def test_start_urls_on_two_sites_are_warned_about_and_one_sites_hosts_are_not(caplog: pytest.LogCaptureFixture) -> None:
    """Both sites' ids went under one source: the second site's review 'r1' overwrote the first's."""
    with caplog.at_level(logging.WARNING):
        TrustpilotSpider(start_url=["https://uk.trustpilot.com/review/a.example", "https://www.trustpilot.com/"])
        assert not caplog.records
        TrustpilotSpider(start_url=["http://127.0.0.1:8765/", "http://localhost:8766/"])

    (warning,) = caplog.records
    assert "start URLs on 2 sites (127.0.0.1, localhost) share one message source" in warning.getMessage()
    assert "--source" in warning.getMessage()


def test_a_start_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="absolute http"):
        TrustpilotSpider(start_url="reviews.test/categories/")


def test_company_pages_are_told_from_listings_by_url() -> None:
    assert is_company_page("http://h/review/acme-electronics.example")
    assert is_company_page("http://h/review/acme-electronics.example?page=2")
    assert not is_company_page("http://h/categories/electronics/")


def test_summary_reports_zero_for_what_did_not_happen() -> None:
    figures = summary({"response_received_count": 3, "reviewscore/published": 2})

    assert figures["pages"] == 3
    assert figures["published"] == 2
    assert figures["failed"] == 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_messages_still_unconfirmed_when_the_crawl_ends_are_kept_in_the_undelivered_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipelines, "CLOSE_GRACE_S", 0.0)
    crawler = get_crawler(TrustpilotSpider)
    crawler.spider = TrustpilotSpider.from_crawler(crawler, start_url="http://reviews.test/categories/")
    servers = f"127.0.0.1:{_closed_port()}"
    pipeline = KafkaPublishPipeline(
        crawler,
        KafkaSettings(bootstrap_servers=servers),
        state_dir=tmp_path,
        incremental=False,
        delivery_timeout_s=0.2,
        retries=0,
    )
    # A broker that answers nothing before the crawl ends: the reports would come a minute later.
    pipeline.producer = Producer({"bootstrap.servers": servers, "message.timeout.ms": 60_000, "log_level": 0})
    pipeline.process_item(item(review_id="ae0005"))
    pipeline.process_item(item(review_id="ae0006", text="Refund took a month."))

    pipeline.close_spider()

    kept = tmp_path / "undelivered-trustpilot.jsonl"
    assert [parse_message(line).review_id for line in kept.read_bytes().splitlines()] == ["ae0005", "ae0006"]
    assert summary(crawler.stats.get_stats())["failed"] == 2
