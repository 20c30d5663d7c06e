"""A keyset walk over 1,000 rows while the worker keeps inserting: no duplicates, no gaps."""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.api import T0, build_app, insert_rows, make_rows

pytestmark = pytest.mark.integration


def _walk_while_inserting(
    database_url: str, readonly_database_url: str, params: dict[str, Any]
) -> tuple[list[int], list[int], list[int]]:
    """(ids present before the walk, ids served, ids inserted during the walk).

    Inserted rows get timestamps and scores spread over the whole seeded range, so they land
    both behind and ahead of the walk's position, whatever the sort.
    """
    before = insert_rows(database_url, make_rows(1000, seed=11))
    inserted: list[int] = []
    stop = threading.Event()
    page_seen = threading.Event()

    def writer() -> None:
        batch = 0
        rng = random.Random(5)
        while not stop.is_set():
            page_seen.wait(5)
            rows = make_rows(5, seed=100 + batch, start=10_000 + batch * 5)
            for row in rows:
                row["created_on"] = T0 + timedelta(minutes=rng.uniform(0, 37 * 1000))
            inserted.extend(insert_rows(database_url, rows))
            batch += 1
            page_seen.clear()

    served: list[int] = []
    thread = threading.Thread(target=writer)
    with TestClient(build_app(readonly_database_url)) as client:
        thread.start()
        try:
            cursor = None
            while True:
                query = {**params, "limit": 40, **({"cursor": cursor} if cursor else {})}
                body = client.get("/sentiments/", params=query).json()
                served.extend(item["id"] for item in body["items"])
                page_seen.set()  # let the writer commit rows between this page and the next
                cursor = body["next_cursor"]
                if cursor is None:
                    break
        finally:
            stop.set()
            page_seen.set()
            thread.join()
    return before, served, inserted


@pytest.mark.parametrize("sort", ["newest", "oldest", "score_desc", "score_asc"])
def test_a_walk_with_concurrent_inserts_serves_every_existing_row_exactly_once(
    database_url: str, readonly_database_url: str, sort: str
) -> None:
    before, served, inserted = _walk_while_inserting(database_url, readonly_database_url, {"sort": sort})

    assert len(inserted) >= 50, "rows must really have been inserted during the walk"
    assert len(served) == len(set(served)), "no row may be served twice"
    assert set(before) <= set(served), "no row that existed before the walk may be skipped"
    assert set(served) <= set(before) | set(inserted)
