"""inpatient beds per ward and day, the reserved ones for referrals up, and the bed a referral up books

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import telehealth.records.schema

revision: str = "0014"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "beds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hospital_org_id", sa.Integer(), nullable=False),
        sa.Column("ward", sa.String(length=60), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Boolean(), nullable=False),
        sa.Column("released_at", telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("booked_consultation_id", sa.Integer(), nullable=True),
        sa.Column("booked_at", telehealth.records.schema.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["hospital_org_id"], ["organisations.id"],
                                name=op.f("fk_beds_hospital_org_id_organisations")),
        sa.ForeignKeyConstraint(["booked_consultation_id"], ["consultations.id"],
                                name=op.f("fk_beds_booked_consultation_id_consultations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_beds")),
        sa.UniqueConstraint("booked_consultation_id", name=op.f("uq_beds_booked_consultation_id")),
    )
    op.create_index(op.f("ix_beds_hospital_org_id"), "beds", ["hospital_org_id"], unique=False)
    op.create_index(op.f("ix_beds_day"), "beds", ["day"], unique=False)
    op.create_index("ix_beds_ward_day", "beds", ["hospital_org_id", "ward", "day", "number"], unique=True)
    with op.batch_alter_table("referrals") as batch:
        batch.add_column(sa.Column("bed_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_referrals_bed_id_beds"), "beds", ["bed_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("referrals") as batch:
        batch.drop_constraint(op.f("fk_referrals_bed_id_beds"), type_="foreignkey")
        batch.drop_column("bed_id")
    op.drop_index("ix_beds_ward_day", table_name="beds")
    op.drop_index(op.f("ix_beds_day"), table_name="beds")
    op.drop_index(op.f("ix_beds_hospital_org_id"), table_name="beds")
    op.drop_table("beds")
