"""test results in the patient's record, and each alliance's mutually recognised items

Revision ID: 0013
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import telehealth.records.schema

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("type_code", sa.String(length=20), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=20), server_default="", nullable=False),
        sa.Column("text", sa.Text(), server_default="", nullable=False),
        sa.Column("performed_on", sa.Date(), nullable=False),
        sa.Column("source_org_id", sa.Integer(), nullable=True),
        sa.Column("source_name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("consultation_id", sa.Integer(), nullable=True),
        sa.Column("origin", sa.String(length=20), server_default="recorded", nullable=False),
        sa.Column("recorded_by", sa.Integer(), nullable=False),
        sa.Column("recorded_at", telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_results_patient_id_patients")),
        sa.ForeignKeyConstraint(["source_org_id"], ["organisations.id"],
                                name=op.f("fk_results_source_org_id_organisations")),
        sa.ForeignKeyConstraint(["consultation_id"], ["consultations.id"],
                                name=op.f("fk_results_consultation_id_consultations")),
        sa.ForeignKeyConstraint(["recorded_by"], ["users.id"], name=op.f("fk_results_recorded_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_results")),
    )
    op.create_index(op.f("ix_results_patient_id"), "results", ["patient_id"], unique=False)
    op.create_table(
        "recognised_items",
        sa.Column("alliance_id", sa.Integer(), nullable=False),
        sa.Column("type_code", sa.String(length=20), nullable=False),
        sa.Column("validity_days", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", telehealth.records.schema.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["alliance_id"], ["alliances.id"],
                                name=op.f("fk_recognised_items_alliance_id_alliances")),
        sa.ForeignKeyConstraint(["updated_by"], ["users.id"], name=op.f("fk_recognised_items_updated_by_users")),
        sa.PrimaryKeyConstraint("alliance_id", "type_code", name=op.f("pk_recognised_items")),
    )


def downgrade() -> None:
    op.drop_table("recognised_items")
    op.drop_index(op.f("ix_results_patient_id"), table_name="results")
    op.drop_table("results")
