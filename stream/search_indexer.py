"""The worker's search indexer: a thread that keeps ``sentiment_search`` behind the stream.

Parsing a review's text for full-text search costs PostgreSQL about as much as the rest of its
write (stream/README.md), so it is not done in the batch's merge. This thread writes the
documents of the rows the triggers queued, in slices, while the stream is keeping up; while the
consumer has a backlog (it took a full batch in the last second) it waits, so a burst is scored at
the pipeline's full rate, but never lets the oldest queued row wait longer than ``max_lag``.
Searches see the text as of the last pass (``query_api.filters.matching_ids``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from core.logs import client_logger
from core.search import index_pending, oldest_pending_age
from stream.metrics import Metrics

log = client_logger(__name__)  # a database that is down fails every pass: one line per 30 s


def should_index(age: float | None, backlog: bool, max_lag: float) -> bool:
    """Index now? Not when nothing waits; while the stream has a backlog only once the oldest
    queued row has waited ``max_lag`` seconds."""
    return age is not None and (not backlog or age >= max_lag)


def has_backlog(last_batch: tuple[float, int], max_batch: int, now: float, window: float = 1.0) -> bool:
    """A full batch taken within ``window`` seconds means more messages were waiting behind it."""
    taken_at, size = last_batch
    return size >= max_batch and now - taken_at <= window


@dataclass
class SearchIndexer:
    engine: Engine
    backlog: Callable[[], bool]
    batch: int = 2000
    max_lag: float = 30.0
    interval: float = 0.5
    metrics: Metrics | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._known = (time.monotonic(), 0.0)  # (when, lag then) of the last successful look

    def start(self) -> SearchIndexer:
        self._thread = threading.Thread(target=self._run, name="reviewscore-search-indexer", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the slice in flight, which commits or rolls back as a whole."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def step(self) -> int:
        """One decision and at most one slice; returns the queue entries taken (0: nothing done)."""
        with self.engine.begin() as conn:
            age = oldest_pending_age(conn)
            self._known = (time.monotonic(), age or 0.0)
            if self.metrics:
                self.metrics.search_lag.set(age or 0.0)
            if not should_index(age, self.backlog(), self.max_lag):
                return 0
            done = index_pending(conn, self.batch)
        if self.metrics:
            self.metrics.search_indexed.inc(done.written)
        return done.taken

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                taken = self.step()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - the thread outlives a database outage; the stream reports it
                failures += 1
                if self.metrics:  # a failing indexer falls behind: the gauge keeps growing, it does not freeze
                    seen_at, lag = self._known
                    self.metrics.search_lag.set(lag + time.monotonic() - seen_at)
                log.warning(
                    "search indexer: %s; retrying", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                )
                self._stop.wait(min(self.interval * 2**failures, 30.0))
                continue
            if taken < self.batch:  # a full slice means more is queued: go on at once
                self._stop.wait(self.interval)
