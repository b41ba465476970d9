"""pre-call connection checks per clinic

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import telehealth.records.schema

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "precheck_results",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("started_at", telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("uplink", sa.JSON(), nullable=True),
        sa.Column("downlink", sa.JSON(), nullable=True),
        sa.Column("verdict", sa.String(length=20), nullable=True),
        sa.Column("cause", sa.String(length=40), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_precheck_results_org_id_organisations")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_precheck_results_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_precheck_results")),
    )
    op.create_index(op.f("ix_precheck_results_org_id"), "precheck_results", ["org_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_precheck_results_org_id"), table_name="precheck_results")
    op.drop_table("precheck_results")
