"""All-time totals per (brand, source, label), kept exact by the same kind of triggers as 0003.

The daily rollup made a brand-year of stats cheap, but every all-time question still read all
of it: `/brands` and the dashboard's label distribution summed 261,122 rollup rows per request
for the bench's 1M reviews (67 ms with one client, ~2 s under 32). Totals hold one row per
brand, source and label, so the same answers read a few hundred rows whatever the history.

Separate triggers rather than a second statement in 0003's functions: each rollup stays
droppable on its own. Same-event triggers fire in name order (``sentiments_daily_*`` before
``sentiments_totals_*``) and each upserts in key order. An upsert fires its UPDATE triggers and
then its INSERT ones, so two writers touching the same groups in both phases can still
deadlock; PostgreSQL aborts one and both writers retry it (the worker's write retry, the
rescore job's page retry).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.migrations import reader_role

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = "brand, source, label"
_UPSERT = f"""
    INSERT INTO sentiment_totals AS t ({_KEY}, reviews, score_sum)
    SELECT {_KEY}, sum(n), sum(s) FROM ({{rows}}) AS delta
    GROUP BY {_KEY}
    HAVING sum(n) <> 0 OR sum(s) <> 0
    ORDER BY {_KEY}
    ON CONFLICT ({_KEY}) DO UPDATE
    SET reviews = t.reviews + excluded.reviews, score_sum = t.score_sum + excluded.score_sum;
"""


def _rows(table: str, sign: str) -> str:
    return f"SELECT {_KEY}, {sign}1::bigint AS n, {sign}sentiment_score::numeric AS s FROM {table}"


_FUNCTIONS = {
    "sentiment_totals_add": _UPSERT.format(rows=_rows("new_rows", "")),
    "sentiment_totals_move": _UPSERT.format(rows=f"{_rows('new_rows', '')} UNION ALL {_rows('old_rows', '-')}"),
    "sentiment_totals_remove": _UPSERT.format(rows=_rows("old_rows", "-")),
    "sentiment_totals_clear": "TRUNCATE sentiment_totals;",
}
_TRIGGERS = (
    ("sentiments_totals_insert", "INSERT", "REFERENCING NEW TABLE AS new_rows", "sentiment_totals_add"),
    (
        "sentiments_totals_update",
        "UPDATE",
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "sentiment_totals_move",
    ),
    ("sentiments_totals_delete", "DELETE", "REFERENCING OLD TABLE AS old_rows", "sentiment_totals_remove"),
    ("sentiments_totals_truncate", "TRUNCATE", "", "sentiment_totals_clear"),
)


def upgrade() -> None:
    op.create_table(
        "sentiment_totals",
        sa.Column("brand", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("reviews", sa.BigInteger(), nullable=False),
        sa.Column("score_sum", sa.Numeric(), nullable=False),
    )
    op.create_index(
        "ux_sentiment_totals_key",
        "sentiment_totals",
        ["brand", "source", "label"],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )
    for name, body in _FUNCTIONS.items():
        op.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n{body}\nRETURN NULL;\nEND $$"
        )
    op.execute("LOCK TABLE sentiments IN SHARE ROW EXCLUSIVE MODE")
    for name, event, referencing, function in _TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON sentiments {referencing}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    # From the rows, not from the daily rollup: a rollup that had drifted must not seed this one.
    op.execute(
        f"INSERT INTO sentiment_totals ({_KEY}, reviews, score_sum) "
        f"SELECT {_KEY}, sum(n), sum(s) FROM ({_rows('sentiments', '')}) AS r GROUP BY {_KEY} ORDER BY {_KEY}"
    )
    op.execute(f"GRANT SELECT ON sentiment_totals TO {reader_role()}")


def downgrade() -> None:
    op.execute(f"REVOKE ALL ON sentiment_totals FROM {reader_role()}")
    for name, *_ in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON sentiments")
    for name in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}()")
    op.drop_index("ux_sentiment_totals_key", table_name="sentiment_totals")
    op.drop_table("sentiment_totals")
