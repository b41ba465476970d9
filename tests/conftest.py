"""Shared fixtures: settings on the test profile, a fresh database per test (SQLite, and PostgreSQL when
TELEHEALTH_TEST_DATABASE_URL is set), and an app client with the demo alliance seeded."""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from telehealth.config import Settings, load_settings
from telehealth.records.db import create_engine, migrate
from telehealth.records.seed import DEMO_PASSWORD
from telehealth.records.store import Store
from telehealth.server.app import create_app

PG_URL = os.environ.get("TELEHEALTH_TEST_DATABASE_URL", "")
TEST_SECRET = "test-secret-key-0123456789abcdef"
TEST_AUDIT_KEY = "test-audit-key-0123456789abcdef"

DATABASES = ["sqlite"] + (["postgresql"] if PG_URL else [])


def _asyncpg_dsn(url: str) -> str:
    return re.sub(r"^postgresql\+asyncpg://", "postgresql://", url)


async def create_pg_database() -> tuple[str, Callable[[], Awaitable[None]]]:
    """A new empty PostgreSQL database for one test, and how to drop it."""
    name = f"th_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_asyncpg_dsn(PG_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_URL.rsplit("/", 1)[0]

    async def drop() -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(PG_URL))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    return f"{base}/{name}", drop


@pytest.fixture(params=DATABASES)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'records.sqlite3'}"
        return
    url, drop = await create_pg_database()
    try:
        yield url
    finally:
        await drop()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    engine = create_engine(database_url)
    await migrate(engine)
    try:
        yield Store(engine, audit_key=TEST_AUDIT_KEY.encode())
    finally:
        await engine.dispose()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    base = {"data_dir": str(tmp_path / "data"), "secret_key": TEST_SECRET, "demo": True}
    base.update(overrides)
    return load_settings(profile="test", overrides=base, env={})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> TestClient:  # type: ignore[type-arg]
    return await aiohttp_client(create_app(settings))


def csrf_from(html: str, action: str = "/login") -> str:
    """The CSRF token of the form that posts to `action`."""
    match = re.search(r'action="' + re.escape(action) + r'".*?name="csrf_token" value="([^"]*)"', html, re.S)
    assert match, f"no form posting to {action} with a CSRF field on the page"
    return match.group(1)


async def login(client: TestClient, username: str, password: str = DEMO_PASSWORD) -> Any:  # type: ignore[type-arg]
    page = await client.get("/login")
    token = csrf_from(await page.text())
    return await client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                             allow_redirects=False)


async def logged_in_csrf(client: TestClient) -> str:  # type: ignore[type-arg]
    resp = await client.get("/api/me")
    assert resp.status == 200
    return str((await resp.json())["csrf_token"])


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)
