"""signed notes and addenda cannot be replaced, deleted or truncated either

0002 refused UPDATE of a signed note and of an addendum, and DELETE of a signed note. What it left open:
on SQLite, DELETE of an addendum, and INSERT OR REPLACE (or UPDATE OR REPLACE) over a signed note or an
addendum, since the rows that REPLACE removes fire no delete trigger unless recursive triggers are on; on
PostgreSQL, TRUNCATE, which fires no row trigger. (PostgreSQL's INSERT ... ON CONFLICT DO UPDATE fires
0002's update trigger and is refused already.)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_TRIGGERS = {
    "addenda_undeletable": """
        CREATE TRIGGER addenda_undeletable BEFORE DELETE ON addenda
        BEGIN SELECT RAISE(ABORT, 'an addendum cannot be deleted'); END
    """,
    # Before the row is written, hence before REPLACE removes what it collides with.
    "notes_signed_unreplaceable": """
        CREATE TRIGGER notes_signed_unreplaceable BEFORE INSERT ON notes
        WHEN EXISTS (SELECT 1 FROM notes WHERE (id = NEW.id OR consultation_id = NEW.consultation_id)
                     AND signed_at IS NOT NULL)
        BEGIN SELECT RAISE(ABORT, 'a signed note cannot be replaced'); END
    """,
    "addenda_unreplaceable": """
        CREATE TRIGGER addenda_unreplaceable BEFORE INSERT ON addenda
        WHEN EXISTS (SELECT 1 FROM addenda WHERE id = NEW.id)
        BEGIN SELECT RAISE(ABORT, 'an addendum cannot be replaced'); END
    """,
    # A draft moved onto a signed note's id or consultation would make UPDATE OR REPLACE remove the signed one.
    "notes_keys_fixed": """
        CREATE TRIGGER notes_keys_fixed BEFORE UPDATE OF id, consultation_id ON notes
        WHEN NEW.id IS NOT OLD.id OR NEW.consultation_id IS NOT OLD.consultation_id
        BEGIN SELECT RAISE(ABORT, 'a note keeps its id and its consultation'); END
    """,
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION records_refuse_truncate() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'table % holds signed records and cannot be truncated', TG_TABLE_NAME
                    USING ERRCODE = 'check_violation';
            END
            $$ LANGUAGE plpgsql
        """)
        for table in ("notes", "addenda"):
            op.execute(f"""
                CREATE TRIGGER {table}_untruncatable BEFORE TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION records_refuse_truncate()
            """)
    else:
        for sql in SQLITE_TRIGGERS.values():
            op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("notes", "addenda"):
            op.execute(f"DROP TRIGGER {table}_untruncatable ON {table}")
        op.execute("DROP FUNCTION records_refuse_truncate()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
