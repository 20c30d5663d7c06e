"""``reviewscore crawl`` refuses bad input before anything starts, with a clear message."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from scraper.cli import register


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


def test_a_malformed_scrapy_setting_is_refused() -> None:
    args = ["crawl", "trustpilot", "--start-url", "http://a.test/", "--no-publish", "-s", "X"]
    result = CliRunner().invoke(app(), args)

    assert result.exit_code == 2
    assert "--set expects NAME=VALUE" in result.output
