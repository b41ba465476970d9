"""reserved slot pool details and refer-down follow-up tasks

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import telehealth.records.schema

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("slots") as batch:
        batch.add_column(sa.Column("duration_min", sa.Integer(), server_default="30", nullable=False))
        batch.add_column(sa.Column("location", sa.String(length=200), server_default="", nullable=False))
    op.create_index("ix_slots_department_day", "slots", ["hospital_org_id", "department", "starts_at"], unique=True)
    op.create_table(
        "referral_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("done_at", telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["referral_id"], ["referrals.id"], name=op.f("fk_referral_tasks_referral_id_referrals")),
        sa.ForeignKeyConstraint(["done_by"], ["users.id"], name=op.f("fk_referral_tasks_done_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_tasks")),
    )
    op.create_index(op.f("ix_referral_tasks_referral_id"), "referral_tasks", ["referral_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_referral_tasks_referral_id"), table_name="referral_tasks")
    op.drop_table("referral_tasks")
    op.drop_index("ix_slots_department_day", table_name="slots")
    with op.batch_alter_table("slots") as batch:
        batch.drop_column("location")
        batch.drop_column("duration_min")
