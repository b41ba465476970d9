"""Engine creation and schema migrations for the records store."""

from __future__ import annotations

import re
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection, ExceptionContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"
# What may follow the colon of a database's message: names of tables and columns, never a value.
_NAMES_ONLY = re.compile(r"[\w.]+(?:, [\w.]+)*")


def safe_error_text(error: BaseException) -> str:
    """A database error as a log may show it: its class, SQLSTATE, the first line of its message up to any
    value it quotes, and the table, column and constraint it names. Never its DETAIL ("Failing row contains
    (...)", "Key (name)=(...)"), its HINT, nor the statement's parameters: those are patient data."""
    source = getattr(error, "orig", None)  # the driver's own exception, under SQLAlchemy's adapter for asyncpg
    if not isinstance(source, BaseException):
        source = error
    message = str(source.args[0]) if source.args else ""
    first = message.splitlines()[0] if message else ""
    head, colon, tail = first.partition(": ")
    text = head + (colon + tail if colon and _NAMES_ONLY.fullmatch(tail) else "")
    code = getattr(source, "sqlstate", None)
    names = [f"{what} {value}" for what in ("table", "column", "constraint")
             if isinstance(value := getattr(source, f"{what}_name", None), str)]
    return (f"{type(source).__name__}{f' [{code}]' if code else ''}: {text}"
            + (f" ({', '.join(names)})" if names else ""))


def scrub_error(context: ExceptionContext) -> None:
    """Rewrite a failed statement's error in place before it is raised, so that no traceback logged anywhere
    shows what the statement carried. The error keeps its class (IntegrityError is still IntegrityError) and
    its SQLSTATE; the driver's own exception, which prints its DETAIL, is no longer chained to it."""
    error = context.original_exception
    wrapped = context.sqlalchemy_exception
    if not isinstance(wrapped, DBAPIError) or context.statement is None or context.is_disconnect:
        return  # connection failures carry no statement data, and the outage handling reads their text
    text = safe_error_text(error)
    error.args = (text,)
    if hasattr(error, "detail"):
        error.detail = None
    error.__cause__ = error.__context__ = None
    error.__suppress_context__ = True
    wrapped.args = (f"({type(error).__module__}.{type(error).__qualname__}) {text}",)


def _guard_errors(engine: AsyncEngine) -> AsyncEngine:
    event.listen(engine.sync_engine, "handle_error", scrub_error)
    return engine


def create_engine(url: str) -> AsyncEngine:
    """An async engine; on SQLite with WAL, foreign keys on, and a busy timeout instead of errors."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = _guard_errors(create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True))

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
    # Statement parameters are patient data: never in an error's text (hide_parameters), nor in what the
    # database said about them (scrub_error).
    return _guard_errors(create_async_engine(
        url, pool_size=10, max_overflow=20, pool_pre_ping=False, pool_timeout=10, hide_parameters=True,
        connect_args={"timeout": 5, "command_timeout": 30}))


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
