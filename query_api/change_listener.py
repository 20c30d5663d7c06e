"""Hear PostgreSQL announce writes to ``sentiments`` and tell the read cache.

One connection per API process LISTENs on ``core.schema.CHANGES_CHANNEL`` (migration 0011's
trigger NOTIFYs there when a writing statement commits). Its socket is watched by the event loop
itself (``add_reader``): a notification costs a callback, not a thread or a query. The cache is
live only while this connection listens and the trigger exists; a lost connection turns it off
at once (nothing would drop stale answers) and it comes back, cleared, after a reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import random
from concurrent.futures import Future, ThreadPoolExecutor

import psycopg2
from psycopg2.extensions import connection as pg_connection

from core.db import dead_peer_args
from core.schema import CHANGES_CHANNEL, CHANGES_TRIGGER
from query_api.read_cache import ReadCache

log = logging.getLogger(__name__)

# A hot standby (refuses LISTEN, never hears NOTIFY), and whether the trigger that NOTIFYs is there.
_CAN_HEAR_CHANGES = (
    "SELECT pg_is_in_recovery(), EXISTS (SELECT 1 FROM pg_trigger"
    " WHERE tgname = %s AND tgrelid = to_regclass('sentiments') AND tgenabled <> 'D')"
)


class NoChangesHereError(RuntimeError):
    """This database announces no changes to this connection; retried slowly, as the cause is a setup's."""


class TriggerMissingError(NoChangesHereError):
    """The database announces no changes: its schema predates migration 0011, or the trigger is disabled."""


class StandbyError(NoChangesHereError):
    """A hot standby: it refuses LISTEN, and NOTIFY from the primary never reaches it."""


_STANDBY = (
    "the read cache needs the primary: the API reads from a hot standby (a read replica), which cannot "
    "LISTEN and never receives the primary's notifications; point DATABASE_READONLY_URL at the primary "
    "to cache, or set API_READ_CACHE_MB=0 to read from the replica without a cache"
)


def listen(dsn: str, connect_timeout: float, dead_peer_timeout: int = 60) -> pg_connection:
    """A connection that LISTENs on the changes channel, after checking that anything sends there.

    Blocking (connect, two statements): run in a thread. TCP keepalives (``DATABASE_DEAD_PEER_TIMEOUT``,
    as every connection of ours) make a silently dead peer (a dropped network path, no reset) a
    connection error within about that long instead of hours.
    """
    conn = psycopg2.connect(
        dsn,
        connect_timeout=max(1, round(connect_timeout)),
        application_name="reviewscore-api-changes",
        **dead_peer_args(dead_peer_timeout),
    )
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(_CAN_HEAR_CHANGES, (CHANGES_TRIGGER,))
            row = cursor.fetchone()
            if row and row[0]:
                raise StandbyError(_STANDBY)
            if not row or not row[1]:
                raise TriggerMissingError(
                    f"no enabled {CHANGES_TRIGGER} trigger on sentiments: run `reviewscore migrate` (revision 0011)"
                )
            cursor.execute(f"LISTEN {CHANGES_CHANNEL}")
    except BaseException:
        conn.close()
        raise
    return conn


def _close_when_connected(connecting: Future[pg_connection]) -> None:
    if not connecting.cancelled() and connecting.exception() is None:
        connecting.result().close()


class ChangeListener:
    """Keeps ``cache`` live while a LISTEN connection is up; reconnects with backoff and jitter."""

    def __init__(
        self,
        dsn: str,
        cache: ReadCache,
        connect_timeout: float = 5.0,
        dead_peer_timeout: int = 60,
        retry_min: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        self._dsn = dsn
        self._cache = cache
        self._connect_timeout = connect_timeout
        self._dead_peer_timeout = dead_peer_timeout
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._task: asyncio.Task[None] | None = None
        self._connector = ThreadPoolExecutor(1, thread_name_prefix="reviewscore-change-listener")
        self.connects = 0
        self.last_error: str | None = None
        """Why the cache is off, while it is (None once listening)."""

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="reviewscore-change-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:  # shutting down: the app's own resources must still be released
                log.exception("change listener failed")
            self._task = None
        self._connector.shutdown(wait=False)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._retry_min
        while True:
            connecting = self._connector.submit(listen, self._dsn, self._connect_timeout, self._dead_peer_timeout)
            try:
                conn = await asyncio.wrap_future(connecting)
            except asyncio.CancelledError:
                connecting.add_done_callback(_close_when_connected)  # stopped mid-connect: no stray backend
                raise
            except NoChangesHereError as exc:
                self.last_error = str(exc)
                log.warning("read cache off: %s", exc)
                await asyncio.sleep(self._retry_max)
                continue
            except Exception as exc:  # noqa: BLE001 - any failure to listen leaves the cache off, and is retried
                self.last_error = "cannot listen for changes: " + " ".join(str(exc).split())
                log.warning("read cache off: %s; retrying in about %.1fs", self.last_error, delay)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._retry_max)
                continue
            self.connects += 1
            self.last_error = None
            up_since = loop.time()
            try:
                await self._serve(loop, conn)
            except Exception as exc:  # noqa: BLE001 - as above
                self.last_error = "change listener failed: " + " ".join(str(exc).split())
                log.warning("read cache off: %s", self.last_error)
            finally:
                self._cache.set_live(False)
                conn.close()
            # A connection dropped soon after it was made (a server or pooler ending sessions) is
            # not retried at once, or the loop would hammer it; one that lived a while is.
            if loop.time() - up_since < self._retry_max:
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._retry_max)
            else:
                delay = self._retry_min

    async def _serve(self, loop: asyncio.AbstractEventLoop, conn: pg_connection) -> None:
        lost: asyncio.Future[Exception] = loop.create_future()
        fd = conn.fileno()
        loop.add_reader(fd, self._on_readable, conn, lost)
        self._cache.set_live(True)  # cleared as it goes live: a change may have come while none listened
        try:
            reason = await lost
        finally:
            loop.remove_reader(fd)
        self.last_error = "lost the listening connection: " + " ".join(str(reason).split())
        log.warning("read cache off: %s; reconnecting", self.last_error)

    def _on_readable(self, conn: pg_connection, lost: asyncio.Future[Exception]) -> None:
        try:
            conn.poll()
        except psycopg2.Error as exc:
            if not lost.done():
                lost.set_result(exc)
            return
        if conn.notifies:
            conn.notifies.clear()
            self._cache.changed()
