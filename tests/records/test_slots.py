"""Reserved outpatient slots: the quota arithmetic, publishing, atomic booking under contention, release at the
cut-off, and the referrals a signed disposition opens. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from telehealth.domain import ConsultationState, OrgLevel, Role, Urgency
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import quota
from telehealth.records.models import NewConsultation, NewReferral, Organisation
from telehealth.records.store import Store
from tests.conftest import utc

TZ = ZoneInfo("Asia/Shanghai")
NOW = utc(2026, 11, 2, 1, 0)  # 09:00 in Shanghai on 2 November


def org(pilot: bool = False, pct: int | None = None) -> Organisation:
    """A hospital that leads its alliance (the pilot's lead when `pilot`)."""
    return Organisation(1, "H", "", OrgLevel.city_hospital, 1, True, pilot, pct, "")


@pytest.mark.parametrize(("total", "pilot", "expected"), [
    (0, False, 0), (1, False, 1), (5, False, 1), (8, False, 2), (10, False, 2), (11, False, 3), (100, False, 20),
    (0, True, 0), (1, True, 1), (3, True, 1), (8, True, 3), (9, True, 3), (10, True, 4), (99, True, 33),
])
def test_quota_rounds_up_so_the_floor_is_never_undershot(total: int, pilot: bool, expected: int) -> None:
    needed = quota.reserved_needed(total, quota.reserved_share(org(pilot=pilot)).share)
    assert needed == expected
    assert needed >= total * (Fraction(1, 3) if pilot else Fraction(1, 5))


def test_a_hospital_may_reserve_more_never_less() -> None:
    assert quota.reserved_share(org(pct=30)).share == Fraction(3, 10)
    assert quota.reserved_share(org(pct=10)).share == Fraction(1, 5)
    assert quota.reserved_share(org(pilot=True, pct=25)).share == Fraction(1, 3)
    assert quota.reserved_share(org(pilot=True, pct=50)).share == Fraction(1, 2)


def test_reserved_slots_are_spread_over_the_day() -> None:
    assert quota.spread(list(range(8)), 2) == [2, 6]
    assert quota.spread(list(range(8)), 3) == [1, 3, 6]
    assert quota.spread(list(range(3)), 5) == [0, 1, 2]
    assert quota.spread([], 2) == []


def test_cut_off_is_counted_from_the_local_day() -> None:
    # 08:30 on 5 November in Shanghai is 00:30 UTC; the day starts at 16:00 UTC on the 4th.
    start = dt.datetime(2026, 11, 5, 8, 30, tzinfo=TZ).astimezone(dt.UTC)
    assert quota.release_cutoff(start, TZ, 24) == utc(2026, 11, 3, 16, 0)
    assert quota.release_cutoff(start, TZ, 0) == utc(2026, 11, 4, 16, 0)


def morning(day: dt.date, count: int = 8) -> list[dt.datetime]:
    return [dt.datetime.combine(day, dt.time(8 + i // 2, 30 * (i % 2)), TZ).astimezone(dt.UTC) for i in range(count)]


async def hospital(store: Store, *, pilot: bool = False) -> tuple[int, int, int, int]:
    """(hospital id, clinic id, clinic doctor id, specialist id); the hospital leads the alliance."""
    alliance = await store.insert_alliance("A", "city_group")
    h = await store.insert_organisation("City", OrgLevel.city_hospital, alliance_id=alliance.id, leads_alliance=True,
                                        city_group_pilot=pilot)
    c = await store.insert_organisation("Village", OrgLevel.village_clinic, alliance_id=alliance.id)
    doctor = await store.insert_user("doc", "x", "Doc", Role.clinic_doctor, organisation_id=c.id, now=NOW)
    specialist = await store.insert_user("spec", "x", "Spec", Role.specialist, organisation_id=h.id, now=NOW,
                                         specialties=("cardiology",))
    return h.id, c.id, doctor.id, specialist.id


async def consultations(store: Store, clinic_id: int, doctor_id: int, n: int) -> list[int]:
    ids = []
    for i in range(n):
        c = await store.insert_consultation(NewConsultation(
            patient_name=f"P{i}", patient_sex="female", patient_birth_year=1960, patient_local_id="",
            specialty="cardiology", urgency=Urgency.routine, chief_complaint="palpitations",
            consent_by="patient", consent_name=f"P{i}"), clinic_org_id=clinic_id, doctor_id=doctor_id, now=NOW)
        ids.append(c.id)
    return ids


async def test_publishing_reserves_the_share_of_each_day_and_is_idempotent(store: Store) -> None:
    h, *_ = await hospital(store)
    day1, day2 = dt.date(2026, 11, 10), dt.date(2026, 11, 11)
    created, reserved = await store.publish_slots(h, "cardiology", morning(day1) + morning(day2, 5), duration_min=30,
                                                  location="Building 2, room 204", tz=TZ)
    assert (created, reserved) == (13, 2 + 1)
    again = await store.publish_slots(h, "cardiology", morning(day1), duration_min=30, location="", tz=TZ)
    assert again == (0, 0)
    days = await store.list_slot_days(hospital_org_ids=[h], start=NOW, end=NOW + dt.timedelta(days=30), tz=TZ)
    assert [(d.day, d.total, d.reserved) for d in days] == [(day1, 8, 2), (day2, 5, 1)]
    # Two more slots on day 2 make seven: 20 % of 7 is 1.4, so a second one is reserved.
    extra = [dt.datetime.combine(day2, dt.time(14, m), TZ).astimezone(dt.UTC) for m in (0, 30)]
    assert await store.publish_slots(h, "cardiology", extra, duration_min=30, location="", tz=TZ) == (2, 1)
    slots = await store.list_slots(hospital_org_ids=[h], department="cardiology")
    assert len(slots) == 15 and sum(s.reserved for s in slots) == 4
    assert all(s.location == "Building 2, room 204" for s in slots if s.starts_at.astimezone(TZ).date() == day1)


async def test_a_pilot_hospital_reserves_one_third(store: Store) -> None:
    h, *_ = await hospital(store, pilot=True)
    assert await store.publish_slots(h, "neurology", morning(dt.date(2026, 11, 10)), duration_min=30, location="",
                                     tz=TZ) == (8, 3)


async def test_a_hundred_concurrent_bookings_of_the_last_reserved_slot_give_exactly_one(store: Store) -> None:
    h, clinic, doctor, _ = await hospital(store)
    await store.publish_slots(h, "cardiology", morning(dt.date(2026, 11, 10), 5), duration_min=30, location="", tz=TZ)
    last = [s for s in await store.list_slots(hospital_org_ids=[h]) if s.reserved]
    assert len(last) == 1
    ids = await consultations(store, clinic, doctor, 100)

    async def book(cid: int) -> int | ErrorCode:
        try:
            return (await store.book_slot(cid, last[0].id, now=NOW, tz=TZ, release_hours=24)).booked_consultation_id or 0
        except TelehealthError as exc:
            return exc.code

    results = await asyncio.gather(*(book(cid) for cid in ids))
    winners = [r for r in results if isinstance(r, int)]
    assert len(winners) == 1 and winners[0] in ids
    assert results.count(ErrorCode.slot_taken) == 99
    slot = await store.get_slot(last[0].id)
    assert slot is not None and slot.booked_consultation_id == winners[0]
    assert [s.id for s in await store.list_slots(hospital_org_ids=[h], open_reserved=True)] == []


async def test_booking_another_slot_gives_the_first_back(store: Store) -> None:
    h, clinic, doctor, _ = await hospital(store)
    await store.publish_slots(h, "cardiology", morning(dt.date(2026, 11, 10)), duration_min=30, location="", tz=TZ)
    first, second = [s for s in await store.list_slots(hospital_org_ids=[h]) if s.reserved]
    (cid,) = await consultations(store, clinic, doctor, 1)
    await store.book_slot(cid, first.id, now=NOW, tz=TZ, release_hours=24)
    await store.book_slot(cid, second.id, now=NOW, tz=TZ, release_hours=24)
    booking = await store.get_booking(cid)
    assert booking is not None and booking.id == second.id
    assert [s.id for s in await store.list_slots(hospital_org_ids=[h], open_reserved=True)] == [first.id]
    general = next(s for s in await store.list_slots(hospital_org_ids=[h]) if not s.reserved)
    with pytest.raises(TelehealthError) as info:
        await store.book_slot(cid, general.id, now=NOW, tz=TZ, release_hours=24)
    assert info.value.code is ErrorCode.slot_taken
    assert await store.cancel_booking(cid, now=NOW)
    assert await store.get_booking(cid) is None


async def test_unbooked_reserved_slots_are_released_at_the_cut_off(store: Store) -> None:
    h, clinic, doctor, _ = await hospital(store)
    day = dt.date(2026, 11, 4)  # starts at 16:00 UTC on the 3rd; cut-off 24 h before: 16:00 UTC on the 2nd
    await store.publish_slots(h, "cardiology", morning(day) + morning(day + dt.timedelta(days=3)), duration_min=30,
                              location="", tz=TZ)
    early, late = (s for s in await store.list_slots(hospital_org_ids=[h]) if s.reserved
                   and s.starts_at.astimezone(TZ).date() == day)
    (cid,) = await consultations(store, clinic, doctor, 1)
    await store.book_slot(cid, early.id, now=NOW, tz=TZ, release_hours=24)
    before = utc(2026, 11, 2, 15, 59)
    assert await store.release_reserved_slots(now=before, tz=TZ, release_hours=24) == 0
    after = utc(2026, 11, 2, 16, 0)
    assert await store.release_reserved_slots(now=after, tz=TZ, release_hours=24) == 1
    assert await store.release_reserved_slots(now=after, tz=TZ, release_hours=24) == 0
    released = await store.get_slot(late.id)
    assert released is not None and released.released_at == after
    kept = await store.get_slot(early.id)
    assert kept is not None and kept.released_at is None and kept.booked_consultation_id == cid
    # The later day's reserved slots are still open, and a slot past its cut-off cannot be booked even before
    # the release has run.
    days = await store.list_slot_days(hospital_org_ids=[h], start=NOW, end=NOW + dt.timedelta(days=10), tz=TZ)
    assert [(d.reserved, d.booked, d.released) for d in days] == [(2, 1, 1), (2, 0, 0)]
    (other,) = await consultations(store, clinic, doctor, 1)
    later = next(s for s in await store.list_slots(hospital_org_ids=[h], open_reserved=True))
    with pytest.raises(TelehealthError) as info:
        await store.book_slot(other, later.id, now=utc(2026, 11, 5, 16, 0), tz=TZ, release_hours=24)
    assert info.value.code is ErrorCode.slot_taken


async def signed_with(store: Store, referral: NewReferral | None, cid: int, specialist: int) -> None:
    await store.transition_consultation(cid, ConsultationState.queued, actor_id=None, now=NOW)
    await store.transition_consultation(cid, ConsultationState.accepted, actor_id=specialist, now=NOW,
                                        assigned_specialist_id=specialist)
    await store.transition_consultation(cid, ConsultationState.ended, actor_id=specialist, now=NOW)
    await store.save_note_draft(cid, specialist, {"assessment": "AF", "disposition": {"kind": "refer_up"}}, now=NOW)
    await store.sign_note(cid, specialist, now=NOW, store_and_forward=False, referral=referral)


async def test_a_referral_up_needs_the_slot_still_held_when_signing(store: Store) -> None:
    h, clinic, doctor, specialist = await hospital(store)
    await store.publish_slots(h, "cardiology", morning(dt.date(2026, 11, 10)), duration_min=30, location="", tz=TZ)
    slot = next(s for s in await store.list_slots(hospital_org_ids=[h]) if s.reserved)
    a, b = await consultations(store, clinic, doctor, 2)
    # b names a slot it does not hold: signing fails and leaves the note a draft.
    with pytest.raises(TelehealthError) as info:
        await signed_with(store, NewReferral("up", clinic, h, "cardiology", slot.id, priority=True), b, specialist)
    assert info.value.code is ErrorCode.slot_taken
    note = await store.get_note(b)
    assert note is not None and not note.signed
    assert await store.list_referrals(consultation_id=b) == []
    await store.book_slot(a, slot.id, now=NOW, tz=TZ, release_hours=24)
    await signed_with(store, NewReferral("up", clinic, h, "cardiology", slot.id, priority=True), a, specialist)
    (ref,) = await store.list_referrals(consultation_id=a)
    assert (ref.direction, ref.to_org_id, ref.slot_id, ref.priority, ref.status) == ("up", h, slot.id, True, "open")


async def test_a_referral_down_carries_tasks_and_is_closed_by_the_clinic(store: Store) -> None:
    h, clinic, doctor, specialist = await hospital(store)
    (cid,) = await consultations(store, clinic, doctor, 1)
    tasks = (("Blood pressure twice a week", dt.date(2026, 11, 20)), ("Repeat ECG in a month", None))
    await signed_with(store, NewReferral("down", h, clinic, "cardiology", care_plan="Bisoprolol 2.5 mg daily",
                                         tasks=tasks), cid, specialist)
    (ref,) = await store.list_referrals(to_org_id=clinic, direction="down", open_only=True)
    assert [(k.text, k.due_date) for k in ref.tasks] == list(tasks)
    assert await store.complete_referral_task(ref.id, ref.tasks[0].id, doctor, now=NOW)
    assert not await store.complete_referral_task(ref.id, ref.tasks[0].id, doctor, now=NOW)
    with pytest.raises(TelehealthError) as info:
        await store.complete_referral_task(ref.id, 9999, doctor, now=NOW)
    assert info.value.code is ErrorCode.not_found
    closed = await store.close_referral(ref.id, "Stable on treatment; BP 130/80.", doctor, now=NOW)
    assert closed.status == "closed" and closed.closed_at == NOW and closed.tasks[0].done_by == doctor
    with pytest.raises(TelehealthError) as info:
        await store.close_referral(ref.id, "again", doctor, now=NOW)
    assert info.value.code is ErrorCode.invalid_transition
    assert await store.list_referrals(to_org_id=clinic, open_only=True) == []
    (mine,) = await store.list_referrals(created_by=specialist)
    assert mine.outcome == "Stable on treatment; BP 130/80."
    kinds = [e.kind for e in await store.list_events(cid)]
    assert kinds[-3:] == ["referral_opened", "referral_task_done", "referral_closed"]
