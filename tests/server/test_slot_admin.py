"""Administrators publish outpatient slots by form and by CSV timetable, set a hospital's reserved share, and
see the reserved pool; bad timetables import nothing; another alliance's hospitals are out of reach."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from telehealth.domain import OrgLevel
from telehealth.server import keys
from telehealth.server.app import create_app
from tests.conftest import csrf_from, login, make_settings

CITY = "Qingshan First People's Hospital"
COUNTY = "Heping County People's Hospital"


async def admin_csrf(client: TestClient, username: str = "alliance.admin") -> str:  # type: ignore[type-arg]
    resp = await login(client, username)
    assert resp.status == 303
    page = await client.get("/admin/slots")
    assert page.status == 200
    return csrf_from(await page.text(), "/admin/slots")


def far_day() -> dt.date:
    return dt.date.today() + dt.timedelta(days=10)


async def test_publishing_a_day_reserves_the_share(client: TestClient) -> None:  # type: ignore[type-arg]
    csrf = await admin_csrf(client)
    store = client.app[keys.STORE]  # type: ignore[index]
    county = await store.get_organisation_by_name(COUNTY)
    day = far_day()
    resp = await client.post("/admin/slots", data={
        "csrf_token": csrf, "hospital": str(county.id), "department": "dermatology", "date": day.isoformat(),
        "first": "14:00", "last": "16:30", "every": "30", "location": "Building 3, room 12"}, allow_redirects=False)
    # The county hospital does not lead the group: the group's rule of 10 % asks 0.6 of 6, rounded up to 1.
    assert resp.status == 303 and "published=6&reserved=1" in resp.headers["Location"]
    page = await (await client.get(resp.headers["Location"])).text()
    assert 'id="slots-notice"' in page and f"{day.year}年{day.month}月{day.day}日" in page
    slots = await store.list_slots(hospital_org_ids=[county.id], department="dermatology")
    assert len(slots) == 6 and sum(s.reserved for s in slots) == 1
    resp = await client.post("/admin/slots", data={
        "csrf_token": csrf, "hospital": str(county.id), "department": "dermatology", "date": "tomorrow",
        "first": "14:00", "last": "16:30", "every": "30"})
    assert resp.status == 400 and 'id="slots-errors"' in await resp.text()
    resp = await client.post("/admin/slots", data={
        "csrf_token": "forged", "hospital": str(county.id), "department": "dermatology", "date": day.isoformat(),
        "first": "08:00", "last": "09:00", "every": "30"})
    assert resp.status == 403
    assert len(await store.list_slots(hospital_org_ids=[county.id], department="dermatology")) == 6


async def test_a_csv_timetable_imports_whole_or_not_at_all(client: TestClient) -> None:  # type: ignore[type-arg]
    csrf = await admin_csrf(client)
    store = client.app[keys.STORE]  # type: ignore[index]
    day = far_day().isoformat()
    good = "hospital,department,date,time,duration_min,location\n" + "".join(
        f"{CITY},obstetrics,{day},{8 + i // 2:02d}:{30 * (i % 2):02d},20,Women's building\n" for i in range(9))
    bad = good + f"Nowhere Hospital,obstetrics,{day},13:00,,\n{CITY},astrology,{day},13:30,,\n"

    async def upload(text: str) -> aiohttp.ClientResponse:
        form = aiohttp.FormData()
        form.add_field("csrf_token", csrf)
        form.add_field("file", text.encode(), filename="timetable.csv", content_type="text/csv")
        return await client.post("/admin/slots/import", data=form, allow_redirects=False)

    resp = await upload(bad)
    assert resp.status == 400
    page = await resp.text()
    assert "第 11 行" in page and "第 12 行" in page  # each problem names its line, in the page's language
    city = await store.get_organisation_by_name(CITY)
    assert await store.list_slots(hospital_org_ids=[city.id], department="obstetrics") == []
    resp = await upload(good)
    # Nine slots at a pilot hospital: one third, three reserved.
    assert resp.status == 303 and "published=9&reserved=3" in resp.headers["Location"]
    slots = await store.list_slots(hospital_org_ids=[city.id], department="obstetrics")
    assert len(slots) == 9 and {s.duration_min for s in slots} == {20} and slots[0].location == "Women's building"
    resp = await upload(good)  # the same timetable again adds nothing
    assert "published=0&reserved=0" in resp.headers["Location"]
    resp = await upload("hospital;department\n")
    assert resp.status == 400 and "header" in await resp.text()


async def test_a_higher_share_tops_up_days_ahead_and_a_foreign_hospital_is_refused(client: TestClient) -> None:  # type: ignore[type-arg]
    csrf = await admin_csrf(client)
    store = client.app[keys.STORE]  # type: ignore[index]
    county = await store.get_organisation_by_name(COUNTY)
    before = sum(s.reserved for s in await store.list_slots(hospital_org_ids=[county.id], department="cardiology"))
    resp = await client.post(f"/admin/organisations/{county.id}/reserved-share",
                             data={"csrf_token": csrf, "share": "50"}, allow_redirects=False)
    assert resp.status == 303
    slots = await store.list_slots(hospital_org_ids=[county.id], department="cardiology")
    assert sum(s.reserved for s in slots) > before
    assert (await store.get_organisation(county.id)).reserved_share_pct == 50
    other = await store.insert_alliance("Other group", "county_community")
    foreign = await store.insert_organisation("Far Hospital", OrgLevel.county_hospital, alliance_id=other.id)
    resp = await client.post(f"/admin/organisations/{foreign.id}/reserved-share",
                             data={"csrf_token": csrf, "share": "40"}, allow_redirects=False)
    assert resp.status == 403
    assert (await store.get_organisation(foreign.id)).reserved_share_pct is None
    page = await (await client.get("/admin/slots")).text()
    assert "Far Hospital" not in page


async def test_clinic_doctors_cannot_publish(client: TestClient) -> None:  # type: ignore[type-arg]
    await login(client, "village1")
    resp = await client.get("/admin/slots", allow_redirects=False)
    assert resp.status == 403


async def test_the_share_rule_over_the_json_api_and_the_page(client: TestClient) -> None:  # type: ignore[type-arg]
    store = client.app[keys.STORE]  # type: ignore[index]
    city, county = await store.get_organisation_by_name(CITY), await store.get_organisation_by_name(COUNTY)
    songxi = await store.get_organisation_by_name("Songxi County People's Hospital")
    group = await store.get_alliance_by_name("Qingshan City Medical Group")
    community = await store.get_alliance_by_name("Songxi County Medical Community")
    await login(client, "alliance.admin")
    csrf = (await (await client.get("/api/me")).json())["csrf_token"]
    headers = {"X-CSRF-Token": csrf}
    body = await (await client.get("/api/admin/reserved-shares")).json()
    shares = {h["org_id"]: h for h in body["hospitals"]}
    # The group's own hospitals only: the pilot's lead at one third, the member county hospital at the group's
    # rule of 10 % with no floor of its own.
    assert set(shares) == {city.id, county.id} and body["floor_for_every_hospital"] is False
    assert (shares[city.id]["floor_pct"], shares[city.id]["floor_basis"]) == (33.3, "city_group_pilot_lead")
    assert (shares[county.id]["floor_pct"], shares[county.id]["share_pct"], shares[county.id]["share_basis"]) \
        == (0.0, 10.0, "alliance")
    assert [(a["id"], a["member_share_pct"]) for a in body["alliances"]] == [(group.id, 10)]
    # 25 % at the county hospital: each of its 28 department-days ahead (4 departments, 7 days, 8 slots) holds
    # 1 reserved slot (10 % of 8 = 0.8, up) and needs 2 (25 % of 8): 28 more.
    resp = await client.put(f"/api/admin/organisations/{county.id}/reserved-share", json={"pct": 25},
                            headers=headers)
    assert resp.status == 200
    answer = await resp.json()
    assert answer["newly_reserved"] == 28
    assert (answer["hospital"]["share_pct"], answer["hospital"]["share_basis"]) == (25.0, "hospital")
    [entry] = [e for e in await store.list_audit(limit=20) if e["action"] == "organisation.reserved_share"]
    assert entry["target"] == f"organisation:{county.id}"
    # The page shows what the API says.
    page = await (await client.get("/admin/slots")).text()
    row = page.split(f'<tr data-org="{county.id}">')[1].split("</tr>")[0]
    assert "25.0 %" in row and "0.0 %" in row
    # A share out of range is refused; another alliance's hospital or alliance is out of reach, whatever the body.
    resp = await client.put(f"/api/admin/organisations/{county.id}/reserved-share", json={"pct": 150},
                            headers=headers)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_message"
    for path in (f"/api/admin/organisations/{songxi.id}/reserved-share",
                 f"/api/admin/alliances/{community.id}/member-share"):
        for payload in ({"pct": 40}, {"pct": "forty"}):
            resp = await client.put(path, json=payload, headers=headers)
            assert resp.status == 403, (path, payload)
    assert (await store.get_organisation(songxi.id)).reserved_share_pct is None
    # The group's rule, from the form: none at all now.
    slots_page = await client.get("/admin/slots")
    form_csrf = csrf_from(await slots_page.text(), f"/admin/alliances/{group.id}/member-share")
    resp = await client.post(f"/admin/alliances/{group.id}/member-share", data={"csrf_token": form_csrf, "share": ""},
                             allow_redirects=False)
    assert resp.status == 303 and (await store.get_alliance(group.id)).member_share_pct is None
    assert "alliance.member_share" in [e["action"] for e in await store.list_audit(limit=20)]


async def test_the_county_communitys_lead_reserves_20_percent(client: TestClient) -> None:  # type: ignore[type-arg]
    store = client.app[keys.STORE]  # type: ignore[index]
    songxi = await store.get_organisation_by_name("Songxi County People's Hospital")
    await login(client, "songxi.admin")
    body = await (await client.get("/api/admin/reserved-shares")).json()
    [share] = body["hospitals"]
    assert (share["org_id"], share["floor_pct"], share["floor_basis"]) == (songxi.id, 20.0, "alliance_lead")
    # The demo's slots: 8 a department-day, 2 of them reserved (1.6 up).
    days = await store.list_slot_days(hospital_org_ids=[songxi.id], start=dt.datetime.now(dt.UTC),
                                      end=dt.datetime.now(dt.UTC) + dt.timedelta(days=9), tz=client.app[keys.SETTINGS].slots.tz)  # type: ignore[index]
    assert days and all((d.total, d.reserved) == (8, 2) for d in days)


async def test_the_stricter_setting_holds_every_hospital_to_20_percent(aiohttp_client: Any, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, slots={"floor_for_every_hospital": True})
    client = await aiohttp_client(create_app(settings))
    store = client.app[keys.STORE]
    county = await store.get_organisation_by_name(COUNTY)
    await login(client, "alliance.admin")
    body = await (await client.get("/api/admin/reserved-shares")).json()
    share = next(h for h in body["hospitals"] if h["org_id"] == county.id)
    assert body["floor_for_every_hospital"] is True
    assert (share["floor_pct"], share["floor_basis"], share["share_pct"], share["share_basis"]) \
        == (20.0, "every_hospital", 20.0, "floor")
    days = await store.list_slot_days(hospital_org_ids=[county.id], start=dt.datetime.now(dt.UTC),
                                      end=dt.datetime.now(dt.UTC) + dt.timedelta(days=9), tz=settings.slots.tz)
    assert days and all((d.total, d.reserved) == (8, 2) for d in days)
    page = await (await client.get("/admin/slots")).text()
    assert "20 %" in page and 'id="shares"' in page
