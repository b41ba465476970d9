"""the clinic's decision on the specialist's opinion

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consultations") as batch:
        batch.add_column(sa.Column("clinic_decision", sa.String(length=30), nullable=True))
        batch.add_column(sa.Column("clinic_decision_note", sa.Text(), server_default="", nullable=False))
        batch.add_column(sa.Column("decided_by", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_consultations_decided_by_users"), "users", ["decided_by"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("consultations") as batch:
        batch.drop_constraint(op.f("fk_consultations_decided_by_users"), type_="foreignkey")
        batch.drop_column("decided_by")
        batch.drop_column("clinic_decision_note")
        batch.drop_column("clinic_decision")
