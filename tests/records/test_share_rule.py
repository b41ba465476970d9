"""The reserved share as the policy counts it: 20 % for a hospital that leads an alliance, one third for the
lead of a city medical group pilot, and for any other hospital the share its administrator sets, else its
alliance's rule, else none; the stricter setting holds every hospital to 20 %. Worked out by hand below, then
on the store (SQLite and PostgreSQL): publishing, the settings topping up, the migration keeping what member
hospitals reserved before, and the store refusing a booking for anyone but the grassroots."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from telehealth.domain import OrgLevel, Role, Urgency
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import quota
from telehealth.records import schema as t
from telehealth.records.db import create_engine, migrate
from telehealth.records.models import Alliance, NewConsultation, Organisation
from telehealth.records.quota import FloorBasis, ShareBasis, SharePolicy
from telehealth.records.store import Store
from tests.conftest import utc

TZ = ZoneInfo("Asia/Shanghai")
NOW = utc(2026, 11, 2, 1, 0)
DAY = dt.date(2026, 11, 10)
STRICT = SharePolicy(floor_for_every_hospital=True)


def hospital(*, leads: bool = False, pilot: bool = False, pct: int | None = None, alliance: int | None = 1,
             level: OrgLevel = OrgLevel.county_hospital) -> Organisation:
    return Organisation(1, "H", "", level, alliance, leads, pilot, pct, "")


GROUP = Alliance(1, "Group", "", "city_group", "")
GROUP_10 = Alliance(1, "Group", "", "city_group", "", member_share_pct=10)


@pytest.mark.parametrize(("org", "alliance", "policy", "floor", "floor_basis", "share", "share_basis", "of_8"), [
    # A lead: 20 %; 8 slots reserve 2 (1.6 rounded up).
    (hospital(leads=True), GROUP, SharePolicy(), Fraction(1, 5), FloorBasis.alliance_lead, Fraction(1, 5),
     ShareBasis.floor, 2),
    # The pilot's lead: one third; 8 reserve 3 (2.67 up).
    (hospital(leads=True, pilot=True), GROUP, SharePolicy(), Fraction(1, 3), FloorBasis.city_group_pilot_lead,
     Fraction(1, 3), ShareBasis.floor, 3),
    # A lead's own setting above the floor raises it (30 %: 2.4 -> 3); below the floor it does not lower it.
    (hospital(leads=True, pct=30), GROUP, SharePolicy(), Fraction(1, 5), FloorBasis.alliance_lead,
     Fraction(3, 10), ShareBasis.hospital, 3),
    (hospital(leads=True, pct=5), GROUP, SharePolicy(), Fraction(1, 5), FloorBasis.alliance_lead, Fraction(1, 5),
     ShareBasis.floor, 2),
    # The alliance's rule is for the other hospitals, not for its lead.
    (hospital(leads=True), GROUP_10, SharePolicy(), Fraction(1, 5), FloorBasis.alliance_lead, Fraction(1, 5),
     ShareBasis.floor, 2),
    # A member hospital: nothing set, no rule: none reserved.
    (hospital(), GROUP, SharePolicy(), Fraction(0), FloorBasis.none, Fraction(0), ShareBasis.floor, 0),
    # The pilot flag counts only on the lead.
    (hospital(pilot=True), GROUP, SharePolicy(), Fraction(0), FloorBasis.none, Fraction(0), ShareBasis.floor, 0),
    # The alliance's rule, 10 %: 0.8 -> 1. The hospital's own setting wins over it, even a lower one.
    (hospital(), GROUP_10, SharePolicy(), Fraction(0), FloorBasis.none, Fraction(1, 10), ShareBasis.alliance, 1),
    (hospital(pct=25), GROUP_10, SharePolicy(), Fraction(0), FloorBasis.none, Fraction(1, 4), ShareBasis.hospital,
     2),
    (hospital(pct=0), GROUP_10, SharePolicy(), Fraction(0), FloorBasis.none, Fraction(0), ShareBasis.floor, 0),
    # "Leads" with no alliance leads nothing.
    (hospital(leads=True, alliance=None), None, SharePolicy(), Fraction(0), FloorBasis.none, Fraction(0),
     ShareBasis.floor, 0),
    # The stricter setting: every hospital at least 20 %; the pilot's lead still one third.
    (hospital(), GROUP, STRICT, Fraction(1, 5), FloorBasis.every_hospital, Fraction(1, 5), ShareBasis.floor, 2),
    (hospital(), GROUP_10, STRICT, Fraction(1, 5), FloorBasis.every_hospital, Fraction(1, 5), ShareBasis.floor, 2),
    (hospital(pct=40), GROUP, STRICT, Fraction(1, 5), FloorBasis.every_hospital, Fraction(2, 5), ShareBasis.hospital,
     4),
    (hospital(leads=True, pilot=True), GROUP, STRICT, Fraction(1, 3), FloorBasis.city_group_pilot_lead,
     Fraction(1, 3), ShareBasis.floor, 3),
])
def test_the_share_as_the_policy_counts_it(org: Organisation, alliance: Alliance | None, policy: SharePolicy,
                                           floor: Fraction, floor_basis: FloorBasis, share: Fraction,
                                           share_basis: ShareBasis, of_8: int) -> None:
    got = quota.reserved_share(org, alliance, policy)
    assert (got.floor, got.floor_basis, got.share, got.share_basis) == (floor, floor_basis, share, share_basis)
    assert quota.reserved_needed(8, got.share) == of_8


def test_a_grassroots_institution_has_no_floor_even_under_the_stricter_setting() -> None:
    clinic = hospital(level=OrgLevel.township_centre)
    assert quota.policy_floor(clinic, STRICT) == (Fraction(0), FloorBasis.none)


def morning(count: int = 8) -> list[dt.datetime]:
    return [dt.datetime.combine(DAY, dt.time(8 + i // 2, 30 * (i % 2)), TZ).astimezone(dt.UTC) for i in range(count)]


async def group(store: Store) -> dict[str, int]:
    """A city medical group pilot (its lead, a member hospital, a health centre) and a county medical community
    (its lead)."""
    pilot = await store.insert_alliance("Pilot group", "city_group")
    community = await store.insert_alliance("County community", "county_community")
    ids = {"pilot": pilot.id, "community": community.id}
    for key, level, alliance, leads, flag in (
            ("city", OrgLevel.city_hospital, pilot.id, True, True),
            ("member", OrgLevel.county_hospital, pilot.id, False, False),
            ("centre", OrgLevel.township_centre, pilot.id, False, False),
            ("county", OrgLevel.county_hospital, community.id, True, False)):
        org = await store.insert_organisation(key, level, alliance_id=alliance, leads_alliance=leads,
                                              city_group_pilot=flag)
        ids[key] = org.id
    return ids


async def test_publishing_reserves_each_hospitals_share(store: Store) -> None:
    ids = await group(store)
    publish = [await store.publish_slots(ids[k], "cardiology", morning(), duration_min=30, location="", tz=TZ)
               for k in ("city", "county", "member")]
    # One third of 8 (3), 20 % of 8 (2), none at the member hospital.
    assert publish == [(8, 3), (8, 2), (8, 0)]
    # The alliance's rule of 30 % tops the member up to 3 of 8 (2.4 up) and leaves the lead's 3 alone.
    assert await store.set_member_share(ids["pilot"], 30, now=NOW, tz=TZ) == 3
    # The hospital's own 50 % wins over the rule: 4 of 8, one more.
    assert await store.set_reserved_share(ids["member"], 50, now=NOW, tz=TZ) == 1
    # Lower settings never take reserved slots back.
    assert await store.set_reserved_share(ids["member"], 0, now=NOW, tz=TZ) == 0
    assert await store.set_member_share(ids["pilot"], None, now=NOW, tz=TZ) == 0
    days = await store.list_slot_days(hospital_org_ids=None, start=NOW, end=NOW + dt.timedelta(days=30), tz=TZ)
    assert {d.hospital_org_id: d.reserved for d in days} == {ids["city"]: 3, ids["county"]: 2, ids["member"]: 4}
    alliance = await store.get_alliance(ids["pilot"])
    assert alliance is not None and alliance.member_share_pct is None
    with pytest.raises(TelehealthError) as info:
        await store.set_member_share(987654, 10, now=NOW, tz=TZ)
    assert info.value.code is ErrorCode.not_found


async def test_the_stricter_setting_reserves_20_percent_everywhere(store: Store) -> None:
    ids = await group(store)
    assert await store.publish_slots(ids["member"], "cardiology", morning(10), duration_min=30, location="", tz=TZ,
                                     policy=STRICT) == (10, 2)
    # Publishing under the policy's own rule later adds nothing and takes nothing back.
    assert await store.publish_slots(ids["member"], "cardiology", morning(10), duration_min=30, location="",
                                     tz=TZ) == (0, 0)


async def test_the_store_books_reserved_slots_only_for_the_grassroots(store: Store) -> None:
    ids = await group(store)
    await store.publish_slots(ids["city"], "cardiology", morning(), duration_min=30, location="", tz=TZ)
    [slot, *_] = await store.list_slots(hospital_org_ids=[ids["city"]], open_reserved=True)

    async def consultation(org_id: int, username: str) -> int:
        doctor = await store.insert_user(username, "x", username, Role.clinic_doctor, organisation_id=org_id, now=NOW)
        c = await store.insert_consultation(NewConsultation(
            patient_name="P", patient_sex="female", patient_birth_year=1960, patient_local_id="",
            specialty="cardiology", urgency=Urgency.routine, chief_complaint="palpitations", consent_by="patient",
            consent_name="P"), clinic_org_id=org_id, doctor_id=doctor.id, now=NOW)
        return c.id

    from_hospital = await consultation(ids["member"], "hospital.doc")
    with pytest.raises(TelehealthError) as info:
        await store.book_slot(from_hospital, slot.id, now=NOW, tz=TZ, release_hours=24)
    assert info.value.code is ErrorCode.not_eligible
    assert (await store.get_slot(slot.id)).booked_consultation_id is None  # type: ignore[union-attr]
    from_centre = await consultation(ids["centre"], "centre.doc")
    booked = await store.book_slot(from_centre, slot.id, now=NOW, tz=TZ, release_hours=24)
    assert booked.booked_consultation_id == from_centre


async def test_the_migration_keeps_what_member_hospitals_reserved(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine, "0009")
        async with engine.begin() as conn:
            alliance = (await conn.execute(sa.text(
                "INSERT INTO alliances (name, name_zh, kind, region) VALUES ('G', '', 'city_group', '') "
                "RETURNING id"))).scalar_one()
            org_ids = {}
            for name, leads, pct in (("lead", True, None), ("member", False, None), ("set", False, 35),
                                     ("idle", False, None)):
                org_ids[name] = (await conn.execute(t.organisations.insert().values(
                    name=name, level="county_hospital", alliance_id=alliance, leads_alliance=leads,
                    reserved_share_pct=pct).returning(t.organisations.c.id))).scalar_one()
            for name in ("lead", "member", "set"):
                await conn.execute(t.slots.insert().values(
                    hospital_org_id=org_ids[name], department="cardiology", starts_at=morning(1)[0],
                    duration_min=30, location="", reserved=False))
        await migrate(engine)
        store = Store(engine)
        pct = {name: (await store.get_organisation(oid)).reserved_share_pct  # type: ignore[union-attr]
               for name, oid in org_ids.items()}
        # The lead keeps its floor by the rule; a member that published slots keeps the 20 % it had; a member's
        # own setting stays; one that never published has nothing to keep.
        assert pct == {"lead": None, "member": 20, "set": 35, "idle": None}
        assert (await store.get_alliance(alliance)).member_share_pct is None  # type: ignore[union-attr]
    finally:
        await engine.dispose()
