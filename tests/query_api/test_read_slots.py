"""Reads are admitted a few at a time per process, in arrival order, and a slow one cannot hold
up the cheap ones behind it (query_api/read_slots.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, pool, text

from core.db import sqlalchemy_url
from query_api.read_slots import ReadSlots
from tests.fixtures.api import Seeded, api_reads_waiting_on_a_lock, build_app


async def _read(slots: ReadSlots, name: str, log: list[str], gate: asyncio.Event) -> None:
    async with slots.slot():
        log.append(f"in {name}")
        await gate.wait()
        log.append(f"out {name}")


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_no_more_than_the_limit_run_at_once_and_the_rest_go_in_arrival_order() -> None:
    async def scenario() -> list[str]:
        slots, log = ReadSlots(limit=2, hold=60), []
        gates = {name: asyncio.Event() for name in "abcde"}
        tasks = []
        for name in "abcde":
            tasks.append(asyncio.create_task(_read(slots, name, log, gates[name])))
            await _settle()
        assert (slots.running, slots.waiting) == (2, 3)
        for name in "bacde":  # b ends first: c, the longest waiting, goes in, then d and e in turn
            gates[name].set()
            await _settle()
        await asyncio.gather(*tasks)
        assert (slots.running, slots.waiting) == (0, 0)
        return log

    log = asyncio.run(scenario())
    assert [entry for entry in log if entry.startswith("in")] == ["in a", "in b", "in c", "in d", "in e"]
    assert log.index("in c") > log.index("out b")
    assert log.index("in d") > log.index("out a")


def test_a_read_longer_than_the_hold_lets_the_next_one_in() -> None:
    async def scenario() -> tuple[float, list[str]]:
        slots, log = ReadSlots(limit=1, hold=0.05), []
        slow, quick = asyncio.Event(), asyncio.Event()
        quick.set()
        stuck = asyncio.create_task(_read(slots, "slow", log, slow))
        await _settle()
        started = time.monotonic()
        await asyncio.wait_for(_read(slots, "quick", log, quick), 5)
        waited = time.monotonic() - started
        assert not stuck.done()
        slow.set()
        await stuck
        assert (slots.running, slots.waiting) == (0, 0)
        return waited, log

    waited, log = asyncio.run(scenario())
    assert 0.04 <= waited < 1
    assert log == ["in slow", "in quick", "out quick", "out slow"]


async def _one_in_two_waiting(slots: ReadSlots, log: list[str]) -> tuple[asyncio.Event, list[asyncio.Task[None]]]:
    """One slot: "first" holds it until the event is set; "leaving", then "staying", wait for it."""
    first, later = asyncio.Event(), asyncio.Event()
    later.set()
    tasks = [asyncio.create_task(_read(slots, "first", log, first))]
    await _settle()
    tasks += [asyncio.create_task(_read(slots, name, log, later)) for name in ("leaving", "staying")]
    await _settle()
    return first, tasks


def test_a_request_that_goes_away_while_waiting_takes_no_slot_with_it() -> None:
    async def scenario() -> list[str]:
        slots, log = ReadSlots(limit=1, hold=60), []
        first, (holder, leaving, staying) = await _one_in_two_waiting(slots, log)
        leaving.cancel()
        await _settle()
        assert slots.waiting == 1
        first.set()
        await asyncio.wait_for(asyncio.gather(holder, staying), 5)
        assert leaving.cancelled()
        assert (slots.running, slots.waiting) == (0, 0)
        return log

    assert asyncio.run(scenario()) == ["in first", "out first", "in staying", "out staying"]


def test_a_slot_handed_to_a_request_cancelled_in_the_same_instant_passes_on() -> None:
    async def scenario() -> list[str]:
        slots, log = ReadSlots(limit=1, hold=60), []
        first, (holder, leaving, staying) = await _one_in_two_waiting(slots, log)
        first.set()
        while slots.waiting == 2:  # until the holder leaves and hands its slot to "leaving"...
            await asyncio.sleep(0)
        leaving.cancel()  # ...which is cancelled before it has run again
        await asyncio.wait_for(asyncio.gather(holder, staying), 5)
        assert (slots.running, slots.waiting) == (0, 0)
        return log

    log = asyncio.run(scenario())
    assert "in leaving" not in log
    assert log[-2:] == ["in staying", "out staying"]


def test_a_limit_of_zero_admits_every_read_at_once() -> None:
    async def scenario() -> int:
        slots, log = ReadSlots(limit=0, hold=60), []
        gate = asyncio.Event()
        tasks = [asyncio.create_task(_read(slots, str(i), log, gate)) for i in range(50)]
        await _settle()
        inside = len(log)
        gate.set()
        await asyncio.gather(*tasks)
        return inside

    assert asyncio.run(scenario()) == 50


@pytest.mark.integration
@pytest.mark.parametrize("hold", [0.1, 60.0])
def test_a_read_stuck_in_postgresql_holds_up_the_next_ones_for_the_hold_at_most(
    seeded_api: Seeded, hold: float
) -> None:
    """One slot: a stats read waits on a lock on the rollup; a read by id and a lookup by key (other
    tables) go in once the stuck read has held its slot ``hold`` seconds, and not before."""
    row = seeded_api.rows[0]
    admin = create_engine(sqlalchemy_url(seeded_api.database_url), poolclass=pool.NullPool)
    app = build_app(seeded_api.readonly_url, read_concurrency=1, read_slot_hold=hold, read_cache_mb=0)
    try:
        with TestClient(app) as client, ThreadPoolExecutor(3) as background, admin.connect() as locker:
            locker.execute(text("LOCK TABLE sentiment_brand_daily IN ACCESS EXCLUSIVE MODE"))  # stats by day wait
            stuck = background.submit(client.get, "/sentiments/stats", params={"bucket": "day"})
            _wait_until(lambda: api_reads_waiting_on_a_lock(admin) == 1)
            started = time.monotonic()
            cheap = [
                background.submit(client.get, f"/sentiments/{row['id']}"),
                background.submit(client.get, f"/sentiments/by-key/{row['review_key']}"),
            ]
            if hold < 1:
                answers = [future.result(timeout=10) for future in cheap]
                answered_in = time.monotonic() - started
                assert not stuck.done()
            else:
                time.sleep(1)
                assert not any(future.done() for future in cheap)  # their turn comes when the stuck read ends
                metrics = client.get("/metrics").text
                assert "reviewscore_api_reads_running 1.0" in metrics
                assert "reviewscore_api_reads_waiting 2.0" in metrics
            locker.rollback()
            assert stuck.result(timeout=30).status_code == 200
            answers = [future.result(timeout=30) for future in cheap]
    finally:
        admin.dispose()
    assert [answer.status_code for answer in answers] == [200, 200]
    assert [answer.json()["id"] for answer in answers] == [row["id"], row["id"]]
    if hold < 1:
        assert answered_in < 2


def _wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the read never reached PostgreSQL")
        time.sleep(0.02)
