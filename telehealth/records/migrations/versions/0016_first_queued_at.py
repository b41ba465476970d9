"""when a consultation first entered the queue, kept for its place in the queue

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import telehealth.records.schema

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consultations") as batch:
        batch.add_column(sa.Column("first_queued_at", telehealth.records.schema.UTCDateTime(timezone=True),
                                   nullable=True))
    # Requests queued before: the first `queued` event is when they first entered the queue (a return to
    # the queue is logged as `requeued` or `given_back`); without one, the last queue time is the best known.
    op.execute(
        "UPDATE consultations SET first_queued_at = COALESCE("
        "(SELECT MIN(events.at) FROM events WHERE events.consultation_id = consultations.id "
        "AND events.kind = 'queued'), queued_at) WHERE first_queued_at IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("consultations") as batch:
        batch.drop_column("first_queued_at")
