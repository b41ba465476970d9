"""The store's base: the engine, the ambient transaction, an unreachable database as StoreUnavailable."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.db import scrub_error

# Threads (and connections) of SQLite's quick reads: reads in WAL mode do not wait for each other or for a writer.
READ_THREADS = 2


class StoreUnavailable(TelehealthError):
    """The database could not be reached or did not answer."""

    def __init__(self, detail: str) -> None:
        super().__init__(ErrorCode.unavailable, "the records database is unavailable; try again shortly")
        self.detail = detail


class SqliteReader:
    """Single-statement reads of an SQLite file through the standard driver, one thread hop each.

    The async driver under SQLAlchemy pays a hop to its thread for every cursor call (open, execute, fetch,
    close, and the transaction's begin and commit): about 1.6 ms of CPU for an API token's lookup, against
    0.08 ms here for the same statement. Writes and transactions stay on the async engine; in WAL mode a read
    on another connection sees every transaction committed before it began.
    """

    def __init__(self, url: sa.URL) -> None:
        self._engine = sa.create_engine(
            url.set(drivername="sqlite+pysqlite"), hide_parameters=True, pool_size=READ_THREADS, max_overflow=0,
            connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(self._engine, "handle_error", scrub_error)
        event.listen(self._engine, "connect", _read_only)
        self._threads = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="sqlite-read")
        weakref.finalize(self, _close_reader, self._threads, self._engine)

    @staticmethod
    def for_engine(engine: AsyncEngine) -> SqliteReader | None:
        """A reader for a store on an SQLite file; None for PostgreSQL (asyncpg is quick) and in-memory SQLite
        (another connection would see another database)."""
        url = engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or "memory" in str(url):
            return None
        return SqliteReader(url)

    def _first(self, query: sa.Executable, params: Mapping[str, Any] | None) -> sa.Row[Any] | None:
        with self._engine.connect() as conn:
            return conn.execute(query, params).first()

    def _all(self, query: sa.Executable, params: Mapping[str, Any] | None) -> Sequence[sa.Row[Any]]:
        with self._engine.connect() as conn:
            return conn.execute(query, params).all()

    async def first(self, query: sa.Executable, params: Mapping[str, Any] | None = None) -> sa.Row[Any] | None:
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._first, query, params)

    async def all(self, query: sa.Executable, params: Mapping[str, Any] | None = None) -> Sequence[sa.Row[Any]]:
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._all, query, params)

    def close(self) -> None:
        _close_reader(self._threads, self._engine)


def _read_only(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA query_only=ON")  # this path only reads: a write here would be a bug, refused
    cursor.close()


def _close_reader(threads: ThreadPoolExecutor, engine: sa.Engine) -> None:
    threads.shutdown(wait=False)
    engine.dispose()


class StoreBase:
    """The engine and the transaction machinery every aggregate's store shares."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._reader = SqliteReader.for_engine(engine)
        # The transaction a service operation has open in this task: every store call made inside
        # `transaction()` joins it, so an operation's writes and its audit entry commit or fail together.
        self._open: ContextVar[AsyncConnection | None] = ContextVar(f"store-tx-{id(self)}", default=None)
        # What runs once that transaction has committed (the audit anchor), and not at all if it rolled back.
        self._after_commit: ContextVar[list[Callable[[], None]] | None] = ContextVar(
            f"store-after-commit-{id(self)}", default=None)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """One transaction for every store call made inside it (in this task); nested uses join the outer one.

        Code inside must let a `TelehealthError` from the store propagate: the transaction then rolls back
        whole. Do not start tasks inside it: they would share its connection."""
        if self._open.get() is not None:
            yield
            return
        hooks: list[Callable[[], None]] = []
        with _unavailable_on_connectivity():
            async with self.engine.begin() as conn:
                token, hooks_token = self._open.set(conn), self._after_commit.set(hooks)
                try:
                    yield
                finally:
                    self._open.reset(token)
                    self._after_commit.reset(hooks_token)
        for hook in hooks:
            hook()

    def _on_commit(self, hook: Callable[[], None]) -> None:
        """Run `hook` once the open `transaction()` commits; outside one, at once (the caller has committed)."""
        hooks = self._after_commit.get()
        if hooks is None:
            hook()
        else:
            hooks.append(hook)

    @property
    def in_transaction(self) -> bool:
        return self._open.get() is not None

    @asynccontextmanager
    async def _tx(self, *, single_statement: bool = False) -> AsyncIterator[AsyncConnection]:
        """A transaction; or, for one statement that is atomic by itself, no BEGIN and COMMIT round trips.
        Inside `transaction()`, the open one."""
        joined = self._open.get()
        if joined is not None:
            yield joined
            return
        with _unavailable_on_connectivity():
            if single_statement:
                async with self.engine.connect() as plain:
                    yield await plain.execution_options(isolation_level="AUTOCOMMIT")
                return
            async with self.engine.begin() as conn:
                yield conn

    async def _first(self, query: sa.Executable, params: Mapping[str, Any] | None = None) -> sa.Row[Any] | None:
        """The first row of one read-only statement: on SQLite's quick path when no transaction is open here,
        else in the open transaction (which must see its own writes)."""
        if self._reader is not None and self._open.get() is None:
            with _unavailable_on_connectivity():
                return await self._reader.first(query, params)
        async with self._tx(single_statement=True) as conn:
            return (await conn.execute(query, params)).first()

    async def _all(self, query: sa.Executable, params: Mapping[str, Any] | None = None) -> Sequence[sa.Row[Any]]:
        """Every row of one read-only statement (see `_first`)."""
        if self._reader is not None and self._open.get() is None:
            with _unavailable_on_connectivity():
                return await self._reader.all(query, params)
        async with self._tx(single_statement=True) as conn:
            return (await conn.execute(query, params)).all()

    def close_readers(self) -> None:
        if self._reader is not None:
            self._reader.close()

    async def ping(self) -> None:
        async with self._tx() as conn:
            await conn.execute(sa.text("SELECT 1"))


def new_id(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


@contextmanager
def _unavailable_on_connectivity() -> Iterator[None]:
    """A database that cannot be reached becomes `StoreUnavailable`, as does a pool with no connection free
    within its timeout (every connection busy: the database is overloaded, not the request wrong); every
    other error passes unchanged."""
    try:
        yield
    except PoolTimeout as exc:
        raise StoreUnavailable(type(exc).__name__) from exc
    except (DBAPIError, OSError, TimeoutError) as exc:
        if isinstance(exc, DBAPIError) and (isinstance(exc, IntegrityError) or (
                not exc.connection_invalidated and not _is_connectivity(exc))):
            raise
        raise StoreUnavailable(type(exc).__name__) from exc


def _is_connectivity(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return any(word in text for word in (
        "connection", "connect", "could not", "terminat", "closed", "refused", "timeout", "shutdown",
        "database is locked", "unable to open"))
