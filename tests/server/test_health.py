"""/healthz and /readyz, including readiness going away when the database does."""

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from telehealth.server import keys
from telehealth.server.app import create_app
from tests.conftest import make_settings


async def test_healthz_and_readyz(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200 and body["checks"] == {"database": "ok", "broker": "ok"}


async def test_readyz_is_not_ready_when_the_database_is_unreachable(aiohttp_client: Any, tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    client = await aiohttp_client(app)
    assert (await client.get("/readyz")).status == 200
    # Point the store at a PostgreSQL port where nothing listens.
    from telehealth.records.db import create_engine

    store = app[keys.STORE]
    original = store.engine
    store.engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    try:
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 503
        assert body["status"] == "not_ready" and body["checks"]["database"].startswith("unavailable")
        assert (await client.get("/healthz")).status == 200
    finally:
        await store.engine.dispose()
        store.engine = original
