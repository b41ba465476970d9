"""Every pooled connection busy past the pool's timeout is the database being unavailable (503, try again),
not a server error: on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from telehealth.errors import ErrorCode
from telehealth.records.db import migrate
from telehealth.records.store import Store
from telehealth.records.store.base import StoreUnavailable


async def test_a_pool_with_no_free_connection_is_unavailable(database_url: str) -> None:
    engine = create_async_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        await migrate(engine)
        store = Store(engine)
        await store.ping()
        async with engine.connect():
            with pytest.raises(StoreUnavailable) as caught:
                await store.ping()
            assert caught.value.code is ErrorCode.unavailable
            with pytest.raises(StoreUnavailable):
                async with store.transaction():
                    pass
        await store.ping()
    finally:
        await engine.dispose()
