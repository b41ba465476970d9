"""The store's base: the engine, the ambient transaction, an unreachable database as StoreUnavailable."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from telehealth.errors import ErrorCode, TelehealthError


class StoreUnavailable(TelehealthError):
    """The database could not be reached or did not answer."""

    def __init__(self, detail: str) -> None:
        super().__init__(ErrorCode.unavailable, "the records database is unavailable; try again shortly")
        self.detail = detail


class StoreBase:
    """The engine and the transaction machinery every aggregate's store shares."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
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
