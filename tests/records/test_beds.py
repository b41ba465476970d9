"""Reserved inpatient beds: the quarter a city medical group pilot's lead holds, publishing per ward and day,
atomic booking of the last reserved bed under contention (by itself and inside a signing transaction), release
at the cut-off, grassroots patients only. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from telehealth.domain import ConsultationState, OrgLevel, Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import quota
from telehealth.records.models import NewReferral, Organisation
from telehealth.records.store import Store
from tests.conftest import utc
from tests.records.test_slots import consultations

TZ = ZoneInfo("Asia/Shanghai")
NOW = utc(2026, 11, 2, 1, 0)  # 09:00 in Shanghai on 2 November
DAY = dt.date(2026, 11, 10)


def hospital_org(*, leads: bool = True, pilot: bool = True) -> Organisation:
    return Organisation(1, "H", "", OrgLevel.city_hospital, 1, leads, pilot, None, "")


@pytest.mark.parametrize(("total", "expected"), [
    (0, 0), (1, 1), (3, 1), (4, 1), (5, 2), (8, 2), (9, 3), (10, 3), (12, 3), (13, 4), (40, 10), (41, 11),
])
def test_a_pilot_lead_holds_a_quarter_of_its_beds_rounded_up(total: int, expected: int) -> None:
    share, basis = quota.bed_floor(hospital_org())
    assert (share, basis) == (Fraction(1, 4), quota.FloorBasis.city_group_pilot_lead)
    needed = quota.reserved_needed(total, share)
    assert needed == expected
    assert needed >= total * Fraction(1, 4)


def test_no_other_hospital_has_a_bed_floor() -> None:
    # The slot rules (20 % for an alliance's lead, the stricter setting, a hospital's own share) are for
    # outpatient slots; for beds the policy names only the pilot's lead.
    assert quota.bed_floor(hospital_org(pilot=False)) == (Fraction(0), quota.FloorBasis.none)
    assert quota.bed_floor(hospital_org(leads=False)) == (Fraction(0), quota.FloorBasis.none)
    pilot_member = Organisation(1, "H", "", OrgLevel.county_hospital, 1, False, True, 30, "")
    assert quota.bed_floor(pilot_member) == (Fraction(0), quota.FloorBasis.none)


def test_the_cut_off_is_counted_from_the_local_day() -> None:
    # 10 November starts at 16:00 UTC on the 9th in Shanghai.
    assert quota.bed_release_cutoff(DAY, TZ, 24) == utc(2026, 11, 8, 16, 0)
    assert quota.bed_release_cutoff(DAY, TZ, 6) == utc(2026, 11, 9, 10, 0)


async def setup(store: Store, *, pilot: bool = True) -> tuple[int, int, int, int, int]:
    """(pilot lead id, other hospital id, village clinic id, clinic doctor id, specialist id)."""
    alliance = await store.insert_alliance("A", "city_group")
    lead = await store.insert_organisation("City", OrgLevel.city_hospital, alliance_id=alliance.id,
                                           leads_alliance=True, city_group_pilot=pilot)
    member = await store.insert_organisation("County", OrgLevel.county_hospital, alliance_id=alliance.id)
    clinic = await store.insert_organisation("Village", OrgLevel.village_clinic, alliance_id=alliance.id)
    doctor = await store.insert_user("doc", "x", "Doc", Role.clinic_doctor, organisation_id=clinic.id, now=NOW)
    specialist = await store.insert_user("spec", "x", "Spec", Role.specialist, organisation_id=lead.id, now=NOW,
                                         specialties=("cardiology",))
    return lead.id, member.id, clinic.id, doctor.id, specialist.id


async def test_publishing_reserves_a_quarter_of_each_ward_day_and_adds_only_the_rest(store: Store) -> None:
    lead, member, *_ = await setup(store)
    # 10 cardiology beds: 2.5 rounded up is 3; 4 neurology beds: 1; the member hospital holds none of its 6.
    created, reserved = await store.publish_beds([(lead, "cardiology", DAY, 10), (lead, "neurology", DAY, 4),
                                                  (member, "cardiology", DAY, 6)])
    assert (created, reserved) == (20, 3 + 1 + 0)
    assert await store.publish_beds([(lead, "cardiology", DAY, 10)]) == (0, 0)
    # Three more make 13: a quarter is 3.25, so a fourth is reserved. A lower count takes nothing back.
    assert await store.publish_beds([(lead, "cardiology", DAY, 13)]) == (3, 1)
    assert await store.publish_beds([(lead, "cardiology", DAY, 5)]) == (0, 0)
    days = await store.list_bed_days(hospital_org_ids=[lead, member], start=DAY, end=DAY + dt.timedelta(days=1))
    assert [(d.hospital_org_id, d.ward, d.total, d.reserved, d.booked, d.released) for d in days] == [
        (lead, "cardiology", 13, 4, 0, 0), (lead, "neurology", 4, 1, 0, 0), (member, "cardiology", 6, 0, 0, 0)]
    beds = await store.list_beds(hospital_org_ids=[lead], ward="cardiology")
    assert [b.number for b in beds] == list(range(1, 14)) and sum(b.reserved for b in beds) == 4


async def test_a_hundred_concurrent_bookings_of_the_last_reserved_bed_give_exactly_one(store: Store) -> None:
    lead, _, clinic, doctor, _ = await setup(store)
    await store.publish_beds([(lead, "cardiology", DAY, 4)])  # a quarter of 4: one reserved bed
    (last,) = await store.list_beds(hospital_org_ids=[lead], open_reserved=True)
    ids = await consultations(store, clinic, doctor, 100)

    async def book(cid: int) -> int | ErrorCode:
        try:
            return (await store.book_bed(cid, last.id, now=NOW, tz=TZ, release_hours=24)).booked_consultation_id or 0
        except TelehealthError as exc:
            return exc.code

    results = await asyncio.gather(*(book(cid) for cid in ids))
    winners = [r for r in results if isinstance(r, int)]
    assert len(winners) == 1 and winners[0] in ids
    assert results.count(ErrorCode.bed_taken) == 99
    bed = await store.get_bed(last.id)
    assert bed is not None and bed.booked_consultation_id == winners[0] and bed.booked_at == NOW
    assert await store.list_beds(hospital_org_ids=[lead], open_reserved=True) == []
    assert [e.kind for e in await store.list_events(winners[0])][-1] == "bed_booked"
    general = next(b for b in await store.list_beds(hospital_org_ids=[lead]) if not b.reserved)
    with pytest.raises(TelehealthError) as info:
        await store.book_bed(ids[0], general.id, now=NOW, tz=TZ, release_hours=24)
    assert info.value.code is ErrorCode.bed_taken


async def ended(store: Store, cid: int, specialist: int) -> None:
    await store.transition_consultation(cid, ConsultationState.queued, actor_id=None, now=NOW)
    await store.transition_consultation(cid, ConsultationState.accepted, actor_id=specialist, now=NOW,
                                        assigned_specialist_id=specialist)
    await store.transition_consultation(cid, ConsultationState.ended, actor_id=specialist, now=NOW)
    await store.save_note_draft(cid, specialist, {"assessment": "NSTEMI", "disposition": {
        "kind": "refer_up", "admission": True}}, now=NOW)


async def test_concurrent_signings_for_admission_to_the_last_bed_sign_exactly_one(store: Store) -> None:
    lead, _, clinic, doctor, specialist = await setup(store)
    await store.publish_beds([(lead, "cardiology", DAY, 3)])
    (last,) = await store.list_beds(hospital_org_ids=[lead], open_reserved=True)
    ids = await consultations(store, clinic, doctor, 12)
    for cid in ids:
        await ended(store, cid, specialist)

    async def sign(cid: int) -> int | ErrorCode:
        # What the signing does: the bed booked and the note signed with its referral, in one transaction.
        try:
            async with store.transaction():
                await store.book_bed(cid, last.id, now=NOW, tz=TZ, release_hours=24)
                await store.sign_note(cid, specialist, now=NOW, store_and_forward=False, referral=NewReferral(
                    "up", clinic, lead, "cardiology", priority=True, bed_id=last.id))
            return cid
        except TelehealthError as exc:
            return exc.code

    results = await asyncio.gather(*(sign(cid) for cid in ids))
    winners = [r for r in results if isinstance(r, int)]
    assert len(winners) == 1 and results.count(ErrorCode.bed_taken) == 11
    (ref,) = await store.list_referrals(direction="up")
    assert (ref.consultation_id, ref.bed_id, ref.to_org_id, ref.priority) == (winners[0], last.id, lead, True)
    for cid in ids:
        note = await store.get_note(cid)
        assert note is not None and note.signed == (cid == winners[0])
    # A referral naming a bed its consultation does not hold is refused, and nothing of it is written.
    loser = next(cid for cid in ids if cid != winners[0])
    with pytest.raises(TelehealthError) as info:
        await store.sign_note(loser, specialist, now=NOW, store_and_forward=False, referral=NewReferral(
            "up", clinic, lead, "cardiology", priority=True, bed_id=last.id))
    assert info.value.code is ErrorCode.bed_taken
    assert await store.list_referrals(consultation_id=loser) == []


async def test_only_a_grassroots_institutions_patient_books_a_reserved_bed(store: Store) -> None:
    lead, member, clinic, doctor, _ = await setup(store)
    await store.publish_beds([(lead, "cardiology", DAY, 4)])
    (bed,) = await store.list_beds(hospital_org_ids=[lead], open_reserved=True)
    # A consultation asked by the county hospital (not a grassroots institution) is refused, whatever path.
    (cid,) = await consultations(store, member, doctor, 1)
    with pytest.raises(TelehealthError) as info:
        await store.book_bed(cid, bed.id, now=NOW, tz=TZ, release_hours=24)
    assert info.value.code is ErrorCode.not_eligible
    assert (await store.get_bed(bed.id)).booked_consultation_id is None  # type: ignore[union-attr]
    (ok,) = await consultations(store, clinic, doctor, 1)
    assert (await store.book_bed(ok, bed.id, now=NOW, tz=TZ, release_hours=24)).booked_consultation_id == ok


async def test_unbooked_reserved_beds_are_released_at_the_cut_off(store: Store) -> None:
    lead, _, clinic, doctor, _ = await setup(store)
    day = dt.date(2026, 11, 4)  # starts at 16:00 UTC on the 3rd; cut-off 24 h before: 16:00 UTC on the 2nd
    later = day + dt.timedelta(days=3)
    await store.publish_beds([(lead, "cardiology", day, 8), (lead, "cardiology", later, 8)])
    first, second = await store.list_beds(hospital_org_ids=[lead], start=day, end=later, open_reserved=True)
    (cid,) = await consultations(store, clinic, doctor, 1)
    await store.book_bed(cid, first.id, now=NOW, tz=TZ, release_hours=24)
    assert await store.release_reserved_beds(now=utc(2026, 11, 2, 15, 59), tz=TZ, release_hours=24) == 0
    after = utc(2026, 11, 2, 16, 0)
    assert await store.release_reserved_beds(now=after, tz=TZ, release_hours=24) == 1
    assert await store.release_reserved_beds(now=after, tz=TZ, release_hours=24) == 0
    released = await store.get_bed(second.id)
    assert released is not None and released.released_at == after and released.booked_consultation_id is None
    kept = await store.get_bed(first.id)
    assert kept is not None and kept.released_at is None and kept.booked_consultation_id == cid
    days = await store.list_bed_days(hospital_org_ids=[lead], start=day, end=later + dt.timedelta(days=1))
    assert [(d.day, d.total, d.reserved, d.booked, d.released) for d in days] == [
        (day, 8, 2, 1, 1), (later, 8, 2, 0, 0)]
    with pytest.raises(TelehealthError) as info:
        await store.book_bed(cid, released.id, now=after, tz=TZ, release_hours=24)
    assert info.value.code is ErrorCode.bed_taken
    # A bed past its cut-off cannot be booked even before the release has run.
    open_later = (await store.list_beds(hospital_org_ids=[lead], start=later, open_reserved=True))[0]
    (other,) = await consultations(store, clinic, doctor, 1)
    with pytest.raises(TelehealthError) as info:
        await store.book_bed(other, open_later.id, now=quota.bed_release_cutoff(later, TZ, 24), tz=TZ,
                             release_hours=24)
    assert info.value.code is ErrorCode.bed_taken


def test_the_statistics_count_reserved_beds_against_the_floor_and_their_use() -> None:
    from telehealth.records.models import BedDay
    from telehealth.records.stats import StatsInput, compute

    lead = Organisation(1, "City", "市医院", OrgLevel.city_hospital, 1, True, True, None, "")
    member = Organisation(2, "County", "", OrgLevel.county_hospital, 1, False, False, None, "")
    days = [
        # The lead's cardiology ward: 10 beds with 3 reserved, then 8 with only 1 reserved (a quarter asks 2).
        BedDay(1, "cardiology", DAY, 10, 3, 2, 1), BedDay(1, "cardiology", DAY + dt.timedelta(days=1), 8, 1, 0, 1),
        BedDay(2, "cardiology", DAY, 6, 0, 0, 0),
    ]
    data = StatsInput(start=DAY, end=DAY + dt.timedelta(days=2), tz=TZ, sla_s={"emergency": 1, "urgent": 1,
                      "routine": 1}, consultations=(), events=(), sessions=(), organisations=(lead, member),
                      users=(), bed_days=days)
    cardio, county = compute(data)["reserved_beds"]
    # 4 of 18 is 22.2 %, below the quarter (4.5 beds); 2 of the 4 booked, 2 released unused.
    assert (cardio["days"], cardio["published"], cardio["reserved"], cardio["booked"], cardio["released"]) == (
        2, 18, 4, 2, 2)
    assert (cardio["reserved_share"], cardio["floor"], cardio["meets_floor"], cardio["booked_share"]) == (
        0.2222, 0.25, False, 0.5)
    assert (county["floor"], county["floor_basis"], county["meets_floor"], county["booked_share"]) == (
        0.0, "none", True, None)
