"""The audit trail page: filters and pagination over a few hundred entries, alliance boundaries, and the
hash chain checked from the page, broken by an edited row."""

from __future__ import annotations

import datetime as dt
import json
import re

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from telehealth.domain import OrgLevel, Role
from telehealth.server import keys
from tests.conftest import csrf_from, login


def total(page: str) -> int:
    match = re.search(r'id="audit-total">(\d+)<', page)
    assert match, "no entry count on the page"
    return int(match.group(1))


async def test_filters_pages_scope_and_the_chain(client: TestClient) -> None:  # type: ignore[type-arg]
    store = client.app[keys.STORE]  # type: ignore[index]
    doctor = await store.get_user_by_username("village1")
    chief = await store.get_user_by_username("cardio.chief")
    system = await store.get_user_by_username("admin")
    other = await store.insert_alliance("Hill group", "county_community")
    hill = await store.insert_organisation("Hill clinic", OrgLevel.village_clinic, alliance_id=other.id)
    stranger = await store.insert_user("hill.doc", "x", "Hill", Role.clinic_doctor, organisation_id=hill.id,
                                       now=dt.datetime.now(dt.UTC))
    day = dt.datetime(2026, 10, 5, 9, tzinfo=dt.UTC)
    for i in range(120):
        await store.insert_audit("record.view", actor_id=doctor.id, target=f"consultation:{i % 7}", remote="10.0.0.8",
                                 now=day + dt.timedelta(minutes=i))
    for i in range(30):
        await store.insert_audit("note.sign", actor_id=chief.id, target=f"consultation:{i}", remote="10.0.0.9",
                                 now=day + dt.timedelta(days=1, minutes=i))
    await store.insert_audit("record.view", actor_id=stranger.id, target="consultation:500", remote="10.9.9.9",
                             now=day)
    await store.insert_audit("user.update", actor_id=system.id, target="user:1", remote="10.1.1.1", now=day)

    await login(client, "alliance.admin")
    page = await (await client.get("/admin/audit?from=2026-10-05&to=2026-10-06")).text()
    # The stranger's and the system administrator's entries are outside this alliance.
    assert total(page) == 150 and "10.9.9.9" not in page and "10.1.1.1" not in page
    assert page.count('data-action="') == 50 and "1 / 3" in page
    page3 = await (await client.get("/admin/audit?from=2026-10-05&to=2026-10-06&page=3")).text()
    assert page3.count('data-action="') == 50 and "3 / 3" in page3
    assert total(await (await client.get("/admin/audit?action=note.sign")).text()) == 30
    assert total(await (await client.get("/admin/audit?action=note.&to=2026-10-06")).text()) == 30
    assert total(await (await client.get("/admin/audit?actor=village1&to=2026-10-06")).text()) == 120
    assert total(await (await client.get("/admin/audit?actor=hill.doc")).text()) == 0
    assert total(await (await client.get("/admin/audit?target=consultation:3&to=2026-10-06")).text()) == 17 + 1
    assert total(await (await client.get("/admin/audit?from=2026-10-06&to=2026-10-06")).text()) == 30
    assert (await client.get("/admin/audit?from=october")).status == 400
    # Looking at the trail is itself on it.
    assert total(await (await client.get("/admin/audit?action=admin.audit_view")).text()) >= 8

    # The chain, checked from the page: intact, then broken by an edited row.
    page = await (await client.get("/admin/audit")).text()
    csrf = csrf_from(page, "/admin/audit/verify")
    resp = await client.post("/admin/audit/verify", data={"csrf_token": csrf})
    assert resp.status == 200 and 'data-ok="true"' in await resp.text()
    async with store.engine.begin() as conn:
        victim = (await conn.execute(sa.text(
            "SELECT id FROM audit_log WHERE action = 'note.sign' ORDER BY id LIMIT 1"))).scalar_one()
        await conn.execute(sa.text("UPDATE audit_log SET target = 'consultation:999' WHERE id = :id"), {"id": victim})
    text = await (await client.post("/admin/audit/verify", data={"csrf_token": csrf})).text()
    status = re.search(r'id="chain-status" data-ok="false">([^<]*)<', text)
    assert status and str(victim) in status.group(1)

    client.session.cookie_jar.clear()
    await login(client, "cardio.chief")
    assert (await client.get("/admin/audit")).status == 403


async def test_the_page_finds_a_removed_tail_and_a_rewritten_chain_by_the_anchor(
        client: TestClient) -> None:  # type: ignore[type-arg]
    from telehealth.records.store import audit_entry_hash

    store = client.app[keys.STORE]  # type: ignore[index]
    day = dt.datetime(2026, 10, 5, 9, 0, tzinfo=dt.UTC)
    for i in range(6):
        await store.insert_audit("record.view", actor_id=None, target=f"consultation:{i}", remote="10.0.0.8",
                                 now=day + dt.timedelta(minutes=i))
    await login(client, "admin")
    csrf = csrf_from(await (await client.get("/admin/audit")).text(), "/admin/audit/verify")

    async def status() -> tuple[bool, str]:
        text = await (await client.post("/admin/audit/verify", data={"csrf_token": csrf})).text()
        found = re.search(r'id="chain-status" data-ok="(true|false)">([^<]*)<', text)
        assert found
        return found.group(1) == "true", found.group(2)

    assert (await status())[0]
    # The last two entries (the page's own `admin.audit_view` and `admin.audit_verify` among them) removed.
    async with store.engine.begin() as conn:
        last = (await conn.execute(sa.text("SELECT max(seq) FROM audit_log"))).scalar_one()
        await conn.execute(sa.text("DELETE FROM audit_log WHERE seq > :n"), {"n": last - 2})
    ok, text = await status()
    assert not ok and "末尾的条目已被删除" in text and f"第 {last - 2} 条" in text and f"第 {last} 条" in text

    # Every entry rewritten the old, unkeyed way: each link holds, the anchored head does not.
    async with store.engine.connect() as conn:
        entries = list(await conn.execute(sa.text(
            "SELECT id, at, actor_id, action, target, remote, detail FROM audit_log ORDER BY id")))
    prev = "0" * 64
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE audit_log SET seq = NULL, hash_version = 1"))
        for row in entries:
            at = dt.datetime.fromisoformat(row.at).replace(tzinfo=dt.UTC) if isinstance(row.at, str) else row.at
            detail = json.loads(row.detail) if isinstance(row.detail, str) else row.detail
            new = audit_entry_hash(prev, at, row.actor_id, row.action, row.target, row.remote, detail)
            await conn.execute(sa.text("UPDATE audit_log SET hash = :h, prev_hash = :p WHERE id = :id"),
                               {"h": new, "p": prev, "id": row.id})
            prev = new
    ok, text = await status()
    assert not ok and "与锚点记录的不符" in text
