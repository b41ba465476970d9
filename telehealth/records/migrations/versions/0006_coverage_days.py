"""senior-doctor coverage: duty days at grassroots institutions and specialists' online days

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import telehealth.records.schema

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "duty_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_duty_days_user_id_users")),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_duty_days_org_id_organisations")),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_duty_days_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duty_days")),
        sa.UniqueConstraint("user_id", "org_id", "day", name="uq_duty_days_user_org_day"),
    )
    op.create_index(op.f("ix_duty_days_org_id"), "duty_days", ["org_id"], unique=False)
    op.create_table(
        "presence_days",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("first_at", telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_presence_days_user_id_users")),
        sa.PrimaryKeyConstraint("user_id", "day", name=op.f("pk_presence_days")),
    )


def downgrade() -> None:
    op.drop_table("presence_days")
    op.drop_index(op.f("ix_duty_days_org_id"), table_name="duty_days")
    op.drop_table("duty_days")
