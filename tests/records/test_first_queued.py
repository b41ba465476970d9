"""When a consultation first entered the queue: stamped once by the store, never reset by a return to the
queue, and filled in by the migration for requests queued before it; on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from telehealth.domain import ConsultationState, OrgLevel, Role, Urgency
from telehealth.records import schema as t
from telehealth.records.db import create_engine, migrate
from telehealth.records.models import ConsentDocument, NewConsultation
from telehealth.records.store import Store

S = ConsultationState
T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    engine = create_engine(database_url)
    await migrate(engine)
    try:
        yield Store(engine)
    finally:
        await engine.dispose()


async def people(store: Store) -> tuple[int, int]:
    alliance = await store.insert_alliance("a", "county_community")
    clinic = await store.insert_organisation("clinic", OrgLevel.village_clinic, alliance_id=alliance.id)
    doctor = await store.insert_user("doc", "x", "Doc", Role.clinic_doctor, organisation_id=clinic.id, now=T0)
    return clinic.id, doctor.id


def ask(consent: bool = True) -> NewConsultation:
    return NewConsultation(patient_name="P", patient_sex="female", patient_birth_year=1980, patient_local_id="",
                           specialty="cardiology", urgency=Urgency.routine, chief_complaint="c",
                           consent_by="patient" if consent else None, consent_name="P" if consent else None)


async def test_it_is_stamped_once_and_kept_through_every_return_to_the_queue(store: Store) -> None:
    clinic, doctor = await people(store)
    c = await store.insert_consultation(ask(), clinic_org_id=clinic, doctor_id=doctor, now=at(0), queue=True)
    assert c.first_queued_at == at(0) == c.queued_at
    moves = [(S.offered, 1), (S.queued, 2), (S.accepted, 3), (S.in_call, 4), (S.accepted, 5), (S.queued, 6),
             (S.expired, 7), (S.queued, 8)]
    for target, minute in moves:
        c = await store.transition_consultation(c.id, target, actor_id=None, now=at(minute))
        assert c.first_queued_at == at(0), target
    stored = await store.get_consultation(c.id)
    assert stored is not None and stored.first_queued_at == at(0) and stored.queued_at == at(8)


async def test_a_request_waiting_for_consent_is_stamped_when_consent_queues_it(store: Store) -> None:
    clinic, doctor = await people(store)
    c = await store.insert_consultation(ask(consent=False), clinic_org_id=clinic, doctor_id=doctor, now=at(0))
    assert c.first_queued_at is None
    document = ConsentDocument(sha256="0" * 64, content_type="image/png", size=1, filename="consent.png")
    c = await store.record_consent(c.id, document, ("patient", "P", None), doctor_id=doctor, now=at(9))
    assert c.state is S.queued and c.first_queued_at == at(9)
    stored = await store.get_consultation(c.id)
    assert stored is not None and stored.first_queued_at == at(9)


async def test_the_migration_fills_it_in_from_the_first_queued_event(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine, "0014")
        store = Store(engine)
        clinic, doctor = await people(store)
        async with engine.begin() as conn:
            patient = (await conn.execute(t.patients.insert().values(
                organisation_id=clinic, name="P", sex="female", birth_year=1980, created_at=T0))).inserted_primary_key
            base = {"patient_id": patient[0], "clinic_org_id": clinic, "requesting_doctor_id": doctor,
                    "accompanying_doctor_id": doctor, "specialty": "cardiology", "urgency": "routine",
                    "complex_case": False, "title_fallback": False, "version": 1, "created_at": T0, "updated_at": T0}
            ids = []
            # Declined and back in the queue at minute 20; never logged as queued; never queued.
            for state, queued_at in ((S.queued, at(20)), (S.queued, at(30)), (S.requested, None)):
                row = await conn.execute(t.consultations.insert().values(**base, state=state.value,
                                                                         queued_at=queued_at))
                ids.append(row.inserted_primary_key[0])
            await conn.execute(t.events.insert(), [
                {"consultation_id": ids[0], "kind": "queued", "at": at(5), "data": {}},
                {"consultation_id": ids[0], "kind": "offered", "at": at(6), "data": {}},
                {"consultation_id": ids[0], "kind": "requeued", "at": at(20), "data": {}},
                {"consultation_id": ids[0], "kind": "queued", "at": at(40), "data": {}},
            ])
        await migrate(engine)
        found = {cid: (await store.get_consultation(cid)).first_queued_at for cid in ids}  # type: ignore[union-attr]
        assert found == {ids[0]: at(5), ids[1]: at(30), ids[2]: None}
    finally:
        await engine.dispose()
