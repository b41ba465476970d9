"""The session log for administrators: filters, pagination, the timeline, and alliance boundaries."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from telehealth.domain import OrgLevel, Role, Urgency
from telehealth.records.models import NewConsultation
from telehealth.server import keys
from telehealth.server.app import create_app
from tests.conftest import login, make_settings


def total(page: str) -> int:
    match = re.search(r'<p class="hint">(\d+) ', page)
    assert match, "no result count on the page"
    return int(match.group(1))


@pytest.fixture
async def admin_client(aiohttp_client: object, tmp_path: Path) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    app = create_app(make_settings(tmp_path))
    client = await aiohttp_client(app)  # type: ignore[operator]
    store = app[keys.STORE]
    doctor = await store.get_user_by_username("village1")
    now = dt.datetime.now(dt.UTC)
    for i in range(120):
        request = NewConsultation(
            patient_name=f"Patient Wu {i:03d}", patient_sex="female", patient_birth_year=1970, patient_local_id="",
            specialty="cardiology" if i % 3 else "neurology", urgency=Urgency.urgent if i % 2 else Urgency.routine,
            chief_complaint="c", consent_by="patient", consent_name="P")
        await store.insert_consultation(request, clinic_org_id=doctor.organisation_id, doctor_id=doctor.id, now=now,
                                        queue=True)
    # A second alliance with one consultation the demo alliance's administrator must not see.
    other = await store.insert_alliance("Other group", "city_group")
    clinic = await store.insert_organisation("Far clinic", OrgLevel.village_clinic, alliance_id=other.id)
    far_doc = await store.insert_user("far.doc", "x", "Far", Role.clinic_doctor, organisation_id=clinic.id, now=now)
    far = await store.insert_consultation(NewConsultation(
        patient_name="F", patient_sex="male", patient_birth_year=1960, patient_local_id="", specialty="neurology",
        urgency=Urgency.routine, chief_complaint="c"), clinic_org_id=clinic.id, doctor_id=far_doc.id, now=now)
    client.far_id = far.id  # type: ignore[attr-defined]
    yield client


async def test_filters_and_pagination(admin_client: TestClient) -> None:  # type: ignore[type-arg]
    await login(admin_client, "alliance.admin")
    page = await (await admin_client.get("/admin/consultations")).text()
    assert total(page) == 120 and "1 / 3" in page
    page = await (await admin_client.get("/admin/consultations?specialty=neurology&urgency=routine")).text()
    assert total(page) == 20  # i % 3 == 0 and i % 2 == 0 among 0..119
    page = await (await admin_client.get("/admin/consultations?specialty=cardiology&page=2")).text()
    assert total(page) == 80 and "2 / 2" in page
    resp = await admin_client.get("/admin/consultations?urgency=whenever")
    assert resp.status == 400


async def test_an_alliance_administrator_sees_only_their_alliance(admin_client: TestClient) -> None:  # type: ignore[type-arg]
    await login(admin_client, "alliance.admin")
    page = await (await admin_client.get("/admin/consultations?specialty=neurology")).text()
    assert total(page) == 40
    resp = await admin_client.get(f"/admin/consultations/{admin_client.far_id}")  # type: ignore[attr-defined]
    assert resp.status == 403
    admin_client.session.cookie_jar.clear()
    await login(admin_client, "admin")  # the system administrator sees every alliance
    page = await (await admin_client.get("/admin/consultations?specialty=neurology")).text()
    assert total(page) == 41
    resp = await admin_client.get(f"/admin/consultations/{admin_client.far_id}")  # type: ignore[attr-defined]
    assert resp.status == 200 and "requested" in await resp.text()


async def test_the_timeline_of_one_consultation(admin_client: TestClient) -> None:  # type: ignore[type-arg]
    await login(admin_client, "alliance.admin")
    resp = await admin_client.get("/admin/consultations/1")
    text = await resp.text()
    assert resp.status == 200 and 'data-kind="requested"' in text and 'data-kind="queued"' in text
    assert "Patient Wu" not in text  # the log page shows no patient name


async def test_csv_export_streams_every_matching_row(admin_client: TestClient) -> None:  # type: ignore[type-arg]
    store = admin_client.app[keys.STORE]  # type: ignore[union-attr]
    doctor = await store.get_user_by_username("village2")
    now = dt.datetime.now(dt.UTC)
    for i in range(1100):  # more than two export batches
        await store.insert_consultation(NewConsultation(
            patient_name=f"Q{i}", patient_sex="male", patient_birth_year=1950, patient_local_id="",
            specialty="paediatrics", urgency=Urgency.routine, chief_complaint="c", consent_by="patient",
            consent_name="Q"), clinic_org_id=doctor.organisation_id, doctor_id=doctor.id, now=now, queue=True)
    await login(admin_client, "alliance.admin")
    resp = await admin_client.get("/admin/consultations.csv?specialty=paediatrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    assert resp.headers.get("Transfer-Encoding") == "chunked"
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[0][0] == "consultation" and len(rows) == 1 + 1100
    ids = [int(r[0]) for r in rows[1:]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 1100
    assert all(r[3] == "paediatrics" for r in rows[1:])
    assert "Q1" not in await resp.text()  # no patient names in the export
    resp = await admin_client.get("/admin/consultations.csv?specialty=nope")
    assert resp.status == 400


async def bulk_consultations(store: Any, n: int, *, clinic_ids: list[int], doctor_id: int,
                             specialists: list[int | None], start: dt.datetime) -> list[dict[str, Any]]:
    """Insert `n` consultations in one go (patients, consultations, some call sessions) and return what was
    generated, so the test can count what each filter must find."""
    from telehealth.records import schema as t

    specialties = ["cardiology", "neurology", "paediatrics"]
    urgencies = ["emergency", "urgent", "routine"]
    states = ["queued", "closed", "cancelled", "expired", "signed"]
    rows = []
    for i in range(n):
        state = states[i % 5]
        rows.append({"id": None, "clinic": clinic_ids[i % len(clinic_ids)], "specialty": specialties[i % 3],
                     "urgency": urgencies[(i // 3) % 3], "state": state, "at": start + dt.timedelta(minutes=7 * i),
                     "specialist": specialists[i % len(specialists)] if state in ("closed", "signed") else None,
                     "end_reason": ("network" if i % 4 == 0 else "hangup") if state == "closed" else None})
    async with store.engine.begin() as conn:
        first_patient = (await conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.patients.c.id), 0)))).scalar_one()
        first = (await conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.consultations.c.id), 0)))).scalar_one()
        await conn.execute(t.patients.insert(), [
            {"id": first_patient + i + 1, "organisation_id": r["clinic"], "name": f"Patient Wu {i:05d}", "sex": "male",
             "birth_year": 1950, "created_at": r["at"]} for i, r in enumerate(rows)])
        await conn.execute(t.consultations.insert(), [
            {"id": first + i + 1, "patient_id": first_patient + i + 1, "clinic_org_id": r["clinic"],
             "requesting_doctor_id": doctor_id, "accompanying_doctor_id": doctor_id, "specialty": r["specialty"],
             "urgency": r["urgency"], "state": r["state"], "assigned_specialist_id": r["specialist"], "version": 1,
             "created_at": r["at"], "queued_at": r["at"], "updated_at": r["at"]} for i, r in enumerate(rows)])
        sessions = [{"consultation_id": first + i + 1, "clinic_user_id": doctor_id,
                     "specialist_user_id": r["specialist"], "started_at": r["at"], "connected_at": r["at"],
                     "ended_at": r["at"] + dt.timedelta(minutes=5), "end_reason": r["end_reason"]}
                    for i, r in enumerate(rows) if r["end_reason"]]
        if sessions:
            await conn.execute(t.call_sessions.insert(), sessions)
    for i, r in enumerate(rows):
        r["id"] = first + i + 1
    return rows


async def test_filters_and_pages_over_thousands_of_consultations(client: Any) -> None:
    store = client.app[keys.STORE]
    doctor = await store.get_user_by_username("village1")
    township = await store.get_user_by_username("township1")
    city_chief = await store.get_user_by_username("cardio.chief")
    county = await store.get_user_by_username("cardio.attending")
    start = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
    rows = await bulk_consultations(store, 3000, clinic_ids=[doctor.organisation_id, township.organisation_id],
                                    doctor_id=doctor.id, specialists=[city_chief.id, county.id], start=start)
    await login(client, "alliance.admin")

    async def count(query: str) -> int:
        resp = await client.get(f"/admin/consultations?{query}")
        assert resp.status == 200, query
        return total(await resp.text())

    assert await count("") == 3000
    assert await count("specialty=neurology&urgency=routine") == sum(
        1 for r in rows if r["specialty"] == "neurology" and r["urgency"] == "routine")
    assert await count(f"clinic={township.organisation_id}&state=closed") == sum(
        1 for r in rows if r["clinic"] == township.organisation_id and r["state"] == "closed")
    assert await count(f"hospital={county.organisation_id}") == sum(1 for r in rows if r["specialist"] == county.id)
    assert await count("end_reason=network") == sum(1 for r in rows if r["end_reason"] == "network") > 0
    day = start + dt.timedelta(days=3)
    assert await count(f"from={day.date()}&to={day.date()}") == sum(1 for r in rows if r["at"].date() == day.date())
    # Page 37 of 60 holds the 1801st to 1850th newest, in order.
    page = await (await client.get("/admin/consultations?page=37")).text()
    shown = [int(m) for m in re.findall(r'href="/admin/consultations/(\d+)"', page)]
    newest_first = sorted((r["id"] for r in rows), reverse=True)
    assert shown == newest_first[1800:1850] and "37 / 60" in page
    assert (await client.get("/admin/consultations?end_reason=teleported")).status == 400


async def test_the_csv_export_holds_memory_flat_as_the_set_grows(client: Any) -> None:
    import gc
    import tracemalloc

    store = client.app[keys.STORE]
    doctor = await store.get_user_by_username("village1")
    chief = await store.get_user_by_username("cardio.chief")
    start = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    await login(client, "alliance.admin")

    async def export_peak() -> tuple[int, int]:
        gc.collect()
        tracemalloc.start()
        resp = await client.get("/admin/consultations.csv?from=2026-06-01")
        lines = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            lines += chunk.count(b"\n")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return lines - 1, peak

    await bulk_consultations(store, 2000, clinic_ids=[doctor.organisation_id], doctor_id=doctor.id,
                             specialists=[chief.id], start=start)
    small_rows, small_peak = await export_peak()
    await bulk_consultations(store, 18000, clinic_ids=[doctor.organisation_id], doctor_id=doctor.id,
                             specialists=[chief.id], start=start)
    large_rows, large_peak = await export_peak()
    assert (small_rows, large_rows) == (2000, 20000)
    # Ten times the rows, about the same peak: the export never holds the whole set.
    assert large_peak < 2 * small_peak, (small_peak, large_peak)


async def test_the_session_detail_draws_quality_over_time(client: Any) -> None:
    store = client.app[keys.STORE]
    doctor = await store.get_user_by_username("village1")
    chief = await store.get_user_by_username("cardio.chief")
    rows = await bulk_consultations(store, 2, clinic_ids=[doctor.organisation_id], doctor_id=doctor.id,
                                    specialists=[chief.id], start=dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC))
    cid = rows[1]["id"]  # the second is a closed one, with a call
    [session] = await store.list_call_sessions(cid)
    t0 = dt.datetime(2026, 11, 2, 9, 1, tzinfo=dt.UTC)
    samples = []
    for i in range(6):
        for actor, loss in ((doctor.id, 0.5 * i), (chief.id, 1.0)):
            samples.append({"consultation_id": cid, "session_id": session.id, "kind": "quality", "actor_id": actor,
                            "at": t0 + dt.timedelta(seconds=10 * i),
                            "data": {"rtt_ms": 80 + 20 * i, "loss_pct": loss, "bitrate_kbps": 900 - 100 * i}})
    await store.insert_events(samples)
    await login(client, "alliance.admin")
    page = await (await client.get(f"/admin/consultations/{cid}")).text()
    for metric in ("rtt_ms", "loss_pct", "bitrate_kbps"):
        chart = re.search(rf'<svg id="chart-{metric}".*?</svg>', page, re.S)
        assert chart, metric
        lines = re.findall(r'<polyline points="([^"]+)" class="line (\w+)"', chart.group(0))
        assert {side for _, side in lines} == {"clinic", "specialist"}
        assert all(len(points.split()) == 6 for points, _ in lines)
    # The worst sample in the list: 2.5 % loss at 180 ms.
    listing = await (await client.get("/admin/consultations?from=2026-11-02&to=2026-11-02")).text()
    assert "2.5 % · 180 毫秒" in listing  # a Chinese page: the unit in words
