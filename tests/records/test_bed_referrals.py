"""A specialist's referral up for admission through the note's disposition: the open reserved beds offered, the
chosen bed booked when the note is signed (a bed another referral took first fails that signing whole), the
referral carrying the bed, the bed's day counted in the pool."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestServer

from telehealth.domain import ConsultationState, Role, Urgency
from telehealth.records.models import NewConsultation
from telehealth.records.store import Store
from telehealth.server import keys
from tests.conftest import make_settings
from tests.records.test_notes import DRAFT, accepted_consultation, api
from tests.support.wsclient import Node, serve

TZ = ZoneInfo("Asia/Shanghai")
CITY = "Qingshan First People's Hospital"


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with serve(make_settings(tmp_path)) as n:
        yield n


def store_of(node: Node) -> Store:
    assert isinstance(node.server, TestServer)
    store: Store = node.server.app[keys.STORE]
    return store


def admission(bed_id: int) -> dict[str, Any]:
    return {**DRAFT, "disposition": {"kind": "refer_up", "details": "Admit to the stroke unit", "admission": True,
                                     "bed_id": bed_id}}


async def test_signing_a_referral_up_for_admission_books_the_chosen_reserved_bed(node: Node) -> None:
    store = store_of(node)
    city = await store.get_organisation_by_name(CITY)
    assert city is not None
    day = dt.datetime.now(TZ).date() + dt.timedelta(days=3)
    # Four neurology beds at the pilot's lead: one reserved.
    assert await store.publish_beds([(city.id, "neurology", day, 4)]) == (4, 1)
    cid = await accepted_consultation(node)
    status, body = await api(node, "GET", f"/api/consultations/{cid}/beds", "neuro.chief")
    assert status == 200 and body["ward"] == "neurology" and body["booking"] is None
    (bed,) = body["beds"]
    assert (bed["hospital_org_id"], bed["day"], bed["reserved"], bed["booked"]) == (city.id, day.isoformat(),
                                                                                    True, False)
    # Admission needs a bed chosen; and a bed belongs to a referral up.
    status, _ = await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief", admission(0))
    assert status == 200
    status, body = await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    assert status == 400 and "bed" in body["error"]["message_en"]
    status, _ = await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief", {
        **DRAFT, "disposition": {"kind": "refer_down", "admission": True, "bed_id": bed["id"]}})
    assert status == 400
    # The same bed named by a second consultation's note: the first to sign gets it.
    other = await accepted_consultation(node)
    for c in (cid, other):
        status, _ = await api(node, "PUT", f"/api/consultations/{c}/note", "neuro.chief", admission(bed["id"]))
        assert status == 200
    status, body = await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    assert status == 200 and body["note"]["signed_at"]  # no outpatient slot needed for an admission
    status, body = await api(node, "POST", f"/api/consultations/{other}/note/sign", "neuro.chief", {})
    assert status == 409 and body["error"]["code"] == "bed_taken"
    status, body = await api(node, "GET", f"/api/consultations/{other}/note", "neuro.chief")
    assert body["note"]["signed_at"] is None  # the signing failed whole
    assert await store.list_referrals(consultation_id=other) == []
    status, body = await api(node, "GET", f"/api/consultations/{other}/beds", "neuro.chief")
    assert status == 200 and body["beds"] == []
    status, body = await api(node, "GET", "/api/referrals?all=1", "neuro.chief")
    (ref,) = [r for r in body["referrals"] if r["consultation_id"] == cid]
    assert (ref["direction"], ref["to_org_id"], ref["department"], ref["bed_id"], ref["priority"], ref["slot_id"]) \
        == ("up", city.id, "neurology", bed["id"], True, None)
    held = await store.get_bed_booking(cid)
    assert held is not None and held.id == bed["id"]
    [pool] = await store.list_bed_days(hospital_org_ids=[city.id], start=day, end=day + dt.timedelta(days=1))
    assert (pool.total, pool.reserved, pool.booked, pool.released) == (4, 1, 1, 0)
    assert "bed_booked" in [e.kind for e in await store.list_events(cid)]
    audit, _ = await store.search_audit(actor_ids=None, action="bed.book", target=None, start=None, end=None,
                                        limit=10, offset=0)
    assert [(a["target"], a["detail"]) for a in audit] == [(f"consultation:{cid}", {"bed": bed["id"]})]


async def test_a_consultation_of_a_hospital_is_offered_no_bed_and_signs_none(node: Node) -> None:
    store = store_of(node)
    city = await store.get_organisation_by_name(CITY)
    county = await store.get_organisation_by_name("Heping County People's Hospital")
    chief = await store.get_user_by_username("neuro.chief")
    assert city is not None and county is not None and chief is not None
    day = dt.datetime.now(TZ).date() + dt.timedelta(days=3)
    await store.publish_beds([(city.id, "neurology", day, 4)])
    (bed,) = await store.list_beds(hospital_org_ids=[city.id], open_reserved=True)
    now = dt.datetime.now(dt.UTC)
    # The county hospital asks the city's neurologist: it is no grassroots institution.
    doctor = await store.insert_user("county.doctor", "x", "County doctor", Role.clinic_doctor,
                                     organisation_id=county.id, now=now)
    c = await store.insert_consultation(NewConsultation(
        patient_name="Patient Zhao", patient_sex="male", patient_birth_year=1950, patient_local_id="",
        specialty="neurology", urgency=Urgency.urgent, chief_complaint="weakness", consent_by="patient",
        consent_name="Patient Zhao"), clinic_org_id=county.id, doctor_id=doctor.id, now=now)
    await store.transition_consultation(c.id, ConsultationState.queued, actor_id=None, now=now)
    await store.transition_consultation(c.id, ConsultationState.accepted, actor_id=chief.id, now=now,
                                        assigned_specialist_id=chief.id)
    await store.transition_consultation(c.id, ConsultationState.ended, actor_id=chief.id, now=now)
    status, body = await api(node, "GET", f"/api/consultations/{c.id}/beds", "neuro.chief")
    assert status == 403 and body["error"]["code"] == "not_eligible"
    status, _ = await api(node, "PUT", f"/api/consultations/{c.id}/note", "neuro.chief", admission(bed.id))
    assert status == 200
    status, body = await api(node, "POST", f"/api/consultations/{c.id}/note/sign", "neuro.chief", {})
    assert status == 403 and body["error"]["code"] == "not_eligible"
    assert (await store.get_bed(bed.id)).booked_consultation_id is None  # type: ignore[union-attr]
