"""One row per (brand, UTC day) with the day's count per label: a brand's timeline in 365 rows.

The dashboard's main question, one brand's sentiment over a year, read 0003's daily rollup,
whose (brand, day, source, label) grain holds ~14 rows per brand-day: on bench/api.py's 1M
reviews a brand-year aggregated 5,222 rollup rows, 1.8 ms of PostgreSQL per request, most of it
the hash aggregate's numeric sums. Here the labels are columns and the source is summed away, so
the same answer reads 365 rows, one per group, with no aggregate (0.30 ms). Stats that filter or group by source
or label still read 0003's rollup.

Columns rather than a label in the key also keep the write path cheap: a batch of the sink
upserts one row per brand and day it touches, not one per brand, day and label (measured on the
same table: +0.75 ms on a 500-row insert of 45 ms, against +3.6 to +6 ms keyed by label).

The same statement-level triggers as 0003 and 0004, on their own so this rollup stays droppable
by itself; named ``sentiments_brand_daily_*``, they fire before the other rollups' and upsert in
key order. The sum is NUMERIC for the reason 0003 gives.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.migrations import reader_role

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = "brand, day"
_COUNTS = ("negative", "neutral", "positive")
_MEASURES = (*_COUNTS, "score_sum")
_UPSERT = f"""
    INSERT INTO sentiment_brand_daily AS d ({_KEY}, {", ".join(_MEASURES)})
    SELECT {_KEY}, {", ".join(f"sum({m})" for m in _MEASURES)} FROM ({{rows}}) AS delta
    GROUP BY {_KEY}
    HAVING {" OR ".join(f"sum({m}) <> 0" for m in _MEASURES)}
    ORDER BY {_KEY}
    ON CONFLICT ({_KEY}) DO UPDATE
    SET {", ".join(f"{m} = d.{m} + excluded.{m}" for m in _MEASURES)};
"""


def _rows(table: str, sign: str) -> str:
    counts = ", ".join(f"{sign}(label = '{label}')::int AS {label}" for label in _COUNTS)
    return (
        f"SELECT brand, (created_on AT TIME ZONE 'UTC')::date AS day, {counts},"
        f" {sign}sentiment_score::numeric AS score_sum FROM {table}"
    )


_FUNCTIONS = {
    "sentiment_brand_daily_add": _UPSERT.format(rows=_rows("new_rows", "")),
    "sentiment_brand_daily_move": _UPSERT.format(rows=f"{_rows('new_rows', '')} UNION ALL {_rows('old_rows', '-')}"),
    "sentiment_brand_daily_remove": _UPSERT.format(rows=_rows("old_rows", "-")),
    "sentiment_brand_daily_clear": "TRUNCATE sentiment_brand_daily;",
}
_TRIGGERS = (
    ("sentiments_brand_daily_insert", "INSERT", "REFERENCING NEW TABLE AS new_rows", "sentiment_brand_daily_add"),
    (
        "sentiments_brand_daily_update",
        "UPDATE",
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "sentiment_brand_daily_move",
    ),
    ("sentiments_brand_daily_delete", "DELETE", "REFERENCING OLD TABLE AS old_rows", "sentiment_brand_daily_remove"),
    ("sentiments_brand_daily_truncate", "TRUNCATE", "", "sentiment_brand_daily_clear"),
)


def upgrade() -> None:
    op.create_table(
        "sentiment_brand_daily",
        sa.Column("brand", sa.Text(), nullable=True),
        sa.Column("day", sa.Date(), nullable=False),
        *(sa.Column(label, sa.BigInteger(), nullable=False) for label in _COUNTS),
        sa.Column("score_sum", sa.Numeric(), nullable=False),
    )
    op.create_index(
        "ux_sentiment_brand_daily_key",
        "sentiment_brand_daily",
        ["brand", "day"],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )
    for name, body in _FUNCTIONS.items():
        op.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n{body}\nRETURN NULL;\nEND $$"
        )
    # No write may slip between the backfill and the triggers; key order keeps a brand together.
    op.execute("LOCK TABLE sentiments IN SHARE ROW EXCLUSIVE MODE")
    for name, event, referencing, function in _TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON sentiments {referencing}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    op.execute(
        f"INSERT INTO sentiment_brand_daily ({_KEY}, {', '.join(_MEASURES)}) "
        f"SELECT {_KEY}, {', '.join(f'sum({m})' for m in _MEASURES)} FROM ({_rows('sentiments', '')}) AS r"
        f" GROUP BY {_KEY} ORDER BY {_KEY}"
    )
    op.execute(f"GRANT SELECT ON sentiment_brand_daily TO {reader_role()}")


def downgrade() -> None:
    op.execute(f"REVOKE ALL ON sentiment_brand_daily FROM {reader_role()}")
    for name, *_ in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON sentiments")
    for name in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}()")
    op.drop_index("ux_sentiment_brand_daily_key", table_name="sentiment_brand_daily")
    op.drop_table("sentiment_brand_daily")
