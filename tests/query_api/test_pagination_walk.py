"""A keyset walk over 1,000 rows while the worker keeps inserting: no duplicates, no gaps."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.fixtures.api import T0, build_app, fetch_all, insert_rows, make_rows
from tests.fixtures.database import READONLY_ROLE, _admin_engine, with_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def walk_db(pg_server_url: str, template_database: str) -> Iterator[tuple[str, TestClient]]:
    """1,000 rows in a database of this module's own (the walks add rows to it), and an app."""
    name = f"rs_walk_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine(pg_server_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}" STRATEGY FILE_COPY'))
        conn.execute(text(f'GRANT CONNECT ON DATABASE "{name}" TO {READONLY_ROLE}'))
    url = with_database(pg_server_url, name)
    try:
        insert_rows(url, make_rows(1000, seed=11))
        with TestClient(build_app(with_database(pg_server_url, name, user=READONLY_ROLE))) as client:
            yield url, client
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def interleaved_rows(rng: random.Random, batch: int) -> list[dict[str, object]]:
    """Five rows whose timestamps and scores fall anywhere in the seeded range: some land behind
    the walk's position, some ahead of it, whatever the sort."""
    rows = make_rows(5, seed=rng.randint(0, 10**9), start=10_000 + batch * 5)
    for row in rows:
        row["created_on"] = T0 + timedelta(minutes=rng.uniform(0, 37 * 1000))
    return rows


@pytest.mark.parametrize("sort", ["newest", "oldest", "score_desc", "score_asc"])
def test_a_walk_with_concurrent_inserts_serves_every_existing_row_exactly_once(
    walk_db: tuple[str, TestClient], sort: str
) -> None:
    database_url, client = walk_db
    before = {row["id"] for row in fetch_all(database_url)}
    rng = random.Random(sort)
    served: list[int] = []
    inserted: list[int] = []
    cursor = None
    batch = 0
    while True:
        # A writer commits rows while this page is being read: real concurrency, one batch per page.
        writer = threading.Thread(
            target=lambda b=batch: inserted.extend(insert_rows(database_url, interleaved_rows(rng, b)))
        )
        writer.start()
        query = {"sort": sort, "limit": 40, **({"cursor": cursor} if cursor else {})}
        body = client.get("/sentiments/", params=query).json()
        writer.join()
        batch += 1
        served.extend(item["id"] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert len(before) >= 1000
    assert len(inserted) >= 5 * 25, "rows must really have been inserted during the walk"
    assert len(served) == len(set(served)), "no row may be served twice"
    assert before <= set(served), "no row that existed before the walk may be skipped"
    assert set(served) <= before | set(inserted)
    assert set(served) & set(inserted), "rows inserted ahead of the position are served too"
