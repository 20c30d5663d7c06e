"""``reviewscore crawl`` refuses bad input before anything starts, with a clear message."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from scraper.cli import crawl_failure, register
from scraper.pipelines import summary


def app() -> typer.Typer:
    cli = typer.Typer()
    register(cli)
    return cli


def test_crawl_without_a_start_is_refused() -> None:
    result = CliRunner().invoke(app(), ["crawl", "trustpilot"])

    assert result.exit_code == 2
    assert "give --start-url URL or --url-file FILE" in result.output


def test_crawl_with_a_start_that_is_not_an_http_url_is_refused(tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("http://ok.test/categories/\nftp://files.test/x\n")

    result = CliRunner().invoke(app(), ["crawl", "trustpilot", "--start-url", "reviews.test", "--url-file", str(urls)])

    assert result.exit_code == 2
    assert "start URLs must be absolute http(s) URLs: reviews.test, ftp://files.test/x" in result.output


@pytest.mark.parametrize(
    ("spider", "follow", "said"),
    [
        ("trustpilot", "/products/", "--follow is for the schemaorg spider"),
        ("schemaorg", "(unclosed", "--follow '(unclosed' is not a regular expression"),
    ],
)
def test_follow_is_refused_where_it_cannot_apply(spider: str, follow: str, said: str) -> None:
    args = ["crawl", spider, "--start-url", "http://a.test/sitemap.xml", "--no-publish", "--follow", follow]
    result = CliRunner().invoke(app(), args)

    assert result.exit_code == 2
    assert said in result.output


@pytest.mark.parametrize("where", ["folder", "nowhere/reviews.jsonl"])
def test_an_output_that_is_no_file_path_is_refused(tmp_path: Path, where: str) -> None:
    """A directory: Scrapy logged an error per review, saved nothing and the crawl exited 0."""
    (tmp_path / "folder").mkdir()
    output = tmp_path / where
    args = ["crawl", "trustpilot", "--start-url", "http://a.test/", "--no-publish", "--output", str(output)]
    result = CliRunner().invoke(app(), args)

    assert result.exit_code == 2
    assert f"error: --output {output} " in result.output
    assert "give a file path for the JSON lines" in result.output


def test_a_malformed_scrapy_setting_is_refused() -> None:
    args = ["crawl", "trustpilot", "--start-url", "http://a.test/", "--no-publish", "-s", "X"]
    result = CliRunner().invoke(app(), args)

    assert result.exit_code == 2
    assert "--set expects NAME=VALUE" in result.output


def test_a_crawl_that_read_pages_but_found_nothing_new_succeeds() -> None:
    stats = {"response_received_count": 3, "reviewscore/review_pages": 2, "reviewscore/unchanged": 15}

    assert crawl_failure(summary(stats), stats) is None


def test_a_crawl_that_read_no_page_fails_with_what_went_wrong() -> None:
    stats = {"response_received_count": 2, "robotstxt/forbidden": 1, "httperror/response_ignored_count": 1}

    assert crawl_failure(summary(stats), stats) == (
        "no page was crawled: 1 forbidden by robots.txt, 1 HTTP errors (see the log above)"
    )


@pytest.mark.parametrize(
    ("stats", "said"),
    [
        ({"reviewscore/unreadable_sitemaps": 1}, "no page was crawled: 1 unreadable sitemaps"),
        ({"reviewscore/listing_pages": 1, "reviewscore/sitemaps": 1}, "the sitemaps led to no page read"),
        (
            {
                "reviewscore/listing_pages": 2,
                "reviewscore/sitemaps": 1,
                "reviewscore/unreadable_sitemaps": 1,
                "reviewscore/review_pages": 3,
            },
            "1 pages could not be read",
        ),
    ],
)
def test_a_sitemap_crawl_that_read_none_of_its_pages_fails(stats: dict[str, int], said: str) -> None:
    assert said in (crawl_failure(summary(stats), stats) or "")


def test_a_crawl_that_could_not_deliver_a_review_fails() -> None:
    stats = {"reviewscore/review_pages": 1, "reviewscore/failed": 2}

    assert crawl_failure(summary(stats), stats) == (
        "2 reviews could not be delivered (kept in the state dir's undelivered file)"
    )


def test_a_source_the_message_contract_refuses_is_refused_before_the_crawl(monkeypatch: pytest.MonkeyPatch) -> None:
    """Else every review of the crawl would be dropped as invalid, one by one."""
    monkeypatch.delenv("SCRAPER_SOURCE", raising=False)
    result = CliRunner().invoke(
        app(), ["crawl", "trustpilot", "--start-url", "http://ok.test/", "--source", "my site", "--no-publish"]
    )

    assert result.exit_code == 2
    assert "error: source 'my site' (--source or SCRAPER_SOURCE): source: String should match pattern" in result.output


def test_fixture_site_on_a_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app(), ["fixture-site", "--port", str(port)])

    assert result.exit_code == 2, result.output
    assert f"error: cannot serve on 127.0.0.1:{port}: Address already in use; pass --port" in result.output


def test_follow_without_a_sitemap_start_url_is_refused() -> None:
    """It would be ignored in silence: it narrows what a sitemap lists, and pages list nothing."""
    args = ["crawl", "schemaorg", "--start-url", "http://a.test/p/kettle", "--no-publish", "--follow", "/p/"]
    result = CliRunner().invoke(app(), args)

    assert result.exit_code == 2
    assert "no start URL is one" in result.output


@pytest.mark.parametrize("url", ["http://[oops/", "http://127.0.0.1:8765:99999/x", "https://reviews.test:70000/"])
def test_a_start_url_that_cannot_be_requested_is_refused_before_the_crawl(tmp_path: Path, url: str) -> None:
    """Refused mid-crawl before, after the URLs above it were read: a traceback, or the rest not crawled."""
    urls = tmp_path / "urls.txt"
    urls.write_text(f"http://ok.test/categories/\n{url}\nhttp://ok.test/review/a.example\n")

    for args in (["--start-url", url], ["--url-file", str(urls)]):
        result = CliRunner().invoke(app(), ["crawl", "trustpilot", *args])
        assert result.exit_code == 2, result.output
        assert f"start URLs must be absolute http(s) URLs: {url}" in result.output


def test_a_url_file_that_is_not_utf8_is_refused_naming_it(tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_bytes("http://ok.test/categories/caf\xe9/\n".encode("latin-1"))

    result = CliRunner().invoke(app(), ["crawl", "trustpilot", "--url-file", str(urls)])

    assert result.exit_code == 2
    assert f"error: --url-file: {urls} is not UTF-8 text" in result.output


def test_a_crawl_stopped_before_it_finished_fails() -> None:
    """SIGTERM or Ctrl-C: a CronJob must not read a partial crawl as done."""
    stats = {"finish_reason": "shutdown", "reviewscore/review_pages": 3}
    assert crawl_failure(summary(stats), stats) == (
        "the crawl was stopped before it finished (SIGTERM or Ctrl-C); a next crawl reads on"
    )
    undelivered = {**stats, "reviewscore/failed": 2}
    assert "(SIGTERM or Ctrl-C); 2 reviews could not be delivered" in (
        crawl_failure(summary(undelivered), undelivered) or ""
    )


def test_render_js_without_a_browser_says_so_before_crawling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It ended "no page was crawled: 1 download errors (unreachable, DNS, timeouts)"."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium on it
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path))  # nor one of Playwright's own
    args = ["crawl", "trustpilot", "--start-url", "http://a.test/", "--no-publish", "--render-js"]
    result = CliRunner().invoke(app(), args)
    monkeypatch.setenv("SCRAPER_BROWSER_EXECUTABLE", str(tmp_path / "chrome"))
    named = CliRunner().invoke(app(), args)

    assert (result.exit_code, named.exit_code) == (2, 2)
    assert "error: --render-js (SCRAPER_RENDER_JS): no Chromium was found" in result.output
    assert f"SCRAPER_BROWSER_EXECUTABLE={tmp_path / 'chrome'} is no program" in named.output


def test_an_unknown_spider_is_refused_naming_the_spiders_there_are() -> None:
    result = CliRunner().invoke(app(), ["crawl", "bogus", "--start-url", "http://a.test/", "--no-publish"])

    assert result.exit_code == 2
    assert "Spider not found: bogus (spiders: schemaorg, trustpilot)" in result.output
