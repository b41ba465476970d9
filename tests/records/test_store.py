"""The records store on SQLite and (when configured) PostgreSQL: migrations, accounts, consultations, events."""

import datetime as dt

import pytest
import sqlalchemy as sa

from telehealth.domain import ConsultationState, OrgLevel, Role, Title, Urgency
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.db import create_engine, migrate, schema_status
from telehealth.records.models import NewConsultation
from telehealth.records.seed import ALLIANCE_NAME, COUNTY_ALLIANCE_NAME, ORGS, USERS, seed_demo
from telehealth.records.store import Store
from tests.conftest import utc

S = ConsultationState
NOW = utc(2026, 11, 2, 9, 0)


def request(**changes: object) -> NewConsultation:
    base = dict(patient_name="Zhang San", patient_sex="male", patient_birth_year=1958, patient_local_id="V1-0042",
                specialty="cardiology", urgency=Urgency.urgent, chief_complaint="chest pain for two hours",
                consent_by="patient", consent_name="Zhang San")
    base.update(changes)
    return NewConsultation(**base)  # type: ignore[arg-type]


async def make_clinic(store: Store) -> tuple[int, int]:
    alliance = await store.insert_alliance("A", "county_community")
    clinic = await store.insert_organisation("Village", OrgLevel.village_clinic, alliance_id=alliance.id)
    doctor = await store.insert_user("doc", "x", "Doc", Role.clinic_doctor, organisation_id=clinic.id, now=NOW)
    return clinic.id, doctor.id


async def test_migrations_from_empty_reach_head(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert (await schema_status(engine))[0] is None
        await migrate(engine)
        current, head = await schema_status(engine)
        assert current == head and head
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert {"alliances", "organisations", "users", "patients", "consultations", "events", "call_sessions",
                "notes", "addenda", "slots", "attachments", "audit_log", "agreements", "web_sessions",
                "referrals"} <= tables
        await migrate(engine)  # a second run changes nothing
        assert (await schema_status(engine))[0] == head
    finally:
        await engine.dispose()


async def test_demo_seed_is_idempotent_and_believable(store: Store) -> None:
    assert await seed_demo(store, NOW, password="pw-for-tests")
    assert not await seed_demo(store, NOW, password="pw-for-tests")
    orgs = await store.list_organisations()
    assert len(orgs) == len(ORGS)
    # Both kinds of lead: the city medical group pilot's (one third) and the county medical community's (20 %).
    group = await store.get_alliance_by_name(ALLIANCE_NAME)
    community = await store.get_alliance_by_name(COUNTY_ALLIANCE_NAME)
    assert group is not None and community is not None
    assert (group.kind, group.member_share_pct, community.kind) == ("city_group", 10, "county_community")
    levels = [o.level for o in orgs if o.alliance_id == group.id]
    assert levels.count(OrgLevel.city_hospital) == 1 and levels.count(OrgLevel.county_hospital) == 1
    assert levels.count(OrgLevel.township_centre) == 3 and levels.count(OrgLevel.village_clinic) == 6
    leads = {o.name: (o.level, o.city_group_pilot) for o in orgs if o.leads_alliance}
    assert leads == {"Qingshan First People's Hospital": (OrgLevel.city_hospital, True),
                     "Songxi County People's Hospital": (OrgLevel.county_hospital, False)}
    assert {o.level for o in orgs if o.alliance_id == community.id} == {
        OrgLevel.county_hospital, OrgLevel.township_centre, OrgLevel.village_clinic}
    specialists = await store.list_users(role=Role.specialist)
    covered = {s for u in specialists for s in u.specialties}
    assert {"cardiology", "paediatrics", "neurology", "internal_medicine"} <= covered
    assert {u.title for u in specialists} == {Title.attending, Title.associate_chief, Title.chief}
    assert len(await store.list_users()) == len(USERS)
    admin = await store.get_user_by_username("admin")
    assert admin is not None and admin.is_system_admin


async def test_usernames_are_unique(store: Store) -> None:
    await store.insert_user("same", "x", "A", Role.admin, organisation_id=None, now=NOW)
    with pytest.raises(TelehealthError) as info:
        await store.insert_user("same", "y", "B", Role.admin, organisation_id=None, now=NOW)
    assert info.value.code is ErrorCode.conflict


async def test_consultation_is_recorded_with_its_first_event(store: Store) -> None:
    clinic_id, doctor_id = await make_clinic(store)
    c = await store.insert_consultation(request(), clinic_org_id=clinic_id, doctor_id=doctor_id, now=NOW)
    assert c.state is S.requested and c.created_at == NOW and c.consent_at == NOW
    events = await store.list_events(c.id)
    assert [e.kind for e in events] == ["requested"]
    assert "Zhang" not in str(events[0].data)  # technical detail only, never patient data
    patient = await store.get_patient_summary(c.patient_id)
    assert patient == {"name": "Zhang San", "sex": "male", "birth_year": 1958, "local_id": "V1-0042"}


async def test_a_queued_request_with_its_signed_consent_is_written_whole_or_not_at_all(store: Store) -> None:
    from sqlalchemy.exc import IntegrityError

    from telehealth.records import schema as t
    from telehealth.records.models import ConsentDocument

    clinic_id, doctor_id = await make_clinic(store)
    signed = ConsentDocument("ab" * 32, "image/png", 1234, "consent-signature.png")
    c = await store.insert_consultation(request(consent_document=signed), clinic_org_id=clinic_id,
                                        doctor_id=doctor_id, now=NOW, queue=True)
    assert c.state is S.queued and c.version == 1 and c.queued_at == NOW and c.consent_by == "patient"
    events = await store.list_events(c.id)
    assert [(e.kind, e.actor_id) for e in events] == [("requested", doctor_id), ("queued", doctor_id)]
    assert events[1].data == {"from": "requested", "to": "queued"}
    assert [(a["kind"], a["sha256"], a["size"]) for a in await store.list_attachments(c.id)] == \
        [("consent", "ab" * 32, 1234)]
    # Without a document, none is recorded; without queueing, only the request is logged.
    d = await store.insert_consultation(request(), clinic_org_id=clinic_id, doctor_id=doctor_id, now=NOW)
    assert await store.list_attachments(d.id) == []
    assert [e.kind for e in await store.list_events(d.id)] == ["requested"]

    async def counts() -> list[int]:
        async with store.engine.connect() as conn:
            return [int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())
                    for table in (t.patients, t.consultations, t.attachments, t.events)]

    before = await counts()
    # A doctor that does not exist: the consultation's row fails after the patient's was written.
    with pytest.raises((IntegrityError, TelehealthError)):
        await store.insert_consultation(request(consent_document=signed), clinic_org_id=clinic_id,
                                        doctor_id=999_999, now=NOW, queue=True)
    assert await counts() == before


async def test_transitions_are_stamped_and_logged(store: Store) -> None:
    clinic_id, doctor_id = await make_clinic(store)
    c = await store.insert_consultation(request(), clinic_org_id=clinic_id, doctor_id=doctor_id, now=NOW)
    later = NOW + dt.timedelta(seconds=40)
    c = await store.transition_consultation(c.id, S.queued, actor_id=doctor_id, now=later)
    assert c.state is S.queued and c.queued_at == later and c.version == 1
    c = await store.transition_consultation(c.id, S.accepted, actor_id=None, now=later)
    assert c.state is S.accepted and c.accepted_at == later
    kinds = [(e.kind, e.data.get("from"), e.data.get("to")) for e in await store.list_events(c.id)]
    assert kinds == [("requested", None, None), ("queued", "requested", "queued"), ("accepted", "queued", "accepted")]


async def test_illegal_transition_is_refused_and_changes_nothing(store: Store) -> None:
    clinic_id, doctor_id = await make_clinic(store)
    c = await store.insert_consultation(request(), clinic_org_id=clinic_id, doctor_id=doctor_id, now=NOW)
    with pytest.raises(TelehealthError) as info:
        await store.transition_consultation(c.id, S.signed, actor_id=doctor_id, now=NOW)
    assert info.value.code is ErrorCode.invalid_transition
    with pytest.raises(TelehealthError) as info:
        await store.transition_consultation(c.id, S.queued, actor_id=doctor_id, now=NOW, expected=[S.expired])
    assert info.value.code is ErrorCode.invalid_transition
    again = await store.get_consultation(c.id)
    assert again is not None and again.state is S.requested and again.version == 0
    assert len(await store.list_events(c.id)) == 1


async def test_unknown_consultation_is_not_found(store: Store) -> None:
    with pytest.raises(TelehealthError) as info:
        await store.transition_consultation(999, S.queued, actor_id=None, now=NOW)
    assert info.value.code is ErrorCode.not_found


async def test_partner_hospitals_are_alliance_plus_valid_agreements(store: Store) -> None:
    a = await store.insert_alliance("A", "county_community")
    b = await store.insert_alliance("B", "city_group")
    clinic = await store.insert_organisation("clinic", OrgLevel.village_clinic, alliance_id=a.id)
    own = await store.insert_organisation("own county", OrgLevel.county_hospital, alliance_id=a.id)
    await store.insert_organisation("own township", OrgLevel.township_centre, alliance_id=a.id)
    other = await store.insert_organisation("other city", OrgLevel.city_hospital, alliance_id=b.id)
    expired = await store.insert_organisation("expired", OrgLevel.city_hospital, alliance_id=b.id)
    stranger = await store.insert_organisation("stranger", OrgLevel.city_hospital, alliance_id=b.id)
    await store.insert_agreement(clinic.id, other.id, valid_from=NOW - dt.timedelta(days=1), valid_to=None,
                                 created_by=None, now=NOW)
    await store.insert_agreement(clinic.id, expired.id, valid_from=NOW - dt.timedelta(days=9),
                                 valid_to=NOW - dt.timedelta(days=1), created_by=None, now=NOW)
    primary, partners = await store.get_partner_hospitals(clinic.id, NOW)
    assert primary == {own.id}
    assert partners == {own.id, other.id}
    assert stranger.id not in partners


async def test_call_session_ends_once(store: Store) -> None:
    clinic_id, doctor_id = await make_clinic(store)
    c = await store.insert_consultation(request(), clinic_org_id=clinic_id, doctor_id=doctor_id, now=NOW)
    spec = await store.insert_user("spec", "x", "S", Role.specialist, organisation_id=clinic_id, now=NOW)
    await store.transition_consultation(c.id, S.queued, actor_id=doctor_id, now=NOW)
    await store.transition_consultation(c.id, S.accepted, actor_id=spec.id, now=NOW, assigned_specialist_id=spec.id)
    with pytest.raises(TelehealthError):
        await store.open_call_session(c.id, doctor_id, spec.id, actor_id=spec.id, now=NOW, expected=[S.ended])
    assert await store.get_open_call_session(c.id) is None  # the refused open left no session behind
    consultation, session = await store.open_call_session(c.id, doctor_id, spec.id, actor_id=spec.id, now=NOW,
                                                          expected=[S.accepted])
    assert consultation.state is S.in_call
    assert (await store.get_open_call_session(c.id)) is not None
    assert await store.end_call_session(session.id, "hangup", actor_id=doctor_id, now=NOW)
    assert not await store.end_call_session(session.id, "network", actor_id=None, now=NOW)
    ended = await store.get_call_session(session.id)
    assert ended is not None and ended.end_reason == "hangup"
    assert await store.get_open_call_session(c.id) is None


async def test_audit_chain_detects_an_edited_row(store: Store) -> None:
    for i in range(5):
        await store.insert_audit("consultation.view", actor_id=None, target=f"consultation:{i}", remote="127.0.0.1",
                                 now=NOW + dt.timedelta(seconds=i))
    assert await store.verify_audit_chain() == (5, None)
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE audit_log SET target = 'consultation:99' WHERE id = 3"))
    checked, broken = await store.verify_audit_chain()
    assert (checked, broken) == (2, 3)


async def test_web_sessions_expire(store: Store) -> None:
    user = await store.insert_user("u", "x", "U", Role.admin, organisation_id=None, now=NOW)
    await store.insert_web_session("h" * 64, user.id, "csrf", now=NOW, ttl=dt.timedelta(minutes=5))
    assert await store.get_web_session("h" * 64, NOW + dt.timedelta(minutes=4)) is not None
    assert await store.get_web_session("h" * 64, NOW + dt.timedelta(minutes=6)) is None


async def test_migrations_produce_exactly_the_declared_schema(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from telehealth.records.schema import metadata

    engine = create_engine(database_url)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
        assert diff == []
    finally:
        await engine.dispose()


async def test_racing_transitions_are_judged_again_not_lost(store: Store) -> None:
    """Two writers at once: the later one is re-judged against the state the earlier one left."""
    import asyncio

    clinic_id, doctor_id = await make_clinic(store)
    for _ in range(10):
        c = await store.insert_consultation(request(), clinic_org_id=clinic_id, doctor_id=doctor_id, now=NOW,
                                            queue=True)
        offered, accepted = await asyncio.gather(
            store.transition_consultation(c.id, S.offered, actor_id=None, now=NOW, expected=[S.queued]),
            store.transition_consultation(c.id, S.accepted, actor_id=None, now=NOW, expected=[S.queued, S.offered]),
            return_exceptions=True)
        # Accepting is legal from queued and from offered, so it always succeeds; the ring may lose.
        assert not isinstance(accepted, Exception)
        final = await store.get_consultation(c.id)
        assert final is not None and final.state is S.accepted
        kinds = [e.kind for e in await store.list_events(c.id)]
        assert kinds.count("accepted") == 1
        assert isinstance(offered, Exception) or kinds.index("offered") < kinds.index("accepted")
