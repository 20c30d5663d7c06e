"""Free the rows a message from the future pinned.

Between revision 0007 and the worker's bound on producer times (a message more than an hour
ahead of the worker's clock has its time dropped, as Kafka's own default bound does), one
message stamped in the future stored that time on its row, and every later edit of the review
counted as older and was refused. Such stored times are cleared here: the row then takes the
next message of its review, as rows stored before 0007 do. Only rows ahead of the clock at
upgrade time by more than that hour are touched; the downgrade leaves them cleared.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE sentiments SET kafka_timestamp = NULL WHERE kafka_timestamp > statement_timestamp() + interval '1 hour'"
    )


def downgrade() -> None:
    pass  # the cleared times were wrong; nothing to restore
