"""Pure pieces of the API: cursors, format negotiation, chart rendering, filter fingerprints, statements."""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from collections.abc import Generator
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.dialects import postgresql
from starlette.requests import ClientDisconnect

from query_api import queries
from query_api.charts import Point, StarRow, labels_svg, score_color, stars_svg, timeline_svg
from query_api.cursor import Cursor, CursorError, decode_cursor, encode_cursor
from query_api.export import ExportResponse, NotAcceptableError, defuse_formula, encode_csv, negotiate_format
from query_api.filters import Filters
from query_api.queries import SHAPES_KEPT, list_query, stats_query, stats_statement
from query_api.routes.dashboard import describe_filters


@pytest.mark.parametrize(
    "cursor",
    [
        Cursor("newest", datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=UTC), 42, "abc"),
        Cursor("oldest", datetime(2026, 3, 2, tzinfo=UTC), 1, "abc"),
        Cursor("score_desc", 0.1 + 0.2, 2**62, "abc"),
        Cursor("score_asc", 0.0, 7, ""),
    ],
)
def test_a_cursor_round_trips_exactly(cursor: Cursor) -> None:
    token = encode_cursor(cursor)
    assert "=" not in token
    assert decode_cursor(token, cursor.sort, cursor.filters) == cursor


def test_a_cursor_refuses_other_sorts_filters_and_forged_values() -> None:
    token = encode_cursor(Cursor("newest", datetime(2026, 1, 1, tzinfo=UTC), 5, "f1"))
    with pytest.raises(CursorError, match="sort"):
        decode_cursor(token, "oldest", "f1")
    with pytest.raises(CursorError, match="filters"):
        decode_cursor(token, "newest", "f2")
    naive = encode_cursor(Cursor("newest", datetime(2026, 1, 1), 5, "f1"))
    with pytest.raises(CursorError):
        decode_cursor(naive, "newest", "f1")
    huge = encode_cursor(Cursor("score_asc", 0.5, 2**64, "f1"))
    with pytest.raises(CursorError):
        decode_cursor(huge, "score_asc", "f1")
    for forged in (float("nan"), float("inf")):
        with pytest.raises(CursorError):
            decode_cursor(encode_cursor(Cursor("score_asc", forged, 5, "f1")), "score_asc", "f1")
    edge = encode_cursor(Cursor("newest", datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=23))), 5, "f1"))
    with pytest.raises(CursorError):
        decode_cursor(edge, "newest", "f1")


def test_a_cursor_offset_postgres_refuses_is_read_as_the_same_instant_in_utc() -> None:
    far = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=23, minutes=59)))
    decoded = decode_cursor(encode_cursor(Cursor("newest", far, 5, "f1")), "newest", "f1")
    assert decoded.key == far
    assert isinstance(decoded.key, datetime)
    assert decoded.key.utcoffset() == timedelta(0)


def test_filters_fingerprint_changes_with_any_filter() -> None:
    base = Filters()
    assert base.digest() == Filters().digest()
    moment = datetime(2026, 11, 1, tzinfo=UTC)
    digests = {
        base.digest(),
        Filters(brand="a").digest(),
        Filters(source="a").digest(),
        Filters(q="a").digest(),
        Filters(since=moment).digest(),
        Filters(published_since=moment).digest(),
        Filters(published_until=moment).digest(),
    }
    assert len(digests) == 7


def test_cursors_issued_before_the_publication_filters_existed_stay_valid() -> None:
    """The fingerprints of the first eight filters, as the API computed them before
    published_since/published_until: a walk begun before an upgrade (or on a replica not yet
    upgraded) continues after it."""
    assert Filters().digest() == "99e070e52464"
    since = datetime(2026, 11, 1, tzinfo=UTC)
    assert Filters(brand="Acme", label="negative", since=since, q="late").digest() == "fbaafe365f87"


def test_cursors_issued_before_the_rating_and_model_filters_existed_stay_valid() -> None:
    """The fingerprints the API gave filters with a publication range before min_rating,
    max_rating and model_version; the new filters change the fingerprint only when set."""
    moment = datetime(2026, 11, 1, tzinfo=UTC)
    assert Filters(brand="Acme", published_since=moment).digest() == "b57fd88d8ad9"
    assert Filters(published_until=moment, q="late").digest() == "8ab2f3817ddc"
    assert len({Filters().digest(), Filters(min_rating=4).digest(), Filters(max_rating=4).digest()}) == 3
    assert Filters(model_version="m1").digest() != Filters(model_version="m2").digest()
    assert Filters(lang="en").digest() != Filters(lang="fr").digest() != Filters().digest()


@pytest.mark.parametrize(
    ("filters", "title"),
    [
        (Filters(), "all brands"),
        (Filters(brand="Acme", label="negative", q="late"), "Acme · negative · “late”"),
        (Filters(source="scraper:trustpilot"), "all brands · scraper:trustpilot"),
        (Filters(label="negative", min_rating=4, max_rating=5), "all brands · negative · 4–5★"),
        (Filters(min_rating=5, max_rating=5), "all brands · 5★"),
        (Filters(min_rating=2), "all brands · ≥ 2★"),
        (Filters(max_rating=2, model_version="m-1"), "all brands · ≤ 2★ · model m-1"),
        (
            Filters(since=datetime(2026, 11, 1, tzinfo=UTC), until=datetime(2026, 12, 1, tzinfo=UTC)),
            "all brands · scored 2026-11-01 – 2026-11-30",
        ),
        (Filters(published_since=datetime(2026, 11, 1, tzinfo=UTC)), "all brands · published since 2026-11-01"),
        (
            Filters(published_until=datetime(2026, 11, 5, 12, 30, tzinfo=UTC)),
            "all brands · published until 2026-11-05 12:30 UTC",
        ),
        (
            Filters(since=datetime(2026, 11, 1, 1, tzinfo=timezone(timedelta(hours=2)))),
            "all brands · scored since 2026-10-31 23:00 UTC",
        ),
        (
            Filters(since=datetime(2026, 11, 1, tzinfo=UTC), until=datetime(2026, 11, 1, tzinfo=UTC)),
            "all brands · scored (an empty range)",  # not "2026-11-01 – 2026-10-31"
        ),
    ],
)
def test_a_chart_title_says_the_date_ranges_it_counts_the_last_whole_day_included(filters: Filters, title: str) -> None:
    assert describe_filters(filters) == title


@pytest.mark.parametrize(
    ("requested", "accept", "chosen"),
    [
        (None, None, "csv"),
        (None, "application/x-ndjson", "ndjson"),
        (None, "text/html, application/jsonl;q=0.9", "ndjson"),
        (None, "text/*", "csv"),
        ("ndjson", "text/csv", "ndjson"),
        (None, "", "csv"),
        (None, "text/csv, application/x-ndjson", "csv"),  # a tie: the first listed
        (None, "application/x-ndjson, text/csv", "ndjson"),
        (None, "text/csv;q=0.4, application/*;q=0.5", "ndjson"),
        (None, "text/*;q=0, */*", "ndjson"),  # the most specific range decides: CSV refused
        (None, "text/csv;q=oops", "csv"),
    ],
)
def test_export_format_negotiation(requested: str | None, accept: str | None, chosen: str) -> None:
    assert negotiate_format(requested, accept) == chosen  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        ("application/x-ndjson;q=0.5, text/csv;q=0.8", "csv"),
        ("text/csv;q=0.5, application/x-ndjson;q=0.8", "ndjson"),
        ("text/csv;q=0.3, application/ndjson;q=0.6", "ndjson"),  # an alias carries its own q
        ("*/*;q=0.5, application/*;q=0.4", "csv"),  # CSV through */*, NDJSON through application/*
        ("text/*;q=0.2, */*;q=0.9", "ndjson"),  # text/* is the more specific for CSV: 0.2
        ("text/csv;q=0.001, image/png", "csv"),  # any q above 0 accepts
    ],
)
def test_the_format_rated_highest_wins(accept: str, chosen: str) -> None:
    assert negotiate_format(None, accept) == chosen


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        ("application/*", "ndjson"),
        ("application/*;q=0.5", "ndjson"),
        ("*/*", "csv"),  # both match only through */*: CSV, the default
        ("image/*, text/*;q=0.1", "csv"),
        ("application/json;q=0, application/ndjson", "ndjson"),  # another name for NDJSON is accepted
        ("*/*;q=0, application/ndjson", "ndjson"),  # a named alias outranks the refusing */*
        ("application/json;q=0, */*", "csv"),  # refusing an alias refuses NDJSON; */* still takes CSV
    ],
)
def test_a_wildcard_rates_a_format_only_when_nothing_more_specific_names_it(accept: str, chosen: str) -> None:
    assert negotiate_format(None, accept) == chosen


@pytest.mark.parametrize(
    "accept",
    [
        "application/x-ndjson;q=0, application/*",  # x-ndjson is what the body is labelled
        "application/x-ndjson;q=0, application/ndjson",
        "application/ndjson;q=0, application/*",  # an alias names NDJSON more closely than a wildcard
        "text/csv;q=0, text/*",
        "text/csv;q=0, */*, application/x-ndjson;q=0",
    ],
)
def test_q_0_refuses_a_format_whatever_wildcard_follows(accept: str) -> None:
    with pytest.raises(NotAcceptableError):
        negotiate_format(None, accept)


def test_q_0_on_one_format_leaves_the_other() -> None:
    assert negotiate_format(None, "application/x-ndjson;q=0, application/*, text/csv;q=0.1") == "csv"
    assert negotiate_format(None, "text/csv;q=0, */*;q=0.1") == "ndjson"


@pytest.mark.parametrize("accept", ["image/png", "text/csv;q=0", "*/*;q=0"])
def test_an_accept_header_that_refuses_both_formats_is_not_acceptable(accept: str) -> None:
    with pytest.raises(NotAcceptableError):
        negotiate_format(None, accept)
    assert negotiate_format("ndjson", accept) == "ndjson"  # ?format= still wins


class _Chunks:
    """An export generator that records whether it was closed (as the connection is given back)."""

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Generator[bytes, None, None]:
        try:
            yield b"id\r\n"
            yield b"1\r\n"
        finally:
            self.closed = True


def _serve(response: ExportResponse, spec_version: str, fail_on: str | None, client_leaves: bool) -> None:
    """Run ``response`` as a server would: ``send`` raises OSError on message type ``fail_on`` (ASGI
    2.4 servers report a gone client so); with ``client_leaves``, a client that never reads the body
    (each body send blocks) and then disconnects (ASGI 2.3 servers report that through receive)."""
    started = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await started.wait()
        if client_leaves:
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()  # the client stays
        return {}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == fail_on:
            raise OSError("connection reset by peer")
        started.set()
        if client_leaves and message["type"] == "http.response.body":
            await asyncio.Event().wait()  # the socket buffer is full: the send never completes

    asyncio.run(response({"type": "http", "asgi": {"spec_version": spec_version}}, receive, send))


@pytest.mark.parametrize(
    ("spec_version", "fail_on", "client_leaves"),
    [
        ("2.3", None, False),  # the whole body is sent
        ("2.3", None, True),  # the client leaves while the body waits to be sent: the send is cancelled
        ("2.4", "http.response.start", False),  # the client left before the body
        ("2.4", "http.response.body", False),  # ... or during it
    ],
)
def test_an_export_response_closes_its_generator_however_the_response_ends(
    spec_version: str, fail_on: str | None, client_leaves: bool
) -> None:
    """Closing the generator is what gives its database connection back; Starlette's own
    StreamingResponse leaves a generator it did not finish to garbage collection."""
    source = _Chunks()
    chunks = iter(source)
    next(chunks)  # as the route does: the generator is started, its connection checked out
    response = ExportResponse(chunks, media_type="text/csv", headers={})
    if fail_on is None:
        _serve(response, spec_version, fail_on, client_leaves)
    else:
        with pytest.raises(ClientDisconnect):
            _serve(response, spec_version, fail_on, client_leaves)
    assert source.closed


def test_only_text_cells_that_start_like_a_formula_get_a_quote() -> None:
    assert [defuse_formula(t) for t in ("=1+1", "+3", "-x", "@A1", "\tx", "\rx")] == [
        "'=1+1",
        "'+3",
        "'-x",
        "'@A1",
        "'\tx",
        "'\rx",
    ]
    assert defuse_formula("fine = good") == "fine = good"
    row = [1, "=k", "=s", -0.5, 0.9, "neutral", 3, None, "user", None, None, None, None, "m", None, None]
    assert encode_csv([row], header=False) == "1,'=k,'=s,-0.5,0.9,neutral,3,,user,,,,,m,,\r\n"


def test_csv_quotes_commas_quotes_and_newlines() -> None:
    row = [
        1,
        "k",
        'said "hi", then\nleft',
        0.5,
        0.9,
        "neutral",
        3,
        None,
        "user",
        None,
        None,
        None,
        None,
        "m",
        None,
        None,
    ]
    text = encode_csv([row], header=False)
    assert text.startswith('1,k,"said ""hi"", then\nleft",0.5')


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_the_timeline_is_well_formed_svg_with_a_bar_and_a_dot_per_bucket() -> None:
    start = datetime(2026, 3, 2, tzinfo=UTC)
    points = [Point(start + timedelta(days=i), 10 + i, i / 10) for i in range(8)]
    root = _parse(timeline_svg(points, 'Acme & "Sons" <b>', "day"))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f".//{ns}rect")) == 8
    assert len(root.findall(f".//{ns}circle")) == 8
    assert root.find(f"{ns}title").text == 'Acme & "Sons" <b>'  # type: ignore[union-attr]
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "2026-03-02" in texts
    assert "2026-03-09" in texts
    assert {"mean score (left)", "reviews (right)"} <= set(texts)  # the legend: which mark, which axis


def test_the_timeline_places_buckets_by_time_and_breaks_the_line_across_empty_ones() -> None:
    """Drawn one after another, a gap of seven months looked like a gap of a day."""
    start = datetime(2026, 3, 8, tzinfo=UTC)
    days = [0, 1, 2, 21, 231]  # 03-08, 03-09, 03-10, 03-29, 10-25
    root = _parse(timeline_svg([Point(start + timedelta(days=d), 5, 0.5) for d in days], "gaps", "day"))
    ns = "{http://www.w3.org/2000/svg}"

    xs = [float(c.get("cx") or 0) for c in root.findall(f".//{ns}circle")]
    gaps = [b - a for a, b in pairwise(xs)]
    assert gaps[0] == pytest.approx(gaps[1])
    assert gaps[2] == pytest.approx(gaps[0] * 19, rel=0.01)
    assert gaps[3] == pytest.approx(gaps[0] * 210, rel=0.01)
    lines = root.findall(f".//{ns}polyline")
    assert [len((line.get("points") or "").split()) for line in lines] == [3]  # only 03-08..03-10 join
    ticks = [t.text for t in root.iter(f"{ns}text") if (t.text or "").startswith("2026-")]
    assert ticks == ["2026-03-08", "2026-07-01", "2026-10-25"]  # the middle tick is the middle of the axis


def test_a_long_title_is_cut_on_the_chart_and_kept_whole_in_its_title_element() -> None:
    title = "Mean sentiment per day — " + "A very long brand name " * 5
    point = Point(datetime(2026, 3, 2, tzinfo=UTC), 3, 0.5)
    root = _parse(timeline_svg([point], title))
    ns = "{http://www.w3.org/2000/svg}"
    assert root.find(f"{ns}title").text == title  # type: ignore[union-attr]
    shown = next(root.iter(f"{ns}text")).text or ""
    assert shown.endswith("…")
    assert 40 <= len(shown) <= 48


@pytest.mark.parametrize("brand", ["W" * 256, "東京電力ホールディングス" * 10, "m" * 256])
def test_a_line_of_wide_characters_is_cut_before_it_runs_off_the_chart(brand: str) -> None:
    """Cut by count alone, 113 capital Ws ran to x = 1,269 on a 720-wide chart."""
    point = Point(datetime(2026, 3, 2, tzinfo=UTC), 3, 0.5)
    ns = "{http://www.w3.org/2000/svg}"
    for svg, room in ((timeline_svg([point], "t", subtitle=brand), 680), (labels_svg({}, "t", subtitle=brand), 352)):
        (line,) = [t.text or "" for t in _parse(svg).iter(f"{ns}text") if t.get("class") == "subtitle"]
        assert line.endswith("…")
        # Widest advances at 11 px in common sans-serif fonts: CJK 11 px, "W" and "m" about 10.5.
        assert sum(11 if ord(c) > 0x2E80 else 10.5 for c in line[:-1]) <= room


def test_characters_xml_cannot_hold_do_not_break_the_chart() -> None:
    """A vertical tab in a brand name made both charts unparseable: the page showed neither."""
    point = Point(datetime(2026, 3, 2, tzinfo=UTC), 3, 0.5)
    for svg in (timeline_svg([point], "t", subtitle="Wa\x0bb\x00c\ufffe"), labels_svg({}, "t", subtitle="Wa\x0bb")):
        root = _parse(svg)
        assert "Wa\ufffdb" in (root.find("{http://www.w3.org/2000/svg}title").text or "")  # type: ignore[union-attr]


def test_what_a_chart_counts_has_a_line_of_its_own_and_is_whole_in_its_title_element() -> None:
    """After the title, the filters were cut off beside the legend: a date range never showed."""
    scope = "Acme · scraper:trustpilot · negative · published 2026-11-01 – 2026-11-30"
    point = Point(datetime(2026, 3, 2, tzinfo=UTC), 3, 0.5)
    ns = "{http://www.w3.org/2000/svg}"
    timeline = timeline_svg([point], "Mean sentiment per day", subtitle=scope)
    labels = labels_svg({}, "Labels", subtitle=scope)  # half as wide: cut, and whole in the tooltip
    lines = {}
    for name, svg in (("timeline", timeline), ("labels", labels)):
        root = _parse(svg)
        assert root.find(f"{ns}title").text.endswith(" — " + scope)  # type: ignore[union-attr]
        (lines[name],) = [t.text or "" for t in root.iter(f"{ns}text") if t.get("class") == "subtitle"]
    assert lines["timeline"] == scope
    assert lines["labels"].endswith("…")
    assert scope.startswith(lines["labels"][:-1])


def test_the_timeline_of_nothing_says_so_and_hours_are_labelled() -> None:
    assert "no reviews match" in timeline_svg([], "empty")
    one = timeline_svg([Point(datetime(2026, 3, 2, 13, tzinfo=UTC), 3, 0.5)], "one", "hour")
    assert "2026-03-02 13:00" in one
    _parse(one)


def test_buckets_are_labelled_as_utc_days_whatever_zone_the_instant_came_in() -> None:
    new_york_midnight_utc = datetime(2026, 3, 1, 19, tzinfo=timezone(timedelta(hours=-5)))  # 2026-03-02 00:00Z
    svg = timeline_svg([Point(new_york_midnight_utc, 3, 0.5)], "one", "day")
    assert "2026-03-02" in svg
    assert "2026-03-01" not in svg


def test_the_label_chart_shows_shares() -> None:
    svg = labels_svg({"negative": 1, "neutral": 1, "positive": 2}, "labels")
    _parse(svg)
    assert ">2 (50%)<" in svg
    assert svg.count(">1 (25%)<") == 2


@pytest.mark.parametrize(("score", "color"), [(0.0, "#c0393c"), (0.5, "#c0a03c"), (1.0, "#2e8b3c"), (7.0, "#2e8b3c")])
def test_score_colours_run_from_red_to_green(score: float, color: str) -> None:
    assert score_color(score) == color


def test_requests_of_one_shape_share_one_statement_and_bind_every_value() -> None:
    first, first_params = list_query(Filters(brand="Acme", q="late delivery"), "newest", None, 10)
    again, again_params = list_query(Filters(brand="Globex", q="refund"), "newest", None, 20)
    blank_q, _ = list_query(Filters(brand="Acme", q="  "), "newest", None, 10)
    after = Cursor("newest", datetime(2026, 1, 1, tzinfo=UTC), 7, "")
    walking, walking_params = list_query(Filters(brand="Acme", q="late"), "newest", after, 10)

    assert again is first
    assert again_params == {"brand": "Globex", "q": "refund", "limit": 21}
    assert blank_q is not first  # a blank q is no filter at all
    assert walking is not first
    assert walking_params == {"brand": "Acme", "q": "late", "limit": 11, "after_key": after.key, "after_id": 7}
    for statement, params in ((first, first_params), (walking, walking_params)):
        assert set(statement.compile(dialect=postgresql.dialect()).binds) == set(params)


def test_the_dashboard_keeps_every_element_and_attribute_the_charts_draw_with() -> None:
    """The page strips anything else from a chart before it enters the DOM (dashboard.js,
    ``inertChart``); a chart drawn with something new must be allowed there too, or it is lost."""
    script = (Path(__file__).resolve().parents[2] / "query_api" / "static" / "dashboard.js").read_text()

    def allowed(name: str) -> set[str]:
        match = re.search(rf"const {name} = new Set\(\[(.*?)\]\);", script, re.S)
        assert match, name
        return set(re.findall(r'"([^"]+)"', match.group(1)))

    elements, attributes = set(), set()
    points = [Point(datetime(2026, 3, 2, tzinfo=UTC) + timedelta(days=d), 3, 0.5) for d in (0, 1, 5)]
    stars = [StarRow(5, {"positive": 3, "negative": 1}, 0.7), StarRow(None, {"neutral": 1}, 0.5)]
    charts = (
        timeline_svg(points, "t", subtitle="s"),
        timeline_svg([], "t"),
        labels_svg({"negative": 2}, "l"),
        stars_svg(stars, "s", subtitle="s"),
        stars_svg([], "s"),
    )
    for svg in charts:
        for element in _parse(svg).iter():
            elements.add(element.tag.split("}")[1])
            attributes |= set(element.attrib)
    assert elements <= allowed("CHART_ELEMENTS")
    assert attributes <= allowed("CHART_ATTRIBUTES")


def test_the_stars_chart_draws_each_rating_as_shares_of_the_labels_read_in_its_text() -> None:
    rows = [StarRow(5, {"negative": 1, "neutral": 0, "positive": 3}, 0.71), StarRow(1, {"negative": 2}, 0.1)]
    svg = _parse(stars_svg(rows, "Text against stars", subtitle="Acme"))
    ns = {"s": "http://www.w3.org/2000/svg"}
    bars = svg.findall(".//s:rect[@class='star-bar']", ns)
    assert [(bar.get("data-label"), bar.find("s:title", ns).text) for bar in bars] == [  # type: ignore[union-attr]
        ("negative", "5★: 1 negative (25% of 4)"),
        ("positive", "5★: 3 positive (75% of 4)"),
        ("negative", "1★: 2 negative (100% of 2)"),
    ]
    five = [float(bar.get("width", "0")) for bar in bars[:2]]
    assert five[1] == pytest.approx(3 * five[0], rel=0.01)  # shares of one full-width bar
    assert sum(five) == pytest.approx(float(bars[2].get("width", "0")), rel=0.01)
    texts = [t.text for t in svg.findall(".//s:text", ns)]
    assert "4 · mean 0.71" in texts
    assert texts.count("0") == 4  # 4★, 3★, 2★ and "none" have no reviews here


@pytest.mark.parametrize(
    ("count", "shown"), [(999, "999"), (9_999, "9999"), (12_345, "12.3k"), (999_999, "1M"), (1_234_567, "1.23M")]
)
def test_the_stars_charts_counts_fit_the_right_column(count: int, shown: str) -> None:
    """The column right of the bars is 108 px wide: a six-digit count ran off the 360 px chart."""
    svg = _parse(stars_svg([StarRow(5, {"positive": count}, 0.5)], "s"))
    texts = [t.text for t in svg.findall(".//{http://www.w3.org/2000/svg}text")]
    assert f"{shown} · mean 0.50" in texts
    assert max(float(t.get("x", "0")) for t in svg.findall(".//{http://www.w3.org/2000/svg}text")) <= 360 - 108


def _trend(brand: str, before: float, after: float, count: int = 10) -> Any:
    from query_api.schemas import BrandTrend, WindowFigures

    return BrandTrend(
        brand=brand,
        change=after - before,
        negative_share_change=0.0,
        current=WindowFigures(count=count, mean_score=after, negative_share=0.1),
        previous=WindowFigures(count=count + 2, mean_score=before, negative_share=0.1),
    )


def test_the_alert_text_names_each_fall_with_its_means_and_counts() -> None:
    from query_api.queries import trend_windows
    from query_api.trends import alert_text

    windows = trend_windows(datetime(2026, 11, 24, tzinfo=UTC), 7)
    text = alert_text([_trend("Acme", 0.7, 0.5), _trend("Globex", 0.6, 0.45)], 0.1, windows, 7)
    assert text.splitlines() == [
        "2 brands fell by 0.10 or more in mean sentiment over 7 days from 2026-11-17:",
        "- Acme: -0.20 (0.70 -> 0.50), 10 reviews (before: 12), negative 10% (before: 10%)",
        "- Globex: -0.15 (0.60 -> 0.45), 10 reviews (before: 12), negative 10% (before: 10%)",
    ]
    part_day = trend_windows(datetime(2026, 11, 24, 13, 30, tzinfo=UTC), 1)
    assert alert_text([_trend("Acme", 0.7, 0.5)], 0.1, part_day, 1).startswith(
        "1 brand fell by 0.10 or more in mean sentiment over 1 day from 2026-11-23 13:30 UTC:"
    )


STATS_REQUESTS = [
    # (group_by, bucket, time_field, filters of one shape, filters of the same shape)
    (
        None,
        "day",
        "created_on",
        Filters(brand="Acme", since=datetime(2026, 1, 1, tzinfo=UTC)),
        Filters(brand="Globex", since=datetime(2026, 3, 1, tzinfo=UTC)),
    ),
    (
        "label",
        "week",
        "created_on",
        Filters(source="user", until=datetime(2026, 2, 2)),
        Filters(source="scraper:x", until=datetime(2027, 1, 1)),
    ),
    ("rating", None, "created_on", Filters(min_rating=2, max_rating=4), Filters(min_rating=1, max_rating=5)),
    ("brand", None, "created_on", Filters(), Filters()),
    (None, "hour", "created_on", Filters(brand="Acme", q="late"), Filters(brand="Initech", q="refund")),
    (
        "source",
        "day",
        "published_at",
        Filters(label="negative", min_score=0.2),
        Filters(label="positive", min_score=0.7),
    ),
    (
        None,
        "day",
        "created_on",
        Filters(since=datetime(2026, 1, 1, 12, tzinfo=UTC)),
        Filters(since=datetime(2026, 5, 1, 6, tzinfo=UTC)),
    ),
]


@pytest.mark.parametrize(("group_by", "bucket", "time_field", "one", "other"), STATS_REQUESTS)
def test_stats_requests_of_one_shape_share_a_statement_that_binds_their_own_values(
    group_by: Any, bucket: Any, time_field: Any, one: Filters, other: Filters
) -> None:
    first, _ = stats_query(one, group_by, bucket, time_field, 100)
    again, params = stats_query(other, group_by, bucket, time_field, 100)
    assert again is first

    def sql(statement: Any) -> str:
        return str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))

    # The shared statement with this request's values is the statement built for this request alone.
    assert sql(again.params(params)) == sql(stats_statement(other, group_by, bucket, time_field, 100))


def test_stats_requests_of_other_shapes_get_other_statements() -> None:
    base, _ = stats_query(Filters(brand="Acme"), None, "day", "created_on", 100)
    for filters, bucket, time_field in [
        (Filters(brand="Acme", source="user"), "day", "created_on"),
        (Filters(brand="Acme"), "week", "created_on"),
        (Filters(brand="Acme"), "day", "published_at"),
        (
            Filters(brand="Acme", since=datetime(2026, 1, 1, 1, tzinfo=UTC)),
            "day",
            "created_on",
        ),  # not a whole day: the rows
        (Filters(brand="Acme", q="x"), "day", "created_on"),
    ]:
        assert stats_query(filters, None, bucket, time_field, 100)[0] is not base
    assert stats_query(Filters(brand="Acme"), None, "day", "created_on", 5)[0] is not base
    assert (
        stats_query(Filters(brand="Acme", q="  "), None, "day", "created_on", 100)[0] is base
    )  # a blank q filters nothing


def test_a_client_asking_for_every_shape_cannot_grow_the_statements_kept() -> None:
    for max_rows in range(1, 2 * SHAPES_KEPT + 2):
        stats_query(Filters(brand="Acme"), None, "day", "created_on", max_rows)
        list_query(Filters(brand="Acme"), "newest", None, max_rows)  # one shape: the limit is bound
    assert 0 < len(queries._STATS) <= SHAPES_KEPT
    assert 0 < len(queries._PAGES) <= SHAPES_KEPT
    again, _ = stats_query(Filters(brand="Acme"), None, "day", "created_on", 2 * SHAPES_KEPT + 1)
    assert again is stats_query(Filters(brand="Globex"), None, "day", "created_on", 2 * SHAPES_KEPT + 1)[0]
