"""The dashboard in real headless Chromium against a live server, real PostgreSQL and the real broker."""

from __future__ import annotations

import random
import re
import shutil
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.config import KafkaSettings
from core.messages import REVIEW_COLUMNS, parse_message
from tests.fixtures.api import (
    build_app,
    fetch_all,
    insert_rows,
    label_for,
    live_server,
    make_row,
    make_rows,
    read_topic,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _browser_unavailable() -> str | None:
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        return "Debian chromium is not installed (apt-get install chromium); .ci/run installs it"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (dev extra)"
    return None


def _watch(page: Any) -> tuple[list[str], list[str]]:
    """Every URL ``page`` requests and every error its scripts throw, as they happen."""
    requested: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    return requested, errors


@pytest.mark.skipif(_browser_unavailable() is not None, reason=str(_browser_unavailable()))
def test_the_dashboard_shows_charts_filters_reviews_and_a_submitted_review_once_scored(
    database_url: str, readonly_database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    rows = make_rows(160)
    row_ids = insert_rows(database_url, rows)
    acme_on_march_3 = {
        row_id
        for row_id, row in zip(row_ids, rows, strict=True)
        if row["brand"] == "Acme" and row["created_on"].date() == date(2026, 3, 3)
    }
    # ~100 hours of rows: days fit the stats bound, hours do not (the chart's error is shown).
    app = build_app(readonly_database_url, kafka_settings, submit_wait_max=5.0, stats_max_rows=20)
    with live_server(app) as base_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # bypass_csp: wait_for_function evaluates its string in the page, which the page's
            # policy forbids; the page is also loaded under its policy below ("lonely").
            page = browser.new_page(viewport={"width": 1280, "height": 1400}, bypass_csp=True)
            requested, errors = _watch(page)

            page.goto(base_url + "/")
            page.wait_for_selector("body[data-ready=true]", timeout=15_000)
            suggested = "[...document.querySelectorAll('#brand-options option')].map(o => o.value).sort().join()"
            assert page.evaluate(suggested) == "Acme,Globex,Initech"
            page.wait_for_function("document.querySelectorAll('#reviews tbody tr').length === 20")

            page.type("#brand", "lob")  # a brand found by part of its name, from the API's search
            page.wait_for_function(f"{suggested} === 'Globex'")
            page.fill("#brand", "Globex")
            page.press("#brand", "Enter")
            page.wait_for_function(
                "[...document.querySelectorAll('#reviews tbody tr td:nth-child(2)')]"
                ".every(td => td.textContent === 'Globex')"
            )
            page.wait_for_function(
                "['timeline', 'labels', 'ratings'].every(id => { const i = document.getElementById(id);"
                " return i.dataset.state === 'drawn' && i.dataset.src.includes('brand=Globex'); })"
            )
            # Per star rating, the labels read in the text; each segment says its count on hover.
            star_tips = page.eval_on_selector_all(
                "#ratings svg rect.star-bar title", "ts => ts.map(t => t.textContent)"
            )
            assert star_tips
            assert all(
                re.fullmatch(r"(\d★|none): \d+ (negative|neutral|positive) \(\d+% of \d+\)", t) for t in star_tips
            )
            # Drawn into the page, so each bar's count and mean shows on hover (an <img> showed none).
            tips = page.eval_on_selector_all("#timeline svg rect.count title", "ts => ts.map(t => t.textContent)")
            assert tips
            assert all(re.fullmatch(r"2026-03-0\d: \d+ reviews, mean 0\.\d\d", tip) for tip in tips), tips
            assert page.text_content("#labels svg .subtitle") == "Globex"

            page.dblclick("#more")  # the second click fetched the same page again: 60 rows, 40 distinct
            page.wait_for_function(
                "!document.getElementById('more').disabled"
                " && document.querySelectorAll('#reviews tbody tr').length >= 40"
            )
            listed = page.eval_on_selector_all("#reviews tbody tr", "rows => rows.map(r => r.dataset.id)")
            assert len(listed) == len(set(listed)) == 40

            page.select_option("#label", "negative")
            page.click("#filters button[type=submit]")
            page.wait_for_function(
                "[...document.querySelectorAll('#reviews tbody tr td:nth-child(4)')]"
                ".every(td => td.textContent === 'negative')"
            )
            # The charts count what the list shows: they kept showing every label of the brand.
            page.wait_for_function(
                "['timeline', 'labels'].every(id => document.getElementById(id).dataset.src.includes('label=negative'))"
            )
            page.select_option("#label", "positive")  # edited, not applied: another brand keeps what is applied
            page.fill("#brand", "Acme")
            page.press("#brand", "Enter")
            page.wait_for_function(
                "[...document.querySelectorAll('#reviews tbody tr')]"
                ".every(tr => tr.cells[1].textContent === 'Acme' && tr.cells[3].textContent === 'negative')"
            )
            assert page.input_value("#label") == "negative"  # the form shows what the list shows

            page.fill("#submit-text", "   ")  # passes the form's `required`, not the API
            page.click("#submit-form button[type=submit]")
            page.wait_for_selector("#submit-result[data-state=error]", timeout=10_000)
            assert "text: " in page.inner_text("#submit-result")  # the refused field, not just a 422

            worker = _score_the_next_submission(database_url, kafka_settings)
            page.fill("#submit-text", "Lovely soft fabric, fits perfectly")
            page.fill("#submit-brand", "Globex")
            page.click("#submit-form button[type=submit]")
            page.wait_for_selector("#submit-result[data-state=scored]", timeout=30_000)
            worker.join()
            result = page.inner_text("#submit-result")
            assert "positive" in result
            assert page.get_attribute("#submit-result .stars", "data-rating") == "5"
            assert "error" not in (page.get_attribute("#submit-result", "class") or "")

            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)

            page.fill("#q", "nothing-says-this")  # an empty answer says so, not a blank table
            page.click("#filters button[type=submit]")
            page.wait_for_selector("#reviews td.empty", timeout=10_000)
            assert page.inner_text("#reviews td.empty") == "No reviews match these filters."
            page.select_option("#label", "")
            page.fill("#q", "")
            page.select_option("#stars", "4-5")  # the reviewer's stars, in the list and both charts
            page.click("#filters button[type=submit]")
            page.wait_for_function(
                "(rows => rows.length > 0 && rows.every(tr => ['★★★★☆', '★★★★★'].includes(tr.cells[6].textContent)))"
                "([...document.querySelectorAll('#reviews tbody tr[data-id]')])"
            )
            page.wait_for_function(
                "['timeline', 'labels'].every(id => { const i = document.getElementById(id);"
                " return i.dataset.state === 'drawn' && i.dataset.src.includes('min_rating=4')"
                " && i.dataset.src.includes('max_rating=5'); })"
            )
            assert page.text_content("#labels svg .subtitle") == "Acme · 4–5★"
            page.fill("#lang", "en")  # English of any region, in the charts as in the list
            page.click("#filters button[type=submit]")
            page.wait_for_function(
                "['timeline', 'labels', 'ratings'].every(id => { const i = document.getElementById(id);"
                " return i.dataset.state === 'drawn' && i.dataset.src.includes('lang=en'); })"
            )
            assert page.text_content("#labels svg .subtitle") == "Acme · 4–5★ · lang en"
            page.fill("#lang", "")
            page.select_option("#stars", "")
            page.click("#filters button[type=submit]")
            page.wait_for_function("document.querySelectorAll('#reviews tbody tr[data-id]').length === 20")

            page.fill("#from", "2026-03-03")  # one UTC day of scoring time, in the list and both charts
            page.fill("#to", "2026-03-03")
            page.click("#filters button[type=submit]")
            page.wait_for_function(
                "['timeline', 'labels'].every(id => { const src = document.getElementById(id).dataset.src;"
                " return src.includes('since=2026-03-03T00%3A00%3A00Z')"
                " && src.includes('until=2026-03-04T00%3A00%3A00Z'); })"
            )
            listed_ids = "[...document.querySelectorAll('#reviews tbody tr[data-id]')].map(r => Number(r.dataset.id))"
            expected = min(20, len(acme_on_march_3))
            page.wait_for_function(  # the list redrawn with that day's reviews only
                f"(ids => ids.length === {expected} && ids.every(id => {sorted(acme_on_march_3)}.includes(id)))"
                f"({listed_ids})"
            )
            page.select_option("#time-field", "published_at")  # the range follows the charts' time field
            page.wait_for_selector("#reviews td.empty", timeout=10_000)  # every seeded review was published before
            page.wait_for_function(
                "['timeline', 'labels'].every(id =>"
                " document.getElementById(id).dataset.src.includes('published_since='))"
            )
            page.fill("#from", "2026-03-05")
            page.click("#filters button[type=submit]")
            page.wait_for_selector("#status.error", timeout=10_000)
            assert page.inner_text("#status") == "From is after To: the filters were not applied"
            page.evaluate("document.getElementById('to').value = '9999-12-31'")  # past what Date arithmetic takes
            page.click("#filters button[type=submit]")  # the browser refuses to submit it: nothing applies
            assert page.evaluate("document.getElementById('to').validity.rangeOverflow")
            assert "published_until=2026-03-04" in (page.get_attribute("#timeline", "data-src") or "")
            page.select_option("#time-field", "created_on")  # a view change shows the applied range again
            assert (page.input_value("#from"), page.input_value("#to")) == ("2026-03-03", "2026-03-03")
            page.fill("#from", "")
            page.fill("#to", "")
            page.click("#filters button[type=submit]")
            page.wait_for_function("document.querySelectorAll('#reviews tbody tr[data-id]').length === 20")
            assert "since" not in (page.get_attribute("#timeline", "data-src") or "")

            sources = "[...document.querySelectorAll('#source option')].map(o => o.value).sort().join()"
            assert page.evaluate(sources) == ",cli,scraper:trustpilot,user"
            from_users = {
                row["id"] for row in fetch_all(database_url) if row["source"] == "user"
            }  # with the submission
            page.fill("#brand", "")  # every brand
            page.press("#brand", "Enter")
            page.select_option("#source", "user")  # applies at once, like the brand
            page.wait_for_function(
                "['timeline', 'labels'].every(id => { const src = document.getElementById(id).dataset.src;"
                " return src.includes('source=user') && !src.includes('brand='); })"
            )
            page.wait_for_function(  # the list redrawn: 20 reviews, every one from a user
                f"(ids => ids.length === 20 && ids.every(id => {sorted(from_users)}.includes(id)))({listed_ids})"
            )
            # The download is every matching review, not the 20 on screen.
            exported = page.evaluate("fetch(document.getElementById('export').href).then(r => r.text())")
            header, *lines = exported.strip().splitlines()
            assert header.startswith("id,")
            assert {int(line.split(",", 1)[0]) for line in lines} == from_users
            assert len(from_users) > 20
            page.select_option("#source", "")
            page.wait_for_function(
                "document.querySelectorAll('#reviews tbody tr[data-id]').length === 20"
                " && !document.getElementById('timeline').dataset.src.includes('source=')"
            )

            # An outage empties the list; the next view change, even of the charts only, brings it back.
            page.route("**/sentiments/?*", lambda route: route.fulfill(status=503, body="{}"))
            page.click("#filters button[type=submit]")
            page.wait_for_selector("#status.error", timeout=10_000)
            assert page.eval_on_selector_all("#reviews tbody tr", "rows => rows.length") == 0
            page.unroute("**/sentiments/?*")
            page.select_option("#bucket", "week")
            page.wait_for_function("document.querySelectorAll('#reviews tbody tr[data-id]').length === 20")
            page.select_option("#bucket", "day")

            page.select_option("#bucket", "hour")  # more buckets than the server draws
            page.wait_for_selector("#status.error", timeout=10_000)
            assert "too many buckets" in page.inner_text("#timeline .chart-error")  # said in the chart's box too
            assert page.inner_text("#status").startswith("Mean sentiment over time: ")
            assert "too many buckets" in page.inner_text("#status")
            assert page.eval_on_selector("#status", "e => getComputedStyle(e).color") == "rgb(192, 57, 43)"
            page.select_option("#bucket", "day")  # the error was the view before's: it goes
            page.wait_for_function("document.getElementById('status').textContent === ''")

            # Without the source list (a database error, say) the page works on all sources; and it
            # works under its own Content-Security-Policy (no wait_for_function here, see above).
            lonely = browser.new_page()
            refused: list[str] = []
            lonely.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
            lonely.route("**/sentiments/stats?group_by=source", lambda route: route.fulfill(status=503, body="{}"))
            lonely.goto(base_url + "/")
            lonely.wait_for_selector("body[data-ready=true]", timeout=15_000)
            lonely.wait_for_selector("#status.error", timeout=10_000)
            assert lonely.inner_text("#status").startswith("Could not list the sources")
            lonely.wait_for_selector("#reviews tbody tr[data-id]:nth-child(20)", timeout=10_000)
            lonely.wait_for_selector("#timeline[data-state=drawn]", timeout=10_000)
            lonely.wait_for_selector("#labels[data-state=drawn]", timeout=10_000)
            assert lonely.evaluate("document.querySelectorAll('#source option').length") == 1
            assert refused == []
            lonely.close()

            # A chart is imported into the page: whatever markup it held, nothing in it runs.
            hostile = browser.new_page(bypass_csp=True)  # the page's own stripping, without the policy's help
            payload = (
                '<svg xmlns="http://www.w3.org/2000/svg" width="360" height="144" onload="window.ran=1">'
                '<image href="data:," onerror="window.ran=2"/><rect width="9" height="9" onmouseover="window.ran=3"/>'
                '<script>window.ran=4</script><text x="20" y="40">kept</text></svg>'
            )
            hostile.route(
                "**/charts/labels.svg*",
                lambda route: route.fulfill(status=200, content_type="image/svg+xml", body=payload),
            )
            hostile.goto(base_url + "/")
            hostile.wait_for_selector("#labels[data-state=drawn]", timeout=15_000)
            hostile.hover("#labels svg rect", force=True)
            assert hostile.evaluate("window.ran") is None
            assert hostile.evaluate("document.querySelectorAll('#labels image, #labels script').length") == 0
            assert hostile.text_content("#labels svg text") == "kept"
            hostile.close()

            page.set_viewport_size({"width": 390, "height": 900})  # a phone: nothing runs off the side
            page.wait_for_function("document.documentElement.scrollWidth <= 390")
            page.screenshot(path=str(tmp_path / "dashboard-phone.png"), full_page=True)
        finally:
            browser.close()

    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000
    assert errors == []
    assert all(url.startswith(base_url) for url in requested), "the dashboard must not fetch anything external"


def _moving_rows() -> list[dict[str, object]]:
    """Acme falls from 0.8 to 0.2 this week, Globex rises from 0.3 to 0.7; Initech has too few reviews."""
    rng = random.Random(5)
    now = datetime.now(UTC)
    plan = [("Acme", 0.8, 0.2, 8), ("Globex", 0.3, 0.7, 8), ("Initech", 0.5, 0.5, 2)]
    rows = []
    for brand, before, after, count in plan:
        for days_ago, score in ((9, before), (2, after)):
            for _ in range(count):
                i = len(rows)
                moment = now - timedelta(days=days_ago, minutes=i)
                rows.append(
                    make_row(i, rng, brand=brand, sentiment_score=score, label=label_for(score), created_on=moment)
                )
    return rows


@pytest.mark.skipif(_browser_unavailable() is not None, reason=str(_browser_unavailable()))
def test_the_dashboard_lists_the_brands_moving_most_and_a_click_shows_one(
    database_url: str, readonly_database_url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    insert_rows(database_url, _moving_rows())
    with live_server(build_app(readonly_database_url)) as base_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1200}, bypass_csp=True)  # wait_for_function
            _, errors = _watch(page)
            page.goto(base_url + "/")
            page.wait_for_selector("#movers[data-state=loaded]", timeout=15_000)
            brands = "[...document.querySelectorAll('#movers tbody tr')].map(r => r.dataset.brand).join()"

            assert page.evaluate(brands) == "Acme,Globex"  # Initech: 2 reviews a window, under the minimum
            first = page.eval_on_selector_all("#movers tbody tr:first-child td", "tds => tds.map(t => t.textContent)")
            assert first == ["Acme", "8 (8)", "0.20 (0.80)", "−0.60", "100% (+100 pt)"]
            assert page.get_attribute("#movers tbody tr:first-child td:nth-child(4)", "class") == "negative"
            assert "against the 7 days before" in page.inner_text("#movers-window")

            page.select_option("#movers-order", "rising")
            page.wait_for_function(f"{brands} === 'Globex,Acme'")
            page.select_option("#movers-days", "30")  # both windows: the older reviews fall in the current one
            page.wait_for_function("document.querySelector('#movers td.empty') !== null")

            page.select_option("#movers-days", "7")
            page.wait_for_function(f"{brands} === 'Globex,Acme'")
            page.click("#movers tbody tr[data-brand=Acme] button")  # picks the brand for the whole page
            page.wait_for_function(
                "(rows => rows.length === 16 && rows.every(tr => tr.cells[1].textContent === 'Acme'))"
                "([...document.querySelectorAll('#reviews tbody tr[data-id]')])"
            )
            assert page.input_value("#brand") == "Acme"
            # The panel still compares the brands, the picked one marked.
            page.wait_for_selector("#movers tbody tr.picked[data-brand=Acme]")
            assert page.evaluate(brands) == "Globex,Acme"
            assert page.get_attribute("#movers tr.picked button", "aria-pressed") == "true"
            page.screenshot(path=str(tmp_path / "dashboard-movers.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []


def _score_the_next_submission(database_url: str, kafka_settings: KafkaSettings) -> threading.Thread:
    """Play the stream worker: take the submitted message from the topic and write its scored row."""

    def run() -> None:
        [(_, value)] = read_topic(kafka_settings, 1, timeout=30)
        message = parse_message(value)
        row = make_rows(1)[0]
        row.pop("created_on")
        row.update(  # the message's own fields, as the worker stores them (the Location's version is theirs)
            {column: getattr(message, name) for name, column in REVIEW_COLUMNS.items()},
            review_key=message.review_key,
            source=message.source,
            sentiment_score=0.93,
            confidence=0.88,
            label="positive",
            suggested_rating=5,
        )
        insert_rows(database_url, [row])

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.skipif(_browser_unavailable() is not None, reason=str(_browser_unavailable()))
def test_the_api_docs_page_renders_every_endpoint_from_the_apps_own_files(readonly_database_url: str) -> None:
    """FastAPI's page loads Swagger UI from jsDelivr: blank on a machine that cannot reach it."""
    from playwright.sync_api import sync_playwright

    with live_server(build_app(readonly_database_url)) as base_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            requested, errors = _watch(page)
            page.goto(base_url + "/docs")
            page.wait_for_selector("#operations-sentiments-list_sentiments_sentiments__get", timeout=15_000)
            shown = page.eval_on_selector_all(".opblock-summary-path", "paths => paths.map(p => p.dataset.path)")
        finally:
            browser.close()

    assert {"/sentiments/", "/sentiments/by-key/{review_key}", "/brands/trends"} <= set(shown)
    assert errors == []
    assert all(url.startswith(base_url) for url in requested), [u for u in requested if not u.startswith(base_url)]
