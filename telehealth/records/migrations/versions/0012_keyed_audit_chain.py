"""the audit chain is keyed: a hash version and an entry number per row

Entries written from now on are hashed with HMAC-SHA256 under the audit key (hash version 2) and numbered,
so the anchor outside the database can name the chain's head. The rows already there keep their plain
SHA-256 hashes: they get hash version 1 and no number, and are checked as they were written. Nothing is
rehashed, as that would need the key to vouch for rows it never saw.

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hash_version", sa.SmallInteger(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_audit_log_seq"), ["seq"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_seq"))
        batch_op.drop_column("seq")
        batch_op.drop_column("hash_version")
