"""Filters out of range in the query strings of the administrators' pages, their JSON and the CSV export:
a clear 400 (the CSV export's before its first byte), never a 500; at the edge of the range they work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from telehealth.records.db import create_engine, migrate
from telehealth.server.app import create_app
from tests.conftest import login, make_settings

PAST_2_63 = "9223372036854775808"
OUT_OF_RANGE = [
    f"/admin/consultations?clinic={PAST_2_63}", "/admin/consultations?specialist=2147483648",
    f"/admin/consultations?hospital=-{PAST_2_63}", "/admin/consultations?page=99999999999999999999",
    "/admin/consultations?page=0", "/admin/consultations?to=9999-12-31", "/admin/consultations?from=0001-01-01",
    "/admin/consultations?from=2026-13-01",
    f"/admin/consultations.csv?clinic={PAST_2_63}", "/admin/consultations.csv?to=9999-12-31",
    "/admin/consultations.csv?specialist=2147483648", "/admin/consultations.csv?from=0001-01-01",
    "/admin/audit?page=99999999999999999999", "/admin/audit?page=-1", "/admin/audit?to=9999-12-31",
    "/admin/audit?from=0001-01-01",
    "/admin/statistics?to=9999-12-31", "/admin/statistics?from=0001-01-01&to=0001-01-02",
    "/api/admin/statistics?to=9999-12-31", "/api/admin/statistics?from=0001-01-01&to=0001-01-01",
    "/api/admin/statistics?to=" + "9" * 5000,
]
AT_THE_EDGE = ["/admin/consultations?clinic=2147483647&page=2147483647", "/admin/consultations?to=2999-12-31",
               "/admin/consultations?from=1900-01-01", "/admin/audit?page=2147483647&to=2999-12-31",
               "/api/admin/statistics?from=2999-12-01&to=2999-12-31", "/admin/statistics?from=1900-01-01&to=1900-01-31"]


@pytest.fixture
async def admin(aiohttp_client: Any, tmp_path: Path, database_url: str) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    if database_url.startswith("postgresql"):
        engine = create_engine(database_url)
        await migrate(engine)
        await engine.dispose()
    client = await aiohttp_client(create_app(make_settings(tmp_path, database_url=database_url)))
    await login(client, "admin")
    yield client


async def test_out_of_range_filters_are_a_clear_400(admin: TestClient) -> None:  # type: ignore[type-arg]
    answers = {}
    for path in OUT_OF_RANGE:
        resp = await admin.get(path, headers={"Accept": "application/json"})
        body = await resp.json() if resp.content_type == "application/json" else {}
        answers[path] = (resp.status, body.get("error", {}).get("code"))
    assert answers == {path: (400, "invalid_message") for path in OUT_OF_RANGE}
    resp = await admin.get("/admin/consultations?to=9999-12-31", headers={"Accept": "application/json"})
    assert "'9999-12-31' is not a date from 1900-01-01 to 2999-12-31" in (await resp.json())["error"]["message_en"]


async def test_the_csv_export_refuses_before_its_first_byte(admin: TestClient) -> None:  # type: ignore[type-arg]
    resp = await admin.get(f"/admin/consultations.csv?clinic={PAST_2_63}")
    assert resp.status == 400 and resp.content_type == "text/html"
    assert "consultation,created_at" not in await resp.text()
    resp = await admin.get("/admin/consultations.csv?clinic=2147483647&to=2999-12-31")
    assert resp.status == 200 and (await resp.text()).startswith("consultation,created_at")


async def test_the_edges_of_the_range_are_answered(admin: TestClient) -> None:  # type: ignore[type-arg]
    answers = {path: (await admin.get(path)).status for path in AT_THE_EDGE}
    assert answers == {path: 200 for path in AT_THE_EDGE}


async def test_the_html_page_says_it_in_chinese(admin: TestClient) -> None:  # type: ignore[type-arg]
    resp = await admin.get("/admin/consultations?clinic=1e9", headers={"Accept-Language": "zh-CN"})
    assert resp.status == 400
    assert "&#39;1e9&#39; 不是 1 至 2147483647 之间的数字" in await resp.text()
