"""The session log for administrators: filters, pagination, the timeline, and alliance boundaries."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
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
