"""What earlier crawls already delivered: review key -> fingerprint of the published message.

A SQLite file under ``SCRAPER_STATE_DIR`` (one per spider and destination topic). The pipeline asks
``unchanged(key, digest)`` before sending and calls ``mark`` only from a *successful*
delivery report, so a review whose delivery failed is offered again by the next crawl.
Single-threaded by design: Scrapy's reactor thread runs the pipeline and the producer's
delivery callbacks (they fire inside ``poll()``).
"""

from __future__ import annotations

import fcntl
import hashlib
import sqlite3
from pathlib import Path
from types import TracebackType


def state_file(state_dir: Path, spider: str, bootstrap_servers: str, topic: str) -> Path:
    """One state per spider *and destination*: "already delivered" means delivered to this topic
    on this cluster, so a crawl to a fresh broker (a demo, another environment) sends everything."""
    # The same cluster written another way ("b:9092,a:9092", "A:9092, b:9092") is the same
    # destination; a single lower-case host:port, the usual form, hashes as it always did.
    servers = ",".join(sorted(s.strip().lower() for s in bootstrap_servers.split(",") if s.strip()))
    destination = hashlib.sha256(f"{servers}\x1f{topic}".encode()).hexdigest()[:12]
    return state_dir / f"seen-{spider}-{destination}.sqlite3"


class SeenStateBusyError(RuntimeError):
    """Another crawl to the same destination holds this state file."""


class SeenState:
    def __init__(self, path: Path, commit_every: int = 500) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # One crawl per state file: a second one would wait on SQLite's write lock, fail marking
        # what it delivered ("database is locked") and re-send it all next time. Refused at
        # start instead, with the reason; the kernel drops the lock if the crawl dies.
        self._lock = path.with_name(path.name + ".lock").open("a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise SeenStateBusyError(
                f"another crawl to the same destination is using {path}; wait for it to finish "
                "(or give this crawl its own SCRAPER_STATE_DIR)"
            ) from None
        try:
            self._db = sqlite3.connect(path)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS seen (review_key TEXT PRIMARY KEY, digest TEXT NOT NULL, "
                "delivered_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            )
            self._db.commit()
        except sqlite3.Error:  # a corrupt or read-only file: the lock must not outlive the failure
            self._lock.close()
            raise
        self._pending = 0
        self._commit_every = commit_every

    def unchanged(self, review_key: str, digest: str) -> bool:
        row = self._db.execute("SELECT digest FROM seen WHERE review_key = ?", (review_key,)).fetchone()
        return row is not None and row[0] == digest

    def mark(self, review_key: str, digest: str) -> None:
        self._db.execute(
            "INSERT INTO seen (review_key, digest) VALUES (?, ?) "
            "ON CONFLICT (review_key) DO UPDATE SET digest = excluded.digest, delivered_at = CURRENT_TIMESTAMP",
            (review_key, digest),
        )
        self._pending += 1
        if self._pending >= self._commit_every:
            self.commit()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM seen").fetchone()[0])

    def commit(self) -> None:
        self._db.commit()
        self._pending = 0

    def close(self) -> None:
        try:
            self.commit()
            self._db.close()
        finally:
            self._lock.close()

    def __enter__(self) -> SeenState:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
