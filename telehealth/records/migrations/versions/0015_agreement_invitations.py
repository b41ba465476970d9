"""remote-care agreements as invitations: each side's approval, and who declined or ended one, when and why

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import telehealth.records.schema

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = telehealth.records.schema.UTCDateTime(timezone=True)
    with op.batch_alter_table("agreements") as batch:
        batch.add_column(sa.Column("state", sa.String(length=20), server_default="proposed", nullable=False))
        batch.add_column(sa.Column("clinic_approved_by", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("clinic_approved_at", when, nullable=True))
        batch.add_column(sa.Column("hospital_approved_by", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("hospital_approved_at", when, nullable=True))
        batch.add_column(sa.Column("closed_by", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("closed_at", when, nullable=True))
        batch.add_column(sa.Column("closed_reason", sa.String(length=500), server_default="", nullable=False))
        batch.create_foreign_key(batch.f("fk_agreements_clinic_approved_by_users"), "users",
                                 ["clinic_approved_by"], ["id"])
        batch.create_foreign_key(batch.f("fk_agreements_hospital_approved_by_users"), "users",
                                 ["hospital_approved_by"], ["id"])
        batch.create_foreign_key(batch.f("fk_agreements_closed_by_users"), "users", ["closed_by"], ["id"])
    # Agreements recorded before both sides approved were in effect as recorded (an ended one kept its end
    # as `valid_to`): they stay in effect, with the same validity period, so routing does not change.
    op.execute(sa.text("UPDATE agreements SET state = 'in_effect'"))


def downgrade() -> None:
    # Only an agreement in effect routed before; the others must not come back as valid.
    op.execute(sa.text("DELETE FROM agreements WHERE state IN ('proposed', 'clinic_approved', "
                       "'hospital_approved', 'declined')"))
    with op.batch_alter_table("agreements") as batch:
        batch.drop_constraint(batch.f("fk_agreements_closed_by_users"), type_="foreignkey")
        batch.drop_constraint(batch.f("fk_agreements_hospital_approved_by_users"), type_="foreignkey")
        batch.drop_constraint(batch.f("fk_agreements_clinic_approved_by_users"), type_="foreignkey")
        for column in ("closed_reason", "closed_at", "closed_by", "hospital_approved_at", "hospital_approved_by",
                       "clinic_approved_at", "clinic_approved_by", "state"):
            batch.drop_column(column)
