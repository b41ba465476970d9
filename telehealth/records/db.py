"""Engine creation and schema migrations for the records store."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"


def create_engine(url: str) -> AsyncEngine:
    """An async engine; on SQLite with WAL, foreign keys on, and a busy timeout instead of errors."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    # A database that is down or unreachable fails fast (a clear 503) instead of holding requests for a minute.
    # No ping before each checkout (a round trip on every transaction, on the path of every offer): a
    # connection the database dropped fails its first statement, which answers `unavailable`, and SQLAlchemy
    # then discards every pooled connection older than that failure, so the next request gets fresh ones.
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=False, pool_timeout=10,
                               connect_args={"timeout": 5, "command_timeout": 30})


def _alembic_config(connection: Connection) -> Config:
    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(ALEMBIC_INI.parent / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision` (default: the newest)."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync_conn: command.upgrade(_alembic_config(sync_conn), revision))


async def schema_status(engine: AsyncEngine) -> tuple[str | None, str]:
    """(the database's revision, the newest revision this code knows)."""

    def read(sync_conn: Connection) -> tuple[str | None, str]:
        current = MigrationContext.configure(sync_conn).get_current_revision()
        head = ScriptDirectory.from_config(_alembic_config(sync_conn)).get_current_head()
        return current, head or ""

    async with engine.connect() as conn:
        return await conn.run_sync(read)
