"""``reviewscore crawl`` and ``reviewscore fixture-site``: thin shells over the runner and the site."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    app.command("crawl")(crawl)
    app.command("fixture-site")(fixture_site)


def _env(name: str, value: object | None) -> None:
    if value is not None:
        os.environ[name] = str(value).lower() if isinstance(value, bool) else str(value)


def crawl(
    spider: Annotated[
        str,
        typer.Argument(help="trustpilot (Trustpilot-style sites) or schemaorg (any page with schema.org reviews)."),
    ],
    start_url: Annotated[
        list[str] | None,
        typer.Option(
            "--start-url",
            help="Where to start (repeatable): trustpilot: a category or company page; schemaorg: a page with reviews.",
        ),
    ] = None,
    url_file: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="File of start URLs, one per line.")
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="HTTP cache + seen-state dir (default: SCRAPER_STATE_DIR).")
    ] = None,
    incremental: Annotated[
        bool | None, typer.Option("--incremental/--full", help="Skip reviews an earlier crawl already published.")
    ] = None,
    cache: Annotated[
        bool | None, typer.Option("--cache/--no-cache", help="Revalidate pages through the HTTP cache.")
    ] = None,
    render_js: Annotated[
        bool | None, typer.Option("--render-js/--no-render-js", help="Render listing pages in headless Chromium.")
    ] = None,
    max_pages: Annotated[int | None, typer.Option(min=0, help="Stop after this many pages (0: no limit).")] = None,
    publish: Annotated[bool, typer.Option("--publish/--no-publish", help="Publish reviews to Kafka.")] = True,
    topic: Annotated[str | None, typer.Option(help="Topic (default: KAFKA_TOPIC).")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the items to a feed file (e.g. reviews.jsonl).")
    ] = None,
    setting: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Scrapy setting NAME=VALUE (repeatable).")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help="Message source (default: SCRAPER_SOURCE, else scraper:SPIDER); one per site crawled."),
    ] = None,
    follow: Annotated[
        str | None,
        typer.Option(help="schemaorg, from a sitemap start URL: read only the pages whose URL matches this regex."),
    ] = None,
) -> None:
    """Crawl a review site and publish every review to the reviews topic."""
    from core.config import clear_settings_cache, get_scraper_settings
    from core.runtime import ensure_infra
    from scraper.publishing import source_problem
    from scraper.runner import run_crawl
    from scraper.start_urls import not_http_urls, read_url_file, split_start_urls

    if not start_url and not url_file:
        typer.echo("error: give --start-url URL or --url-file FILE", err=True)
        raise typer.Exit(2)
    # One option may hold several (compose passes SCRAPER_START_URL as one): split where a URL starts.
    starts = [url for value in start_url or [] for url in split_start_urls(value)]
    try:
        listed = read_url_file(url_file) if url_file else []
    except (ValueError, OSError) as exc:
        typer.echo(f"error: --url-file: {exc}", err=True)
        raise typer.Exit(2) from exc
    bad = not_http_urls([*starts, *listed])
    if bad:
        typer.echo(f"error: start URLs must be absolute http(s) URLs: {', '.join(bad)}", err=True)
        raise typer.Exit(2)
    if follow is not None:
        if spider != "schemaorg":
            typer.echo("error: --follow is for the schemaorg spider (pages listed in a sitemap)", err=True)
            raise typer.Exit(2)
        try:
            re.compile(follow)
        except re.error as exc:
            typer.echo(f"error: --follow {follow!r} is not a regular expression: {exc}", err=True)
            raise typer.Exit(2) from exc
        from scraper.spiders.schemaorg import is_sitemap

        if not any(is_sitemap(url) for url in [*starts, *listed]):
            typer.echo(
                "error: --follow narrows the pages of a sitemap, and no start URL is one (.xml, .xml.gz)", err=True
            )
            raise typer.Exit(2)
    _env("SCRAPER_SOURCE", source)
    _env("SCRAPER_STATE_DIR", state_dir)
    _env("SCRAPER_INCREMENTAL", incremental)
    _env("SCRAPER_HTTPCACHE_ENABLED", cache)
    _env("SCRAPER_RENDER_JS", render_js)
    _env("SCRAPER_MAX_PAGES", max_pages)
    _env("KAFKA_TOPIC", topic)
    clear_settings_cache()
    if get_scraper_settings().render_js:
        from scraper.addon import browser_available

        if reason := browser_available(get_scraper_settings().browser_executable):
            typer.echo(f"error: --render-js (SCRAPER_RENDER_JS): {reason}", err=True)
            raise typer.Exit(2)
    chosen = get_scraper_settings().source
    if chosen is not None and (problem := source_problem(chosen)):  # else every review would be dropped
        typer.echo(f"error: source {chosen!r} (--source or SCRAPER_SOURCE): {problem}", err=True)
        raise typer.Exit(2)

    overrides: dict[str, object] = {"REVIEWSCORE_PUBLISH": publish}
    for item in setting or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            typer.echo(f"error: --set expects NAME=VALUE, got {item!r}", err=True)
            raise typer.Exit(2)
        overrides[name.strip()] = value
    if output is not None:
        if output.is_dir() or not output.parent.is_dir():
            # Scrapy would log an error per review, save nothing and exit 0.
            why = "is a directory" if output.is_dir() else "is in a folder that does not exist"
            typer.echo(f"error: --output {output} {why}: give a file path for the JSON lines", err=True)
            raise typer.Exit(2)
        overrides["FEEDS"] = {str(output): {"format": "jsonlines", "encoding": "utf-8"}}
    spider_args: dict[str, object] = {"start_url": starts} if starts else {}
    if url_file:
        spider_args["url_file"] = str(url_file)
    if follow is not None:
        spider_args["follow"] = follow

    try:
        with ensure_infra(database=False, kafka=publish, start_embedded=False):
            figures, stats = run_crawl(spider, spider_args, overrides)
    except KeyError as exc:  # Scrapy's "Spider not found: NAME"
        from scrapy.spiderloader import SpiderLoader

        from scraper.runner import crawl_settings

        known = ", ".join(sorted(SpiderLoader.from_settings(crawl_settings({})).list()))
        typer.echo(f"error: {exc.args[0] if exc.args else exc} (spiders: {known})", err=True)
        raise typer.Exit(2) from exc
    except (RuntimeError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(
        f"crawled {figures['pages']} pages: {figures['found']} reviews found, {figures['published']} published, "
        f"{figures['unchanged']} unchanged, {figures['duplicates']} duplicates, {figures['invalid']} invalid, "
        f"{figures['failed']} failed ({stats.get('finish_reason', 'unknown')})"
    )
    typer.echo("crawl summary: " + json.dumps(figures, sort_keys=True))
    reason = crawl_failure(figures, stats)
    if reason:
        typer.echo(f"error: {reason}", err=True)
        raise typer.Exit(1)


def crawl_failure(figures: dict[str, int], stats: dict[str, Any]) -> str | None:
    """Why the crawl counts as failed (exit 1), or None.

    A crawl that read no page at all (site unreachable, DNS failure, robots.txt forbidding
    every start, only HTTP errors) did nothing, and a CronJob must hear so rather than see
    success; one that read pages and found nothing new is a success. ``pages`` counts every
    response, robots.txt and 404s included, so "read" means a page the spider parsed.
    """
    if stats.get("finish_reason") == "bootstrap_failed":
        return "the crawl could not start (see the log above)"
    if stats.get("finish_reason") == "shutdown":  # SIGTERM or Ctrl-C: a CronJob must not read it as done
        undelivered = f"; {figures['failed']} reviews could not be delivered" if figures["failed"] else ""
        return f"the crawl was stopped before it finished (SIGTERM or Ctrl-C){undelivered}; a next crawl reads on"
    if figures["listing_pages"] + figures["review_pages"] == 0:
        causes = {
            "download errors (unreachable, DNS, timeouts)": stats.get("downloader/exception_count", 0),
            "forbidden by robots.txt": stats.get("robotstxt/forbidden", 0),
            "HTTP errors": stats.get("httperror/response_ignored_count", 0),
            "not HTML": stats.get("reviewscore/not_html", 0),
            "unreadable sitemaps": stats.get("reviewscore/unreadable_sitemaps", 0),
        }
        found = ", ".join(f"{count} {what}" for what, count in causes.items() if count)
        return "no page was crawled" + (f": {found}" if found else "") + " (see the log above)"
    if figures["review_pages"] == 0 and stats.get("reviewscore/sitemaps", 0):
        # A sitemap is a list of pages, not one: a crawl that read none of them did nothing.
        return (
            "the sitemaps led to no page read: none matched --follow, or every one was skipped "
            "(another site, robots.txt, HTTP errors; see the log above)"
        )
    if figures["failed"]:
        return f"{figures['failed']} reviews could not be delivered (kept in the state dir's undelivered file)"
    unreadable = (
        stats.get("reviewscore/unreadable_pages", 0)
        + stats.get("reviewscore/unreadable_sitemaps", 0)
        + stats.get("spider_exceptions/count", 0)
    )
    if unreadable:
        return f"{unreadable} pages could not be read (see the log above); the reviews of the others were sent"
    return None


def fixture_site(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: a free one).")] = 8765,
    root: Annotated[
        Path | None, typer.Option(exists=True, file_okay=False, help="Serve these pages instead of the bundled ones.")
    ] = None,
) -> None:
    """Serve the bundled Trustpilot-style fixture site until Ctrl-C or SIGTERM."""
    from scraper.fixture_site import serve

    try:
        server, base_url = serve(port=port, root=root)
    except OSError as exc:  # the port in use, most often (another fixture-site, the demo's)
        typer.echo(
            f"error: cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}; pass --port (0: a free one)", err=True
        )
        raise typer.Exit(2) from exc
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    typer.echo(f"fixture site at {base_url}/categories/", err=False)
    typer.echo(f"crawl it: reviewscore crawl trustpilot --start-url {base_url}/categories/", err=True)
    typer.echo(f"     or: reviewscore crawl schemaorg --start-url {base_url}/shop/kettle", err=True)
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
    typer.echo("stopped")
