"""booked consultations: the specialists' consultation hours, the departments' desks, the appointments

Revision ID: 0017
Revises: 0014
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import telehealth.records.schema

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = telehealth.records.schema.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "consultation_hours",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("specialist_id", sa.Integer(), nullable=False),
        sa.Column("hospital_org_id", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(length=60), nullable=False),
        sa.Column("starts_at", UTC(timezone=True), nullable=False),
        sa.Column("ends_at", UTC(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("withdrawn_at", UTC(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["specialist_id"], ["users.id"],
                                name=op.f("fk_consultation_hours_specialist_id_users")),
        sa.ForeignKeyConstraint(["hospital_org_id"], ["organisations.id"],
                                name=op.f("fk_consultation_hours_hospital_org_id_organisations")),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_consultation_hours_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultation_hours")),
    )
    op.create_index(op.f("ix_consultation_hours_specialist_id"), "consultation_hours", ["specialist_id"])
    op.create_index(op.f("ix_consultation_hours_hospital_org_id"), "consultation_hours", ["hospital_org_id"])
    op.create_index(op.f("ix_consultation_hours_starts_at"), "consultation_hours", ["starts_at"])
    op.create_table(
        "consultation_desks",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("hospital_org_id", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(length=60), nullable=False),
        sa.Column("granted_by", sa.Integer(), nullable=True),
        sa.Column("granted_at", UTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_consultation_desks_user_id_users")),
        sa.ForeignKeyConstraint(["hospital_org_id"], ["organisations.id"],
                                name=op.f("fk_consultation_desks_hospital_org_id_organisations")),
        sa.ForeignKeyConstraint(["granted_by"], ["users.id"], name=op.f("fk_consultation_desks_granted_by_users")),
        sa.PrimaryKeyConstraint("user_id", "hospital_org_id", "department", name=op.f("pk_consultation_desks")),
    )
    op.create_table(
        "appointments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consultation_id", sa.Integer(), nullable=False),
        sa.Column("clinic_org_id", sa.Integer(), nullable=False),
        sa.Column("hospital_org_id", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(length=60), nullable=False),
        sa.Column("specialist_id", sa.Integer(), nullable=True),
        sa.Column("starts_at", UTC(timezone=True), nullable=True),
        sa.Column("duration_min", sa.Integer(), nullable=False),
        sa.Column("window_start", UTC(timezone=True), nullable=True),
        sa.Column("window_end", UTC(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("booked_at", UTC(timezone=True), nullable=True),
        sa.Column("reminded_day_at", UTC(timezone=True), nullable=True),
        sa.Column("reminded_soon_at", UTC(timezone=True), nullable=True),
        sa.Column("started_at", UTC(timezone=True), nullable=True),
        sa.Column("closed_at", UTC(timezone=True), nullable=True),
        sa.Column("reschedules", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["consultation_id"], ["consultations.id"],
                                name=op.f("fk_appointments_consultation_id_consultations")),
        sa.ForeignKeyConstraint(["clinic_org_id"], ["organisations.id"],
                                name=op.f("fk_appointments_clinic_org_id_organisations")),
        sa.ForeignKeyConstraint(["hospital_org_id"], ["organisations.id"],
                                name=op.f("fk_appointments_hospital_org_id_organisations")),
        sa.ForeignKeyConstraint(["specialist_id"], ["users.id"], name=op.f("fk_appointments_specialist_id_users")),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_appointments_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointments")),
        sa.UniqueConstraint("consultation_id", name=op.f("uq_appointments_consultation_id")),
    )
    op.create_index(op.f("ix_appointments_clinic_org_id"), "appointments", ["clinic_org_id"])
    op.create_index(op.f("ix_appointments_hospital_org_id"), "appointments", ["hospital_org_id"])
    op.create_index(op.f("ix_appointments_specialist_id"), "appointments", ["specialist_id"])
    op.create_index(op.f("ix_appointments_starts_at"), "appointments", ["starts_at"])
    op.create_index(op.f("ix_appointments_status"), "appointments", ["status"])


def downgrade() -> None:
    for name in ("status", "starts_at", "specialist_id", "hospital_org_id", "clinic_org_id"):
        op.drop_index(op.f(f"ix_appointments_{name}"), table_name="appointments")
    op.drop_table("appointments")
    op.drop_table("consultation_desks")
    for name in ("starts_at", "hospital_org_id", "specialist_id"):
        op.drop_index(op.f(f"ix_consultation_hours_{name}"), table_name="consultation_hours")
    op.drop_table("consultation_hours")
