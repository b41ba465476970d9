"""Administrators manage accounts, organisations and remote-care agreements of their alliance: new accounts
sign in, deactivated ones are out at once, bad forms change nothing, another alliance stays out of reach."""

from __future__ import annotations

import datetime as dt

from aiohttp import CookieJar
from aiohttp.test_utils import TestClient

from telehealth.domain import OrgLevel, Role, Title
from telehealth.server import keys
from tests.conftest import csrf_from, login

CITY = "Qingshan First People's Hospital"


async def admin_csrf(client: TestClient, page: str = "/admin/users", username: str = "alliance.admin") -> str:  # type: ignore[type-arg]
    assert (await login(client, username)).status == 303
    resp = await client.get(page)
    assert resp.status == 200
    return csrf_from(await resp.text(), page)


async def sign_in_elsewhere(client: TestClient, username: str, password: str) -> int:  # type: ignore[type-arg]
    """Sign in from a second browser (its own cookie jar) and return the login response's status."""
    import aiohttp

    async with aiohttp.ClientSession(cookie_jar=CookieJar(unsafe=True)) as other:
        base = str(client.make_url("")).rstrip("/")
        page = await (await other.get(base + "/login")).text()
        resp = await other.post(base + "/login", data={"username": username, "password": password,
                                                       "csrf_token": csrf_from(page)}, allow_redirects=False)
        return resp.status


async def test_an_admin_creates_a_specialist_who_can_sign_in(client: TestClient) -> None:  # type: ignore[type-arg]
    csrf = await admin_csrf(client)
    store = client.app[keys.STORE]  # type: ignore[index]
    city = await store.get_organisation_by_name(CITY)
    form = {"csrf_token": csrf, "username": "derm.li", "display_name": "Li Na", "role": "specialist",
            "organisation": str(city.id), "title": "associate_chief", "specialties": "dermatology",
            "password": "a long enough secret"}
    resp = await client.post("/admin/users", data=form, allow_redirects=False)
    assert resp.status == 303 and "created=" in resp.headers["Location"]
    user = await store.get_user_by_username("derm.li")
    assert user.role is Role.specialist and user.title is Title.associate_chief
    assert user.specialties == ("dermatology",) and user.organisation_id == city.id
    assert user.password_hash.startswith("$argon2")
    listing = await (await client.get("/admin/users?role=specialist")).text()
    assert 'data-username="derm.li"' in listing and 'data-username="village1"' not in listing
    assert await sign_in_elsewhere(client, "derm.li", "a long enough secret") == 303
    # The same username again: a message next to the field, no second account.
    resp = await client.post("/admin/users", data=form)
    assert resp.status == 400 and 'id="username-error"' in await resp.text()
    audit = await store.list_audit(limit=20)
    assert any(e["action"] == "user.create" and e["target"] == f"user:{user.id}" for e in audit)


async def test_bad_account_forms_name_each_field_and_create_nothing(client: TestClient) -> None:  # type: ignore[type-arg]
    csrf = await admin_csrf(client)
    store = client.app[keys.STORE]  # type: ignore[index]
    before = len(await store.list_all_users())
    city = await store.get_organisation_by_name(CITY)
    village = (await store.get_user_by_username("village1")).organisation_id
    cases = [
        ({"username": "X", "display_name": "A", "role": "specialist", "organisation": str(city.id),
          "title": "chief", "specialties": "cardiology", "password": "long enough!"}, "username"),
        # A specialist at a village clinic.
        ({"username": "spec.v", "display_name": "A", "role": "specialist", "organisation": str(village),
          "title": "chief", "specialties": "cardiology", "password": "long enough!"}, "organisation"),
        ({"username": "spec.n", "display_name": "A", "role": "specialist", "organisation": str(city.id),
          "title": "chief", "password": "long enough!"}, "specialties"),
        ({"username": "spec.p", "display_name": "A", "role": "specialist", "organisation": str(city.id),
          "title": "chief", "specialties": "cardiology", "password": "short"}, "password"),
        ({"username": "spec.r", "display_name": "A", "role": "superuser", "organisation": str(city.id),
          "title": "chief", "specialties": "cardiology", "password": "long enough!"}, "role"),
        ({"username": "spec.t", "display_name": "", "role": "specialist", "organisation": str(city.id),
          "title": "professor", "specialties": "astrology", "password": "long enough!"}, "title"),
    ]
    for fields, field in cases:
        resp = await client.post("/admin/users", data={"csrf_token": csrf, **fields})
        assert resp.status == 400, fields
        assert f'id="{field}-error"' in await resp.text(), fields
    resp = await client.post("/admin/users", data={"csrf_token": "forged", **cases[0][0], "username": "forged.one"})
    assert resp.status == 403
    assert len(await store.list_all_users()) == before


async def test_deactivating_an_account_ends_its_sessions(client: TestClient) -> None:  # type: ignore[type-arg]
    import aiohttp

    store = client.app[keys.STORE]  # type: ignore[index]
    doctor = await store.get_user_by_username("village2")
    base = str(client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession(cookie_jar=CookieJar(unsafe=True)) as doctors_browser:
        page = await (await doctors_browser.get(base + "/login")).text()
        from telehealth.records.seed import DEMO_PASSWORD
        await doctors_browser.post(base + "/login", data={"username": "village2", "password": DEMO_PASSWORD,
                                                          "csrf_token": csrf_from(page)})
        assert (await doctors_browser.get(base + "/api/me")).status == 200
        csrf = await admin_csrf(client, f"/admin/users/{doctor.id}")
        resp = await client.post(f"/admin/users/{doctor.id}", data={
            "csrf_token": csrf, "display_name": doctor.display_name, "title": ""},
            allow_redirects=False)
        assert resp.status == 303
        assert (await doctors_browser.get(base + "/api/me")).status == 401
    assert not (await store.get_user(doctor.id)).active
    assert await sign_in_elsewhere(client, "village2", DEMO_PASSWORD) != 303
    listing = await (await client.get("/admin/users")).text()
    assert 'data-username="village2"' in listing
    # Reactivated, with a new password set by the administrator.
    await client.post(f"/admin/users/{doctor.id}", data={
        "csrf_token": csrf, "display_name": doctor.display_name, "title": "", "active": "on"})
    resp = await client.post(f"/admin/users/{doctor.id}/password", data={"csrf_token": csrf, "password": "short"})
    assert resp.status == 400
    resp = await client.post(f"/admin/users/{doctor.id}/password",
                             data={"csrf_token": csrf, "password": "a new password for her"}, allow_redirects=False)
    assert resp.status == 303
    assert await sign_in_elsewhere(client, "village2", "a new password for her") == 303
    assert await sign_in_elsewhere(client, "village2", DEMO_PASSWORD) != 303


async def test_an_admin_cannot_deactivate_themselves(client: TestClient) -> None:  # type: ignore[type-arg]
    store = client.app[keys.STORE]  # type: ignore[index]
    me = await store.get_user_by_username("alliance.admin")
    csrf = await admin_csrf(client, f"/admin/users/{me.id}")
    resp = await client.post(f"/admin/users/{me.id}", data={"csrf_token": csrf, "display_name": "Zhou Min"})
    assert resp.status == 400 and 'id="active-error"' in await resp.text()
    assert (await store.get_user(me.id)).active


async def test_another_alliance_is_out_of_reach(client: TestClient) -> None:  # type: ignore[type-arg]
    store = client.app[keys.STORE]  # type: ignore[index]
    now = dt.datetime.now(dt.UTC)
    other = await store.insert_alliance("Riverside group", "county_community")
    far_clinic = await store.insert_organisation("Riverside clinic", OrgLevel.village_clinic, alliance_id=other.id)
    far_hospital = await store.insert_organisation("Riverside hospital", OrgLevel.county_hospital,
                                                   alliance_id=other.id)
    far_doc = await store.insert_user("river.doc", "x", "River", Role.clinic_doctor, organisation_id=far_clinic.id,
                                      now=now, title=Title.resident)
    csrf = await admin_csrf(client)
    listing = await (await client.get("/admin/users")).text()
    assert "river.doc" not in listing and 'data-username="admin"' not in listing
    assert (await client.get(f"/admin/users/{far_doc.id}")).status == 404
    system_admin = await store.get_user_by_username("admin")
    assert (await client.get(f"/admin/users/{system_admin.id}")).status == 404
    resp = await client.post(f"/admin/users/{far_doc.id}", data={"csrf_token": csrf, "display_name": "Taken over"})
    assert resp.status == 404
    resp = await client.post(f"/admin/users/{far_doc.id}/password", data={"csrf_token": csrf,
                                                                          "password": "hijacked password"})
    assert resp.status == 404
    resp = await client.post("/admin/users", data={
        "csrf_token": csrf, "username": "planted", "display_name": "P", "role": "clinic_doctor",
        "organisation": str(far_clinic.id), "title": "resident", "password": "long enough!"})
    assert resp.status == 400
    orgs_page = await (await client.get("/admin/organisations")).text()
    assert f'data-org="{far_clinic.id}"' not in orgs_page
    resp = await client.post(f"/admin/organisations/{far_hospital.id}", data={"csrf_token": csrf, "name": "Mine"})
    assert resp.status == 404
    # An agreement between two institutions of another alliance is not this administrator's to record.
    resp = await client.post("/admin/agreements", data={
        "csrf_token": csrf, "clinic": str(far_clinic.id), "hospital": str(far_hospital.id),
        "valid_from": "2026-01-01"})
    assert resp.status == 400
    assert (await store.get_user(far_doc.id)).display_name == "River"
    assert await store.get_user_by_username("planted") is None
    assert (await store.get_organisation(far_hospital.id)).name == "Riverside hospital"
    assert await store.list_agreements([far_clinic.id]) == []
    # A clinic doctor is refused the pages altogether.
    client.session.cookie_jar.clear()
    await login(client, "village1")
    assert (await client.get("/admin/users")).status == 403
    assert (await client.get("/admin/organisations")).status == 403


async def test_organisations_and_an_agreement_that_widens_matching(client: TestClient) -> None:  # type: ignore[type-arg]
    store = client.app[keys.STORE]  # type: ignore[index]
    csrf = await admin_csrf(client, "/admin/organisations")
    resp = await client.post("/admin/organisations", data={
        "csrf_token": csrf, "name": "Willow village clinic", "name_zh": "柳树村卫生室", "level": "village_clinic",
        "region": "Heping"}, allow_redirects=False)
    assert resp.status == 303
    willow = await store.get_organisation_by_name("Willow village clinic")
    me = await store.get_user_by_username("alliance.admin")
    city = await store.get_organisation_by_name(CITY)
    assert willow.alliance_id == (await store.get_organisation(me.organisation_id)).alliance_id
    resp = await client.post("/admin/organisations", data={"csrf_token": csrf, "name": "Willow village clinic",
                                                           "level": "village_clinic"})
    assert resp.status == 400 and 'id="name-error"' in await resp.text()
    resp = await client.post("/admin/organisations", data={"csrf_token": csrf, "name": "Nowhere", "level": "castle"})
    assert resp.status == 400 and await store.get_organisation_by_name("Nowhere") is None
    resp = await client.post(f"/admin/organisations/{city.id}", data={
        "csrf_token": csrf, "name": city.name, "name_zh": city.name_zh, "region": "Qingshan north",
        "city_group_pilot": "on"}, allow_redirects=False)
    assert resp.status == 303 and (await store.get_organisation(city.id)).region == "Qingshan north"
    # A hospital outside the alliance: no partner until an agreement is recorded, then a partner.
    outside = await store.insert_organisation("Provincial hospital", OrgLevel.city_hospital, alliance_id=None)
    now = dt.datetime.now(dt.UTC)
    _, partners = await store.get_partner_hospitals(willow.id, now)
    assert outside.id not in partners and city.id in partners
    resp = await client.post("/admin/agreements", data={
        "csrf_token": csrf, "clinic": str(willow.id), "hospital": str(outside.id), "valid_from": "2026-01-01",
        "valid_to": "2025-01-01"})
    assert resp.status == 400 and 'id="valid_to-error"' in await resp.text()
    resp = await client.post("/admin/agreements", data={
        "csrf_token": csrf, "clinic": str(willow.id), "hospital": str(outside.id),
        "valid_from": (now.date() - dt.timedelta(days=1)).isoformat()}, allow_redirects=False)
    assert resp.status == 303
    # An invitation: the clinic's side approved by proposing it, the hospital's side has not.
    [agreement] = await store.list_agreements([willow.id])
    assert agreement.state.value == "clinic_approved"
    _, partners = await store.get_partner_hospitals(willow.id, now)
    assert outside.id not in partners
    page = await (await client.get("/admin/organisations")).text()
    assert f'data-agreement="{agreement.id}" data-state="clinic_approved"' in page
    assert f'data-pending="{agreement.id}"' not in page  # nothing for this side to approve
    # The hospital is in no alliance: the system administrator speaks for it, and approves.
    client.session.cookie_jar.clear()
    csrf = await admin_csrf(client, "/admin/organisations", username="admin")
    page = await (await client.get("/admin/organisations")).text()
    assert f'data-pending="{agreement.id}"' in page
    resp = await client.post(f"/admin/agreements/{agreement.id}/approve", data={"csrf_token": csrf},
                             allow_redirects=False)
    assert resp.status == 303
    _, partners = await store.get_partner_hospitals(willow.id, dt.datetime.now(dt.UTC))
    assert outside.id in partners
    client.session.cookie_jar.clear()
    csrf = await admin_csrf(client, "/admin/organisations")
    # Ending it needs a reason, told to the other side.
    resp = await client.post(f"/admin/agreements/{agreement.id}/end", data={"csrf_token": csrf})
    assert resp.status == 400 and 'id="reason-error"' in await resp.text()
    resp = await client.post(f"/admin/agreements/{agreement.id}/end", data={
        "csrf_token": csrf, "reason": "the county hospital now covers cardiology"}, allow_redirects=False)
    assert resp.status == 303
    _, partners = await store.get_partner_hospitals(willow.id, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    assert outside.id not in partners
    resp = await client.post(f"/admin/agreements/{agreement.id}/end", data={"csrf_token": csrf, "reason": "again"})
    assert resp.status == 409
    actions = {e["action"] for e in await store.list_audit(limit=50)}
    assert {"organisation.create", "organisation.update", "agreement.propose", "agreement.approve",
            "agreement.end"} <= actions
