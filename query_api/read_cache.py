"""Rendered read answers, kept until the rows they came from change.

A year of one brand's daily stats costs ~7 ms of the API's CPU and a page of 50 rows ~2 ms, so
32 analysts on two cores queue far past 50 ms; most of them ask what another asked a moment ago
(the same brands, the first page, the dashboard's charts). The answer's bytes are kept under a
key made of the request's parsed inputs, and every entry is dropped when PostgreSQL announces a
write to ``sentiments`` (``query_api.change_listener``), so a hit returns what a fresh read would
have returned, short of the milliseconds a notification takes to arrive; or, with a
``staleness``, that many seconds after the first such write.

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
    generation: int = 0
    """The generation of the data it was read from."""


class ReadCache:
    """A byte-bounded LRU of answers, each valid while the data it was read from is current.

    ``generation`` counts announced changes. A route reads it before it queries and stores its
    answer under it. By default (``staleness`` 0) a change drops every answer, and one whose
    query may have run before the change (the generation moved meanwhile) is not stored: a hit
    is what a read would have returned once the change was heard. With ``staleness`` > 0 an
    answer stays servable for that many seconds after the first change that followed its read,
    for dashboards that would rather be a second behind than miss after every worker batch.
    ``live`` is False while no listener hears changes (not started, connection lost, trigger
    missing): nothing is then served or stored, because nothing would mark it out of date.
    ``max_age`` bounds what a notification lost without the connection failing could leave stale.
    """

    def __init__(
        self, max_bytes: int, max_age: float, staleness: float = 0.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.staleness = staleness
        self.generation = 0
        self.live = False
        self._clock = clock
        self._entries: OrderedDict[Hashable, Cached] = OrderedDict()
        self._bytes = 0
        self._began: dict[int, float] = {}
        """When each recent generation began (its change was heard); only within ``staleness``."""
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
        now = self._clock()
        if now - entry.stored_at > self.max_age or not self._servable(entry.generation, now):
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(
        self, key: Hashable, generation: int, raw_headers: Sequence[tuple[bytes, bytes]], body: bytes
    ) -> Cached | None:
        """Keep an answer read from data of ``generation``; None when it is not kept."""
        size = len(body) + sum(len(name) + len(value) for name, value in raw_headers)
        now = self._clock()
        # An answer larger than an eighth of the budget would push out many small ones for one hit.
        if not self.live or size > self.max_bytes // 8 or not self._servable(generation, now):
            return None
        kept = self._entries.get(key)
        if kept is not None:
            if kept.generation > generation:
                return None  # a read that started later finished first: its answer is the newer
            self._drop(key)
        entry = self._entries[key] = Cached(tuple(raw_headers), body, now, size, generation)
        self._bytes += size
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
        return entry

    def changed(self) -> None:
        """The data changed: answers read before now are out of date (now, or after ``staleness``)."""
        self.generation += 1
        if self.staleness <= 0:
            self._forget()
            return
        now = self._clock()
        recent = {g: t for g, t in self._began.items() if now - t < self.staleness}
        recent[self.generation] = now
        pruned = len(recent) <= len(self._began)
        self._began = recent
        if pruned:  # some answers went out of date: free their bytes now, not when next asked for
            for key in [key for key, entry in self._entries.items() if not self._servable(entry.generation, now)]:
                self._drop(key)

    def set_live(self, live: bool) -> None:
        """Whether changes are being heard; either way what is kept may have missed one."""
        self.live = live
        self.generation += 1
        self._forget()

    def _servable(self, generation: int, now: float) -> bool:
        """Data of ``generation`` is the latest, or was replaced less than ``staleness`` ago."""
        if generation == self.generation:
            return True
        replaced = self._began.get(generation + 1)
        return replaced is not None and now - replaced < self.staleness

    def _forget(self) -> None:
        self._entries.clear()
        self._bytes = 0
        self._began.clear()

    def _drop(self, key: Hashable) -> None:
        self._bytes -= self._entries.pop(key).size
