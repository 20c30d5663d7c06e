"""Re-key stored reviews without a producer id whose row has a brand or an author.

Until now such a review's key hashed source + text only, so the same words about two brands
(or by two authors) shared one row and the second message overwrote the first one's brand: a
lost review. ``core.messages.review_key`` now hashes brand and author too when there are any;
this migration gives the rows stored under the old formula the key the worker now computes,
so a re-delivered message finds its row instead of inserting a second one. Rows whose key is
not the old formula of their own fields (a producer id, a key from elsewhere) are left alone.

The two formulas are copied here, not imported: a migration must do tomorrow what it did
today, whatever ``core.messages`` becomes. Downgrade keeps the new keys: two rows that differ
only by brand cannot share the old key again, and the older code reading a new key only
misses an idempotency match for messages that predate this revision.

Run it with the workers stopped (the table is locked against writers while rows are
re-keyed, and an old worker would go on storing such reviews under the old key). A key the API
handed out before (``POST /sentiments/`` answers with it) stops resolving for a re-keyed review;
``rejected_reviews`` keeps its keys (it holds no brand or author to re-key them with).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import hashlib
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAGE = 10_000
_SELECT = sa.text(
    "SELECT id, review_key, source, sentence, brand, author FROM sentiments "
    "WHERE id > :after AND (brand IS NOT NULL OR author IS NOT NULL) ORDER BY id LIMIT :size"
)
_UPDATE = sa.text(
    "UPDATE sentiments AS s SET review_key = v.key "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:keys AS text[])) AS v (id, key) WHERE s.id = v.id"
)


def _normalize(value: str) -> str:
    return " ".join(unicodedata.normalize("NFC", value).split())


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _rekeyed(review_key: str, source: str, sentence: str, brand: str | None, author: str | None) -> str | None:
    """The new key of a row stored under the old source + text hash, or None to leave it."""
    source = source.strip()
    text = _normalize(sentence)
    if review_key != f"{source}:sha256:{_digest(source, text)}":
        return None
    brand_part, author_part = _normalize(brand or ""), _normalize(author or "")
    if not (brand_part or author_part):
        return None
    return f"{source}:sha256:{_digest(source, text, brand_part, author_part)}"


def upgrade() -> None:
    conn = op.get_bind()
    op.execute("LOCK TABLE sentiments IN SHARE ROW EXCLUSIVE MODE")
    after = 0
    while True:
        rows = conn.execute(_SELECT, {"after": after, "size": _PAGE}).all()
        if not rows:
            break
        after = rows[-1].id
        changes = [
            (row.id, key)
            for row in rows
            if (key := _rekeyed(row.review_key, row.source, row.sentence, row.brand, row.author)) is not None
        ]
        if changes:
            # One statement per page: the rollups' statement triggers run once, not per row.
            conn.execute(_UPDATE, {"ids": [i for i, _ in changes], "keys": [k for _, k in changes]})


def downgrade() -> None:
    """Keys stay as they are (see the module docstring)."""
