"""Check and rebuild the daily rollup (``sentiment_daily``) against the rows it summarises.

The triggers keep it exact in normal operation. Writes that bypass triggers do not: a restore
with ``session_replication_role = replica``, ``ALTER TABLE … DISABLE TRIGGER``, a logical
replica. After such work, ``reviewscore rollup`` says whether the rollup drifted and
``--rebuild`` recomputes it under a lock that keeps writers out for the duration.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

_KEY = "brand, day, source, label"
_FRESH = (
    f"SELECT {_KEY}, count(*)::bigint AS reviews, sum(sentiment_score::numeric) AS score_sum FROM ("
    "SELECT brand, (created_on AT TIME ZONE 'UTC')::date AS day, source, label, sentiment_score FROM sentiments"
    f") AS r GROUP BY {_KEY}"
)
_STORED = f"SELECT {_KEY}, reviews, score_sum FROM sentiment_daily WHERE reviews <> 0 OR score_sum <> 0"
_DRIFT = text(
    f"SELECT count(*) FROM (({_FRESH}) EXCEPT ALL ({_STORED})) AS missing"
    f" UNION ALL SELECT count(*) FROM (({_STORED}) EXCEPT ALL ({_FRESH})) AS extra"
)


@dataclass(frozen=True, slots=True)
class Drift:
    """Groups the rollup lacks or gets wrong (``missing``) and groups it has but should not (``extra``)."""

    missing: int
    extra: int

    @property
    def exact(self) -> bool:
        return self.missing == 0 and self.extra == 0


def installed(conn: Connection) -> bool:
    """Whether the database has the rollup (migration 0003 or later)."""
    return bool(conn.execute(text("SELECT to_regclass('sentiment_daily') IS NOT NULL")).scalar_one())


def drift(conn: Connection) -> Drift:
    """Compare the rollup with a fresh aggregate of ``sentiments`` (a full scan: run it off-peak)."""
    missing, extra = (row[0] for row in conn.execute(_DRIFT))
    return Drift(missing=missing, extra=extra)


def rebuild(conn: Connection) -> int:
    """Recompute the rollup in the caller's transaction; returns the number of groups written."""
    conn.execute(text("LOCK TABLE sentiments IN SHARE ROW EXCLUSIVE MODE"))
    # DELETE, not TRUNCATE: readers keep seeing the old rollup until this commits, where
    # TRUNCATE's exclusive lock would stall every stats request for the whole rebuild.
    conn.execute(text("DELETE FROM sentiment_daily"))
    # Key order keeps one brand's days together on disk, as the migration's backfill does.
    result = conn.execute(text(f"INSERT INTO sentiment_daily ({_KEY}, reviews, score_sum) {_FRESH} ORDER BY {_KEY}"))
    return result.rowcount
