"""referrals: the disposition's movement of a patient between institutions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import telehealth.records.schema

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "referrals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consultation_id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("from_org_id", sa.Integer(), nullable=False),
        sa.Column("to_org_id", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(length=60), server_default="", nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=True),
        sa.Column("priority", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("care_plan", sa.Text(), server_default="", nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("outcome", sa.Text(), server_default="", nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["consultation_id"], ["consultations.id"],
                                name=op.f("fk_referrals_consultation_id_consultations")),
        sa.ForeignKeyConstraint(["from_org_id"], ["organisations.id"], name=op.f("fk_referrals_from_org_id_organisations")),
        sa.ForeignKeyConstraint(["to_org_id"], ["organisations.id"], name=op.f("fk_referrals_to_org_id_organisations")),
        sa.ForeignKeyConstraint(["slot_id"], ["slots.id"], name=op.f("fk_referrals_slot_id_slots")),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_referrals_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
    )
    op.create_index(op.f("ix_referrals_consultation_id"), "referrals", ["consultation_id"], unique=False)
    op.create_index(op.f("ix_referrals_to_org_id"), "referrals", ["to_org_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_referrals_to_org_id"), table_name="referrals")
    op.drop_index(op.f("ix_referrals_consultation_id"), table_name="referrals")
    op.drop_table("referrals")
