"""The records database goes away while a specialist writes the report in the browser: what they type is
kept in the browser, the page says the save failed, and the draft reaches the database by itself once it
is back. The test runs its own PostgreSQL on a free port."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from telehealth.server import keys
from telehealth.server.app import create_app
from tests.browser.test_journey import request_consultation
from tests.conftest import TEST_SECRET, make_settings
from tests.test_database_outage import BIN, Postgres

pytestmark = pytest.mark.browser


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    import shutil

    if not BIN or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL server binaries are not installed")
    pg = Postgres()
    pg.start()
    migrate = subprocess.run([sys.executable, "-m", "telehealth", "migrate", "--database-url", pg.url],
                             env={**os.environ, "TELEHEALTH_SECRET_KEY": TEST_SECRET, "TELEHEALTH_PROFILE": "test"},
                             capture_output=True, check=False)
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    try:
        yield pg
    finally:
        pg.remove()


@pytest.fixture
async def live_server(tmp_path: Path, postgres: Postgres) -> AsyncIterator[TestServer]:
    settings = make_settings(tmp_path, database_url=postgres.url, matching={"ring_timeout_s": 20})
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    server.postgres = postgres  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        await server.close()


async def test_a_draft_typed_while_the_database_is_down_is_saved_when_it_returns(
        browsers: Any, live_server: TestServer) -> None:
    clinic = await browsers("clinic")
    specialist = await browsers("specialist")
    await clinic.login("village6")
    await specialist.login("cardio.chief")
    await specialist.page.wait_for_selector("#connection[data-state=online]")
    cid = await request_consultation(clinic, "Sudden weakness of the right hand")
    await specialist.page.wait_for_selector(f"#offer[data-consultation='{cid}']:not([hidden])")
    await specialist.page.click("#btn-accept")
    await specialist.page.wait_for_url(f"**/specialist/consultations/{cid}")
    page = specialist.page
    await page.fill("#note-assessment", "First thoughts before the outage.")
    await page.wait_for_selector("#note-status:has-text('Draft saved')")

    postgres: Postgres = live_server.postgres  # type: ignore[attr-defined]
    await asyncio.to_thread(postgres.stop)
    text = "Left hemisphere TIA likely; aspirin now, CT within 24 hours."
    await page.fill("#note-assessment", text)
    await page.wait_for_selector("#note-status:has-text('unavailable')", timeout=20_000)
    await specialist.shot("database-down")
    kept = await page.evaluate("() => Object.values(localStorage).join(' ')")
    assert text in kept  # the browser holds on to it

    await asyncio.to_thread(postgres.start)
    await page.wait_for_selector("#note-status:has-text('Draft saved')", timeout=30_000)
    await specialist.shot("saved-after-outage")
    store = live_server.app[keys.STORE]
    note = await store.get_note(cid)
    assert note is not None and note.assessment == text
