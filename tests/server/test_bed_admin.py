"""Administrators publish inpatient beds by form and by CSV, see the pool (in Chinese first), and the policy
statistics show the reserved share of beds against the floor and its use, the page with the JSON's figures."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp.test_utils import TestClient

from telehealth.domain import OrgLevel, Urgency
from telehealth.records.models import NewConsultation
from telehealth.server import keys
from tests.conftest import csrf_from, login

CITY = "Qingshan First People's Hospital"
COUNTY = "Heping County People's Hospital"
TZ = ZoneInfo("Asia/Shanghai")


async def admin_csrf(client: TestClient) -> str:  # type: ignore[type-arg]
    resp = await login(client, "alliance.admin")
    assert resp.status == 303
    page = await client.get("/admin/beds")
    assert page.status == 200
    return csrf_from(await page.text(), "/admin/beds")


def day_ahead(days: int) -> dt.date:
    return dt.datetime.now(TZ).date() + dt.timedelta(days=days)


async def test_publishing_a_wards_beds_holds_a_quarter_at_the_pilot_lead(client: TestClient) -> None:  # type: ignore[type-arg]
    csrf = await admin_csrf(client)
    store = client.app[keys.STORE]  # type: ignore[index]
    city, county = await store.get_organisation_by_name(CITY), await store.get_organisation_by_name(COUNTY)
    day = day_ahead(5)
    resp = await client.post("/admin/beds", data={"csrf_token": csrf, "hospital": str(city.id), "ward": "cardiology",
                                                  "date": day.isoformat(), "beds": "10"}, allow_redirects=False)
    # The city hospital leads the pilot: a quarter of 10 is 2.5, rounded up to 3.
    assert resp.status == 303 and resp.headers["Location"].endswith("published=10&reserved=3")
    page = await (await client.get(resp.headers["Location"])).text()
    assert "已发布 10 张床位，其中 3 张新预留给基层上转患者。" in page and "住院床位" in page
    row = page.split(f'<tr data-org="{city.id}" data-ward="cardiology" data-day="{day.isoformat()}">')[1]
    assert 'class="published">10<' in row and 'class="reserved">3<' in row
    floors = page.split('id="bed-floors"')[1].split("</table>")[0]
    assert "25.0 %" in floors.split(f'data-org="{city.id}"')[1].split("</tr>")[0]
    assert "0.0 %" in floors.split(f'data-org="{county.id}"')[1].split("</tr>")[0]
    # The county hospital does not lead the group: the policy holds none of its beds.
    resp = await client.post("/admin/beds", data={"csrf_token": csrf, "hospital": str(county.id),
                                                  "ward": "cardiology", "date": day.isoformat(), "beds": "6"},
                             allow_redirects=False)
    assert resp.headers["Location"].endswith("published=6&reserved=0")
    resp = await client.post("/admin/beds", data={"csrf_token": csrf, "hospital": str(city.id), "ward": "astrology",
                                                  "date": day.isoformat(), "beds": "4"})
    assert resp.status == 400 and 'id="beds-errors"' in await resp.text()
    resp = await client.post("/admin/beds", data={"csrf_token": csrf, "hospital": str(city.id), "ward": "cardiology",
                                                  "date": day.isoformat(), "beds": "0"})
    assert resp.status == 400
    assert len(await store.list_beds(hospital_org_ids=[city.id])) == 10
    # A hospital of another alliance is out of reach.
    other = await store.insert_alliance("Other group", "county_community")
    foreign = await store.insert_organisation("Far Hospital", OrgLevel.county_hospital, alliance_id=other.id)
    resp = await client.post("/admin/beds", data={"csrf_token": csrf, "hospital": str(foreign.id),
                                                  "ward": "cardiology", "date": day.isoformat(), "beds": "4"})
    assert resp.status == 400 and "Far Hospital" not in await resp.text()
    assert await store.list_beds(hospital_org_ids=[foreign.id]) == []


async def test_a_csv_bed_table_imports_whole_or_not_at_all(client: TestClient) -> None:  # type: ignore[type-arg]
    csrf = await admin_csrf(client)
    store = client.app[keys.STORE]  # type: ignore[index]
    city = await store.get_organisation_by_name(CITY)
    d1, d2 = day_ahead(3).isoformat(), day_ahead(4).isoformat()
    good = f"hospital,ward,date,beds\n{CITY},neurology,{d1},8\n青山市第一人民医院,neurology,{d2},5\n"
    bad = good + f"{CITY},neurology,{d1},many\nNowhere Hospital,neurology,{d1},3\n"

    async def upload(text: str) -> aiohttp.ClientResponse:
        form = aiohttp.FormData()
        form.add_field("csrf_token", csrf)
        form.add_field("file", text.encode(), filename="beds.csv", content_type="text/csv")
        return await client.post("/admin/beds/import", data=form, allow_redirects=False)

    resp = await upload(bad)
    assert resp.status == 400
    page = await resp.text()
    assert "第 4 行：床位数必须是 1 到 500 之间的整数" in page and "第 5 行" in page
    assert await store.list_beds(hospital_org_ids=[city.id]) == []
    resp = await upload(good)
    # 8 beds: a quarter is 2; 5 beds: 1.25, rounded up to 2.
    assert resp.status == 303 and resp.headers["Location"].endswith("published=13&reserved=4")
    resp = await upload(good)
    assert resp.headers["Location"].endswith("published=0&reserved=0")


async def test_clinic_doctors_cannot_publish_beds(client: TestClient) -> None:  # type: ignore[type-arg]
    await login(client, "village1")
    assert (await client.get("/admin/beds", allow_redirects=False)).status == 403


async def test_the_statistics_show_the_reserved_beds_against_the_floor_and_their_use(client: TestClient) -> None:  # type: ignore[type-arg]
    store = client.app[keys.STORE]  # type: ignore[index]
    city, county = await store.get_organisation_by_name(CITY), await store.get_organisation_by_name(COUNTY)
    doctor = await store.get_user_by_username("village1")
    d1, d2 = day_ahead(1), day_ahead(2)
    now = dt.datetime.now(dt.UTC)
    # City cardiology: 10 + 6 beds, 3 + 2 reserved (a quarter rounded up). County cardiology: 6, none reserved.
    await store.publish_beds([(city.id, "cardiology", d1, 10), (city.id, "cardiology", d2, 6),
                              (county.id, "cardiology", d1, 6)])
    held = await store.list_beds(hospital_org_ids=[city.id], open_reserved=True)
    assert len(held) == 5
    for bed in held[:2]:  # two of the five booked by referrals up from the village clinic
        c = await store.insert_consultation(NewConsultation(
            patient_name="Patient Li", patient_sex="male", patient_birth_year=1955, patient_local_id="",
            specialty="cardiology", urgency=Urgency.urgent, chief_complaint="chest pain", consent_by="patient",
            consent_name="Patient Li"), clinic_org_id=doctor.organisation_id, doctor_id=doctor.id, now=now)
        await store.book_bed(c.id, bed.id, now=now, tz=TZ, release_hours=0)
    await login(client, "alliance.admin")
    query = f"from={d1.isoformat()}&to={d2.isoformat()}"
    f = await (await client.get(f"/api/admin/statistics?{query}")).json()
    rows = {(r["hospital_org_id"], r["ward"]): r for r in f["reserved_beds"]}
    assert set(rows) == {(city.id, "cardiology"), (county.id, "cardiology")}
    c = rows[(city.id, "cardiology")]
    # 5 of 16 is 31.25 %, above the quarter; 2 of the 5 booked (40 %), none released yet.
    assert (c["days"], c["published"], c["reserved"], c["booked"], c["released"]) == (2, 16, 5, 2, 0)
    assert (c["reserved_share"], c["floor"], c["floor_basis"], c["meets_floor"]) == (
        0.3125, 0.25, "city_group_pilot_lead", True)
    assert c["booked_share"] == 0.4
    k = rows[(county.id, "cardiology")]
    assert (k["published"], k["reserved"], k["floor"], k["floor_basis"], k["meets_floor"], k["booked_share"]) == (
        6, 0, 0.0, "none", True, None)
    page = await (await client.get(f"/admin/statistics?{query}")).text()
    table = page.split('id="reserved-beds-table"')[1].split("</table>")[0]
    assert "预留住院床位" in page
    for r in f["reserved_beds"]:
        row = table.split(f'<tr data-hospital="{r["hospital_org_id"]}" data-ward="{r["ward"]}">')[1].split("</tr>")[0]
        assert f'class="published">{r["published"]}<' in row
        assert f'class="reserved">{r["reserved"]} (' in row and f'class="booked">{r["booked"]} (' in row
        assert f'class="floor">{r["floor"] * 100:.1f} %' in row and f'class="released">{r["released"]}<' in row
    assert "5 (31.2 %)" in table and "2 (40.0 %)" in table
