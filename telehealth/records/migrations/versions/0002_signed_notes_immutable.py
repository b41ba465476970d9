"""signed notes are immutable in the database itself

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION notes_refuse_signed_change() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'note % is signed and cannot be changed', OLD.id USING ERRCODE = 'check_violation';
            END
            $$ LANGUAGE plpgsql
        """)
        op.execute("""
            CREATE TRIGGER notes_signed_immutable BEFORE UPDATE OR DELETE ON notes
            FOR EACH ROW WHEN (OLD.signed_at IS NOT NULL) EXECUTE FUNCTION notes_refuse_signed_change()
        """)
        op.execute("""
            CREATE TRIGGER addenda_immutable BEFORE UPDATE OR DELETE ON addenda
            FOR EACH ROW EXECUTE FUNCTION notes_refuse_signed_change()
        """)
    else:
        op.execute("""
            CREATE TRIGGER notes_signed_immutable BEFORE UPDATE ON notes WHEN OLD.signed_at IS NOT NULL
            BEGIN SELECT RAISE(ABORT, 'a signed note cannot be changed'); END
        """)
        op.execute("""
            CREATE TRIGGER notes_signed_undeletable BEFORE DELETE ON notes WHEN OLD.signed_at IS NOT NULL
            BEGIN SELECT RAISE(ABORT, 'a signed note cannot be deleted'); END
        """)
        op.execute("""
            CREATE TRIGGER addenda_immutable BEFORE UPDATE ON addenda
            BEGIN SELECT RAISE(ABORT, 'an addendum cannot be changed'); END
        """)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER addenda_immutable ON addenda")
        op.execute("DROP TRIGGER notes_signed_immutable ON notes")
        op.execute("DROP FUNCTION notes_refuse_signed_change()")
    else:
        op.execute("DROP TRIGGER addenda_immutable")
        op.execute("DROP TRIGGER notes_signed_undeletable")
        op.execute("DROP TRIGGER notes_signed_immutable")
