"""the alliance's own rule for the reserved share of the hospitals that do not lead it

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alliances") as batch:
        batch.add_column(sa.Column("member_share_pct", sa.Integer(), nullable=True))
    # Until now every hospital reserved at least 20 %. A member hospital that does not lead its alliance now
    # reserves only what is set for it, so those already configured keep the share they had: a member
    # hospital with no setting of its own is given the 20 % it reserved before (its administrator may lower it).
    op.execute(sa.text(
        "UPDATE organisations SET reserved_share_pct = 20 "
        "WHERE reserved_share_pct IS NULL AND leads_alliance = :no "
        "AND level IN ('county_hospital', 'city_hospital') "
        "AND id IN (SELECT hospital_org_id FROM slots)").bindparams(no=False))


def downgrade() -> None:
    with op.batch_alter_table("alliances") as batch:
        batch.drop_column("member_share_pct")
