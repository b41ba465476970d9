"""Administrators publish outpatient slots by form and by CSV timetable, set a hospital's reserved share, and
see the reserved pool; bad timetables import nothing; another alliance's hospitals are out of reach."""

from __future__ import annotations

import datetime as dt

import aiohttp
from aiohttp.test_utils import TestClient

from telehealth.domain import OrgLevel
from telehealth.server import keys
from tests.conftest import csrf_from, login

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


async def test_publishing_a_day_reserves_the_floor(client: TestClient) -> None:  # type: ignore[type-arg]
    csrf = await admin_csrf(client)
    store = client.app[keys.STORE]  # type: ignore[index]
    county = await store.get_organisation_by_name(COUNTY)
    day = far_day()
    resp = await client.post("/admin/slots", data={
        "csrf_token": csrf, "hospital": str(county.id), "department": "dermatology", "date": day.isoformat(),
        "first": "14:00", "last": "16:30", "every": "30", "location": "Building 3, room 12"}, allow_redirects=False)
    assert resp.status == 303 and "published=6&reserved=2" in resp.headers["Location"]
    page = await (await client.get(resp.headers["Location"])).text()
    assert 'id="slots-notice"' in page and day.isoformat() in page
    slots = await store.list_slots(hospital_org_ids=[county.id], department="dermatology")
    assert len(slots) == 6 and sum(s.reserved for s in slots) == 2
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
