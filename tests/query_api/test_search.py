"""?q= searches the text as the search indexer last wrote it: new and re-worded reviews once it has passed."""

from __future__ import annotations

import random

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, pool, text

from core.db import sqlalchemy_url
from tests.fixtures.api import build_app, index_search, insert_rows, make_row
from tests.fixtures.stream import wait_until

pytestmark = pytest.mark.integration


def found(client: TestClient, q: str, **params: str) -> list[str]:
    response = client.get("/sentiments/", params={"q": q, "sort": "oldest", **params})
    assert response.status_code == 200, response.text
    return [item["sentence"] for item in response.json()["items"]]


def test_search_finds_reviews_by_their_words_once_indexed_and_an_edit_once_reindexed(
    database_url: str, readonly_database_url: str
) -> None:
    rng = random.Random(3)
    sentences = ["Refund denied twice", "Refunds took weeks", "Refund requested today"]
    insert_rows(database_url, [make_row(i, rng, sentence=s) for i, s in enumerate(sentences)])
    assert index_search(database_url, limit=2) == 2  # the third is still queued
    # The read cache is on (its default): an answer it keeps must go when the indexer writes.
    with TestClient(build_app(readonly_database_url, read_cache_max_age=3600)) as client:
        assert found(client, "refund") == ["Refund denied twice", "Refunds took weeks"]
        assert found(client, "refund", brand="nobody") == []  # other filters still apply

        writer = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
        with writer.begin() as conn:
            conn.execute(text("UPDATE sentiments SET sentence = 'Fast delivery' WHERE sentence = 'Refunds took weeks'"))
        writer.dispose()
        # Until the indexer passes, the edited review is found by the words it had.
        assert found(client, "refund") == ["Refund denied twice", "Fast delivery"]

        assert index_search(database_url) == 2  # the queued one and the edit
        now = ["Refund denied twice", "Refund requested today"]
        wait_until(lambda: found(client, "refund") == now, 10, what="the indexer's notification to drop the answer")
        assert found(client, "delivery") == ["Fast delivery"]
