"""Rendered read answers, kept until the rows they came from change.

A year of one brand's daily stats costs ~7 ms of the API's CPU and a page of 50 rows ~2 ms, so
32 analysts on two cores queue far past 50 ms; most of them ask what another asked a moment ago
(the same brands, the first page, the dashboard's charts). The answer's bytes are kept under a
key made of the request's parsed inputs, and every entry is dropped when PostgreSQL announces a
write to ``sentiments`` (``query_api.change_listener``), so a hit returns what a fresh read would
have returned, short of the milliseconds a notification takes to arrive.

Plain data and no locks: every call comes from the event loop (the routes before and after their
hop to the thread pool, the listener from its reader callback).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import NamedTuple


class Cached(NamedTuple):
    """A 200 answer as it went out: its headers (content type and length included) and body."""

    raw_headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    stored_at: float
    size: int


class ReadCache:
    """A byte-bounded LRU of answers, valid for one generation of the data.

    ``generation`` counts announced changes. A route reads it before it queries and stores its
    answer under it; an answer whose query may have run before a change (the generation moved
    meanwhile) is not stored, and a change clears every entry. ``live`` is False while no
    listener hears changes (not started, connection lost, trigger missing): nothing is then served
    or stored, because nothing would drop it when the data changed. ``max_age`` bounds what a
    notification lost without the connection failing could leave stale.
    """

    def __init__(self, max_bytes: int, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.generation = 0
        self.live = False
        self._clock = clock
        self._entries: OrderedDict[Hashable, Cached] = OrderedDict()
        self._bytes = 0
        self.reading: dict[Hashable, tuple[int, asyncio.Future[Cached | None]]] = {}
        """Reads in flight by key, with the generation each started in: a request for the same key
        waits for that read instead of running its own (after a change, 32 clients asking for one
        brand's stats run one query, not 32)."""

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable) -> Cached | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() - entry.stored_at > self.max_age:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(
        self, key: Hashable, generation: int, raw_headers: Sequence[tuple[bytes, bytes]], body: bytes
    ) -> Cached | None:
        """Keep an answer computed from data of ``generation``; None when it is not kept."""
        size = len(body) + sum(len(name) + len(value) for name, value in raw_headers)
        # An answer larger than an eighth of the budget would push out many small ones for one hit.
        if not self.live or generation != self.generation or size > self.max_bytes // 8:
            return None
        if key in self._entries:
            self._drop(key)
        entry = self._entries[key] = Cached(tuple(raw_headers), body, self._clock(), size)
        self._bytes += size
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
        return entry

    def changed(self) -> None:
        """The data changed: every answer kept so far, and every one being computed, is out of date."""
        self.generation += 1
        self._entries.clear()
        self._bytes = 0

    def set_live(self, live: bool) -> None:
        """Whether changes are being heard; either way what is kept may have missed one."""
        self.live = live
        self.changed()

    def _drop(self, key: Hashable) -> None:
        self._bytes -= self._entries.pop(key).size
