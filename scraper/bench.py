"""Crawler benchmark: prints figures, asserts nothing (``python -m scraper.bench``).

Generates a Trustpilot-style site of ``--companies`` companies x ``--pages`` review pages x
``--reviews`` reviews (JSON-LD on odd pages, HTML cards only on even ones), then measures:

1. extraction alone (``scraper.extract`` on every company page, in this process);
2. a full crawl with politeness off (``reviewscore crawl`` in a subprocess) publishing to a
   real broker (``KAFKA_BOOTSTRAP_SERVERS``, else an embedded Tansu);
3. the incremental re-crawl of the unchanged site (every page revalidated, nothing published).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from parsel import Selector

from core.embedded import EmbeddedBroker, create_topics
from scraper.extract import extract_reviews
from scraper.fixture_site import serve

WORDS = "delivery support product price quality staff order shop app refund fast slow great awful".split()  # noqa: SIM905


def _review(company: int, page: int, index: int) -> tuple[str, str, int]:
    rid = f"c{company}p{page}r{index}"
    words = " ".join(WORDS[(company + page + index + k) % len(WORDS)] for k in range(12 + index % 30))
    return rid, f"Review {rid}: {words}.", 1 + (company + index) % 5


def company_page(company: int, page: int, pages: int, reviews: int) -> str:
    items = [_review(company, page, i) for i in range(reviews)]
    cards = "\n".join(
        f'<article data-review-card data-review-id="{rid}"><span data-consumer-name>Author {rid}</span>'
        f'<div data-review-rating="{stars}"></div><time datetime="2026-10-{1 + i % 28:02d}T10:00:00Z"></time>'
        f'<p data-review-text>{text}</p><a href="/reviews/{rid}">more</a></article>'
        for i, (rid, text, stars) in enumerate(items)
    )
    json_ld = ""
    if page % 2 == 1:
        graph: list[dict[str, Any]] = [
            {"@type": "Organization", "name": f"Company {company}", "url": f"https://c{company}.example"}
        ]
        graph += [
            {
                "@type": "Review",
                "@id": f"/#/schema/Review/c{company}.example/{rid}",
                "reviewBody": text,
                "reviewRating": {"ratingValue": stars},
                "author": {"name": f"Author {rid}"},
            }
            for rid, text, stars in items
        ]
        json_ld = f'<script type="application/ld+json">{json.dumps({"@graph": graph})}</script>'
    nxt = f'<a rel="next" href="/review/c{company}.example?page={page + 1}">next</a>' if page < pages else ""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{json_ld}</head><body>'
        f"<h1 data-business-name>Company {company}</h1>{cards}{nxt}</body></html>"
    )


def build_site(root: Path, companies: int, pages: int, reviews: int, per_listing: int = 20) -> None:
    (root / "categories" / "all").mkdir(parents=True)
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    (root / "categories" / "index.html").write_text(
        '<html><body><a data-category-link href="/categories/all/">All</a></body></html>'
    )
    listing_pages = max(1, -(-companies // per_listing))
    for number in range(1, listing_pages + 1):
        chunk = range((number - 1) * per_listing, min(companies, number * per_listing))
        links = "".join(f'<a data-business-unit-card href="/review/c{c}.example">C{c}</a>' for c in chunk)
        nxt = f'<a rel="next" href="/categories/all/?page={number + 1}">next</a>' if number < listing_pages else ""
        name = "index.html" if number == 1 else f"page-{number}.html"
        (root / "categories" / "all" / name).write_text(f"<html><body>{links}{nxt}</body></html>")
    for company in range(companies):
        folder = root / "review" / f"c{company}.example"
        folder.mkdir(parents=True)
        for page in range(1, pages + 1):
            name = "index.html" if page == 1 else f"page-{page}.html"
            (folder / name).write_text(company_page(company, page, pages, reviews))


def bench_extraction(root: Path) -> dict[str, float]:
    files = sorted((root / "review").rglob("*.html"))
    texts = [f.read_text() for f in files]
    started = time.perf_counter()
    found = sum(len(extract_reviews(Selector(text=t), "http://bench.test/review/x").reviews) for t in texts)
    elapsed = time.perf_counter() - started
    return {"pages": len(files), "reviews": found, "seconds": elapsed, "pages_per_s": len(files) / elapsed}


def run_crawl(base_url: str, env: dict[str, str], cwd: Path) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.cli",
            "--log-level",
            "WARNING",
            "crawl",
            "trustpilot",
            "--start-url",
            base_url + "/categories/",
        ],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    line = next((x for x in done.stdout.splitlines() if x.startswith("crawl summary: ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"crawl failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}")
    figures: dict[str, int] = json.loads(line.removeprefix("crawl summary: "))
    return elapsed, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--companies", type=int, default=100)
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--reviews", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=16, help="Requests in parallel (politeness off).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="scraper-bench-") as tmp:
        work = Path(tmp)
        build_site(work / "site", args.companies, args.pages, args.reviews)
        ext = bench_extraction(work / "site")
        print(
            f"extraction: {ext['pages']} pages, {ext['reviews']} reviews in {ext['seconds']:.2f}s "
            f"= {ext['pages_per_s']:.0f} pages/s, {ext['reviews'] / ext['seconds']:.0f} reviews/s"
        )
        server, base_url = serve(port=0, root=work / "site")
        try:
            servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
            broker = None if servers else EmbeddedBroker(work / "tansu")
            if broker is not None:
                broker.__enter__()
                servers = broker.bootstrap_servers
            assert servers
            topic = f"bench-reviews-{int(time.time())}"
            create_topics(servers, {topic: 4})
            env = {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": servers,
                "KAFKA_FLAVOR": os.environ.get("KAFKA_FLAVOR", "tansu" if broker else "kafka"),
                "KAFKA_TOPIC": topic,
                "SCRAPER_DOWNLOAD_DELAY": "0",
                "SCRAPER_AUTOTHROTTLE": "false",
                "SCRAPER_CONCURRENCY_PER_DOMAIN": str(args.concurrency),
                "SCRAPER_STATE_DIR": str(work / "state"),
            }
            try:
                for label in ("full crawl", "re-crawl (unchanged)"):
                    elapsed, figures = run_crawl(base_url, env, work)
                    print(
                        f"{label}: {figures['pages']} pages, {figures['published']} published, "
                        f"{figures['unchanged']} unchanged, {figures['revalidated']} revalidated (304) "
                        f"in {elapsed:.2f}s (process start included) = {figures['pages'] / elapsed:.0f} pages/s, "
                        f"{figures['found'] / elapsed:.0f} reviews/s"
                    )
            finally:
                if broker is not None:
                    broker.__exit__(None, None, None)
        finally:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    main()
