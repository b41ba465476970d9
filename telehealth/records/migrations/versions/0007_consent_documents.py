"""attachments carry a kind: clinical, or the signed consent

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attachments") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=20), server_default="clinical", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("attachments") as batch:
        batch.drop_column("kind")
