"""The producer's time of the message that wrote each row, so an older message never wins.

An edit of a review (same ``review_id``, new text) replaced the row whatever came last, so a
dead letter of the version before the edit, replayed after a fix, brought the old text back.
The worker now stores the message's Kafka timestamp (CreateTime; ``dlq replay`` re-publishes
with the original's) and updates a row only from a message that is not older. Rows stored
before this revision have none and take the next message as before.

Adding a nullable column without a default only touches the catalog: instant on any size.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sentiments", sa.Column("kafka_timestamp", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("sentiments", "kafka_timestamp")
