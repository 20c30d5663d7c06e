"""Admission of reads to the database: a few at a time per process, in arrival order.

Every read route sends its query and its rendering to the thread pool. Left to themselves, the
32 requests a busy dashboard keeps in flight each took a thread and a PostgreSQL backend at once,
and on two cores the threads, the backends and the event loop fought over the CPU and the GIL in
no particular order: whichever lost several rounds in a row was the p99. Letting two reads in at a
time per process, the rest waiting their turn on the event loop (which costs nothing), served the
same work in arrival order: the deep page's p99 38 → 25 ms at 1,545 → 1,761 pages/s, one
brand-year of daily stats 132 → 92 ms, side by side (query_api/README.md, "Reads admitted in
arrival order").

A slow read (an aggregate over the rows, a query waiting on a lock) must not hold back the cheap
ones queued behind it, so a read counts against the limit for at most ``hold`` seconds: after that
it runs on without its slot, and the next read goes in. The bound is therefore on the reads that
began less than ``hold`` ago, not on every read in flight: a read still running after the hold is
waiting on PostgreSQL or building a large answer, and either way the queue moves on without it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class ReadSlots:
    """At most ``limit`` reads at once (0: no limit), admitted first come, first served; each holds
    its slot until it ends or ``hold`` seconds have passed, whichever comes first."""

    def __init__(self, limit: int, hold: float) -> None:
        self.limit = limit
        self.hold = hold
        self.running = 0
        """Reads holding a slot now."""
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return sum(not future.done() for future in self._waiting)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.limit <= 0:
            yield
            return
        await self._take()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._give_back()

        timer = asyncio.get_running_loop().call_later(self.hold, release)
        try:
            yield
        finally:
            timer.cancel()
            release()

    async def _take(self) -> None:
        if self.running < self.limit and not self._waiting:
            self.running += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn  # the slot is handed over already counted (see _give_back)
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._give_back()  # handed over as the request was cancelled: pass it on
            elif turn in self._waiting:  # a slot given back meanwhile may have dropped it already
                self._waiting.remove(turn)
            raise

    def _give_back(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes on without running ever dropping below the limit
                return
        self.running -= 1
