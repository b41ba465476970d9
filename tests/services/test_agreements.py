"""Remote-care agreements as invitations, through the real server (SQLite, and PostgreSQL when configured): one
side proposes, the other approves or declines; until both approved no patient of the clinic is routed to the
hospital; either side ends it with a reason; each step is audited and shown to both sides; agreements recorded
before invitations existed migrate as in effect."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from telehealth.accounts import hash_password_async
from telehealth.domain import OrgLevel, Role
from telehealth.records import schema as t
from telehealth.records.db import create_engine, migrate
from telehealth.records.seed import COUNTY_ALLIANCE_NAME, DEMO_PASSWORD
from telehealth.records.store import Store
from telehealth.server import keys
from tests.conftest import csrf_from, make_settings
from tests.records.test_notes import CREATE, api
from tests.services.test_tenants import page_session
from tests.support.wsclient import Node, serve

CLINIC = "Dongcun Village Clinic"          # village1's, in the Qingshan group
HOSPITAL = "Songxi County People's Hospital"  # the Songxi county community's lead
NEW_COLUMNS = {"state", "clinic_approved_by", "clinic_approved_at", "hospital_approved_by", "hospital_approved_at",
               "closed_by", "closed_at", "closed_reason"}
YESTERDAY = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()


@pytest.fixture
async def node(tmp_path: Path, database_url: str, store: Store) -> AsyncIterator[Node]:
    # `store` has migrated the database (SQLite, and PostgreSQL when configured) for the server.
    async with serve(make_settings(tmp_path, database_url=database_url)) as n:
        yield n


def _store(node: Node) -> Store:
    assert not isinstance(node.server, str)
    store: Store = node.server.app[keys.STORE]
    return store


async def _ids(node: Node) -> tuple[int, int, int]:
    store = _store(node)
    clinic = await store.get_organisation_by_name(CLINIC)
    hospital = await store.get_organisation_by_name(HOSPITAL)
    internist = await store.get_user_by_username("songxi.internist")
    assert clinic is not None and hospital is not None and internist is not None
    return clinic.id, hospital.id, internist.id


async def _name_specialist(node: Node, specialist_id: int) -> tuple[int, Any]:
    """village1 asks for a cardiology consultation naming the specialist: refused unless the clinic may
    consult the specialist's hospital."""
    return await api(node, "POST", "/api/consultations", "village1",
                     {**CREATE, "specialty": "cardiology", "requested_specialist_id": specialist_id})


async def _far_admin(node: Node) -> None:
    store = _store(node)
    far = await store.insert_alliance("Far group", "county_community")
    org = await store.insert_organisation("Far hospital", OrgLevel.county_hospital, alliance_id=far.id)
    await store.insert_user("far.admin", await hash_password_async(DEMO_PASSWORD), "Far admin", Role.admin,
                            organisation_id=org.id, now=dt.datetime.now(dt.UTC))


async def test_an_invitation_routes_nothing_until_both_sides_approve_and_either_side_ends_it(node: Node) -> None:
    clinic, hospital, internist = await _ids(node)
    await _far_admin(node)
    status, body = await api(node, "POST", "/api/admin/agreements", "alliance.admin",
                             {"clinic_org_id": clinic, "hospital_org_id": hospital, "valid_from": YESTERDAY})
    assert status == 201, body
    agreement = body["agreement"]
    gid = agreement["id"]
    # The clinic's side (the inviting party) approved by proposing; it waits for the hospital's side.
    assert agreement["state"] == "clinic_approved" and agreement["awaiting"] == ["hospital"]
    assert agreement["your_sides"] == ["clinic"] and not agreement["may_approve"] and agreement["may_decline"]
    assert agreement["clinic_approved"]["by_name"] == "Zhou Min (medical affairs)" and not agreement["valid_now"]
    status, body = await _name_specialist(node, internist)
    assert status == 403 and body["error"]["code"] == "not_eligible"
    # The same pair cannot be proposed twice while one waits.
    status, body = await api(node, "POST", "/api/admin/agreements", "songxi.admin",
                             {"clinic_org_id": clinic, "hospital_org_id": hospital, "valid_from": YESTERDAY})
    assert status == 409 and body["error"]["code"] == "conflict"
    # The clinic's side cannot approve for the hospital; an administrator of neither side does not see it.
    status, body = await api(node, "POST", f"/api/admin/agreements/{gid}/approve", "alliance.admin")
    assert status == 409 and body["error"]["code"] == "conflict"
    status, body = await api(node, "POST", f"/api/admin/agreements/{gid}/approve", "far.admin")
    assert status == 404
    status, body = await api(node, "GET", "/api/admin/agreements", "far.admin")
    assert status == 200 and body["agreements"] == []
    # The hospital's administrator sees the invitation waiting for their side, and approves it.
    status, body = await api(node, "GET", "/api/admin/agreements", "songxi.admin")
    [seen] = body["agreements"]
    assert seen["id"] == gid and seen["your_sides"] == ["hospital"] and seen["may_approve"]
    status, body = await api(node, "POST", f"/api/admin/agreements/{gid}/approve", "songxi.admin")
    assert status == 200, body
    agreement = body["agreement"]
    assert agreement["state"] == "in_effect" and agreement["valid_now"] and agreement["awaiting"] == []
    assert agreement["hospital_approved"]["by_name"] == "Lin Hua (medical affairs)"
    status, body = await _name_specialist(node, internist)
    assert status == 201, body
    # Either side ends it, saying why; from then on nothing is routed there.
    status, body = await api(node, "POST", f"/api/admin/agreements/{gid}/end", "songxi.admin", {})
    assert status == 400
    status, body = await api(node, "POST", f"/api/admin/agreements/{gid}/end", "far.admin",
                             {"reason": "not mine"})
    assert status == 404
    status, body = await api(node, "POST", f"/api/admin/agreements/{gid}/end", "songxi.admin",
                             {"reason": "our cardiologist is on leave until spring"})
    assert status == 200, body
    assert body["agreement"]["state"] == "ended" and not body["agreement"]["may_end"]
    status, body = await _name_specialist(node, internist)
    assert status == 403 and body["error"]["code"] == "not_eligible"
    status, body = await api(node, "POST", f"/api/admin/agreements/{gid}/end", "alliance.admin",
                             {"reason": "again"})
    assert status == 409
    # The clinic's side sees who ended it, when and why.
    status, body = await api(node, "GET", "/api/admin/agreements", "alliance.admin")
    [seen] = [a for a in body["agreements"] if a["id"] == gid]
    assert seen["closed"]["by_name"] == "Lin Hua (medical affairs)"
    assert seen["closed"]["reason"] == "our cardiologist is on leave until spring"
    # Each step is in the audit trail, with the side that took it.
    rows, _ = await _store(node).search_audit(target=f"agreement:{gid}")
    steps = [(r["action"], (r["detail"] or {}).get("side")) for r in reversed(rows)]
    assert steps == [("agreement.propose", None), ("agreement.approve", "hospital"), ("agreement.end", "hospital")]


async def test_the_invited_side_declines_from_its_page_with_a_reason(node: Node) -> None:
    clinic, hospital, internist = await _ids(node)
    # This time the hospital's side proposes: it waits for the clinic's side, whose data it would open.
    status, body = await api(node, "POST", "/api/admin/agreements", "songxi.admin",
                             {"clinic_org_id": clinic, "hospital_org_id": hospital, "valid_from": YESTERDAY})
    assert status == 201 and body["agreement"]["state"] == "hospital_approved"
    gid = body["agreement"]["id"]
    session = await page_session(node, "alliance.admin")
    try:
        async with session.get(node.url("/admin/organisations")) as resp:
            page = await resp.text()
        # Chinese first: the page is in Simplified Chinese unless the user chose English.
        assert "待您一方同意的邀请" in page and f'data-pending="{gid}"' in page
        assert f'action="/admin/agreements/{gid}/approve"' in page and f'action="/admin/agreements/{gid}/decline"' in page
        csrf = csrf_from(page, f"/admin/agreements/{gid}/decline")
        async with session.post(node.url(f"/admin/agreements/{gid}/decline"), data={"csrf_token": csrf}) as resp:
            assert resp.status == 400 and 'id="reason-error"' in await resp.text()
        async with session.post(node.url(f"/admin/agreements/{gid}/decline"), allow_redirects=False, data={
                "csrf_token": csrf, "reason": "the patients' records stay within the group"}) as resp:
            assert resp.status == 303
        async with session.get(node.url("/admin/organisations")) as resp:
            page = await resp.text()
        assert f'data-agreement="{gid}" data-state="declined"' in page and f'data-pending="{gid}"' not in page
        assert "the patients&#39; records stay within the group" in page
    finally:
        await session.close()
    status, body = await _name_specialist(node, internist)
    assert status == 403 and body["error"]["code"] == "not_eligible"
    status, body = await api(node, "POST", f"/api/admin/agreements/{gid}/approve", "songxi.admin")
    assert status == 409
    # The proposing side sees the refusal and its reason.
    status, body = await api(node, "GET", "/api/admin/agreements", "songxi.admin")
    [seen] = body["agreements"]
    assert seen["state"] == "declined" and seen["closed"]["by_name"] == "Zhou Min (medical affairs)"
    assert seen["closed"]["reason"] == "the patients' records stay within the group"


async def test_institutions_of_one_alliance_need_no_agreement(node: Node) -> None:
    store = _store(node)
    songxi = await store.get_alliance_by_name(COUNTY_ALLIANCE_NAME)
    assert songxi is not None
    clinic = next(o for o in await store.list_organisations(songxi.id) if o.level is OrgLevel.village_clinic)
    _, hospital, _ = await _ids(node)
    status, body = await api(node, "POST", "/api/admin/agreements", "songxi.admin",
                             {"clinic_org_id": clinic.id, "hospital_org_id": hospital, "valid_from": YESTERDAY})
    assert status == 400 and body["error"]["code"] == "invalid_message", body
    assert "one alliance" in body["error"]["message_en"]


async def test_agreements_recorded_before_invitations_migrate_as_in_effect(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine, "0013")
        now = dt.datetime.now(dt.UTC)
        async with engine.begin() as conn:
            for name, level in (("Clinic", "village_clinic"), ("Hospital", "city_hospital"),
                                ("Former", "city_hospital")):
                await conn.execute(sa.text(
                    "INSERT INTO organisations (name, name_zh, level, leads_alliance, city_group_pilot, region) "
                    "VALUES (:n, '', :l, :f, :f, '')").bindparams(n=name, l=level, f=False))
            ids = {r.name: r.id for r in (await conn.execute(sa.text("SELECT id, name FROM organisations"))).all()}
            # As the schema stood before: the columns of revision 0013 only.
            old = sa.Table("agreements", sa.MetaData(), *(sa.Column(c.name, c.type) for c in t.agreements.columns
                                                          if c.name not in NEW_COLUMNS))
            for hospital, valid_to in (("Hospital", None), ("Former", now - dt.timedelta(days=1))):
                await conn.execute(old.insert().values(
                    clinic_org_id=ids["Clinic"], hospital_org_id=ids[hospital], valid_from=now - dt.timedelta(days=30),
                    valid_to=valid_to, created_by=None, created_at=now - dt.timedelta(days=30)))
        await migrate(engine)
        store = Store(engine)
        agreements = {a.hospital_org_id: a for a in await store.list_agreements([ids["Clinic"]])}
        assert {a.state.value for a in agreements.values()} == {"in_effect"}
        _, partners = await store.get_partner_hospitals(ids["Clinic"], now)
        assert partners == {ids["Hospital"]}
        # The one that had ended stays over; the other can still be ended by its sides.
        assert agreements[ids["Former"]].valid_at(now - dt.timedelta(days=2))
        assert not agreements[ids["Former"]].valid_at(now)
    finally:
        await engine.dispose()
