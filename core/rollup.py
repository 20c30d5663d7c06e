"""Check and rebuild the rollups behind stats (``sentiment_brand_daily``, ``sentiment_daily``, ``sentiment_totals``).

The triggers keep them exact in normal operation. Writes that bypass triggers do not: a restore
with ``session_replication_role = replica``, ``ALTER TABLE … DISABLE TRIGGER``, a logical
replica. After such work, ``reviewscore rollup`` says whether a rollup drifted and
``--rebuild`` recomputes them under a lock that keeps writers out for the duration.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from core.schema import CHANGES_CHANNEL, LABELS

_COUNT_AND_SUM = (("reviews", "count(*)::bigint"), ("score_sum", "sum(sentiment_score::numeric)"))


@dataclass(frozen=True, slots=True)
class Rollup:
    """One rollup table: its key columns, how each row of ``sentiments`` maps onto them, and its
    measures, each a column and the aggregate over the rows that fills it."""

    table: str
    key: str
    key_of_row: str
    measures: tuple[tuple[str, str], ...] = _COUNT_AND_SUM

    @property
    def trigger_prefix(self) -> str:
        """Its triggers on ``sentiments`` are named ``sentiments_<table without sentiment_>_*``."""
        return f"sentiments_{self.table.removeprefix('sentiment_')}_"

    @property
    def columns(self) -> str:
        return ", ".join(column for column, _ in self.measures)

    @property
    def fresh(self) -> str:
        aggregates = ", ".join(f"{aggregate} AS {column}" for column, aggregate in self.measures)
        return (
            f"SELECT {self.key}, {aggregates}"
            f" FROM (SELECT {self.key_of_row}, sentiment_score FROM sentiments) AS r GROUP BY {self.key}"
        )

    @property
    def stored(self) -> str:
        nonzero = " OR ".join(f"{column} <> 0" for column, _ in self.measures)
        return f"SELECT {self.key}, {self.columns} FROM {self.table} WHERE {nonzero}"


BRAND_DAILY = Rollup(
    "sentiment_brand_daily",
    "brand, day",
    "brand, (created_on AT TIME ZONE 'UTC')::date AS day, label",
    (
        *((label, f"count(*) FILTER (WHERE label = '{label}')") for label in LABELS),
        ("score_sum", "sum(sentiment_score::numeric)"),
    ),
)
DAILY = Rollup(
    "sentiment_daily", "brand, day, source, label", "brand, (created_on AT TIME ZONE 'UTC')::date AS day, source, label"
)
TOTALS = Rollup("sentiment_totals", "brand, source, label, rating", "brand, source, label, rating")
ROLLUPS = (BRAND_DAILY, DAILY, TOTALS)
"""In the order the triggers write them (trigger names sort brand_daily, daily, totals)."""


@dataclass(frozen=True, slots=True)
class Drift:
    """Groups a rollup lacks or gets wrong (``missing``) and groups it has but should not (``extra``)."""

    table: str
    missing: int
    extra: int

    @property
    def exact(self) -> bool:
        return self.missing == 0 and self.extra == 0


def installed(conn: Connection) -> bool:
    """Whether the database has every rollup (migration 0012 or later)."""
    probes = " AND ".join(f"to_regclass('{rollup.table}') IS NOT NULL" for rollup in ROLLUPS)
    return bool(conn.execute(text(f"SELECT {probes}")).scalar_one())


def disabled_triggers(conn: Connection) -> list[str]:
    """The rollups' triggers on ``sentiments`` that do not fire in an ordinary session (disabled,
    or set to fire on replicas only): with one off, the rollups drift from the rows again as soon
    as they are written, whatever a rebuild did. Other triggers on the table are not ours to judge."""
    patterns = [rollup.trigger_prefix.replace("_", "\\_") + "%" for rollup in ROLLUPS]
    rows = conn.execute(
        text(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'sentiments'::regclass AND NOT tgisinternal"
            " AND tgenabled IN ('D', 'R') AND tgname LIKE ANY (:patterns) ORDER BY tgname"
        ),
        {"patterns": patterns},
    )
    return [row[0] for row in rows]


def drift(conn: Connection) -> list[Drift]:
    """Compare each rollup with a fresh aggregate of ``sentiments`` (full scans: run it off-peak)."""
    found = []
    for rollup in ROLLUPS:
        check = text(
            f"SELECT count(*) FROM (({rollup.fresh}) EXCEPT ALL ({rollup.stored})) AS missing"
            f" UNION ALL SELECT count(*) FROM (({rollup.stored}) EXCEPT ALL ({rollup.fresh})) AS extra"
        )
        missing, extra = (row[0] for row in conn.execute(check))
        found.append(Drift(rollup.table, missing=missing, extra=extra))
    return found


def rebuild(conn: Connection) -> dict[str, int]:
    """Recompute every rollup in the caller's transaction; returns the groups written per table."""
    conn.execute(text("LOCK TABLE sentiments IN SHARE ROW EXCLUSIVE MODE"))
    written = {}
    for rollup in ROLLUPS:
        # DELETE, not TRUNCATE: readers keep seeing the old rollup until this commits, where
        # TRUNCATE's exclusive lock would stall every stats request for the whole rebuild.
        conn.execute(text(f"DELETE FROM {rollup.table}"))
        # Key order keeps one brand's rows together on disk, as the migrations' backfills do.
        insert = f"INSERT INTO {rollup.table} ({rollup.key}, {rollup.columns}) {rollup.fresh} ORDER BY {rollup.key}"
        written[rollup.table] = conn.execute(text(insert)).rowcount
    # The rows did not change, so no trigger told the API's read cache; sent when this commits.
    conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANGES_CHANNEL})
    return written
