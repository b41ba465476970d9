"""An agreement whose period runs out stops routing at that instant, though nobody ended it: the matcher holds a
clinic's partner hospitals only until the next start or end of one of its agreements (each broker backend)."""

from __future__ import annotations

import datetime as dt

import pytest

from telehealth.domain import ConsultationState, DeclineReason, OrgLevel, Presence, Role
from telehealth.errors import ErrorCode, TelehealthError
from tests.matching.test_matcher import World, ask, available, state, world

__all__ = ["world"]


async def test_an_expiring_agreement_stops_routing_when_it_expires(world: World) -> None:
    w = world
    now = dt.datetime.fromtimestamp(w.clock.now, dt.UTC)
    lone = (await w.store.insert_organisation("lone", OrgLevel.village_clinic, alliance_id=None)).id
    doctor = await w.store.insert_user("lone.doc", "x", "Lone", Role.clinic_doctor, organisation_id=lone, now=now)
    # The clinic's one agreement, with the "partner" hospital, runs out in ten seconds.
    await w.store.insert_agreement(lone, w.orgs["partner"], valid_from=now - dt.timedelta(days=1),
                                   valid_to=now + dt.timedelta(seconds=10), created_by=None, now=now)
    before = await w.matcher.submit(ask(), doctor)  # the matcher now holds the clinic's partners
    assert await state(w, before.id) is ConsultationState.queued
    w.clock.advance(5)
    await available(w, "far")  # still valid: the partner's specialist is rung
    assert await state(w, before.id) is ConsultationState.offered
    await w.matcher.decline(before.id, w.users["far"], reason=DeclineReason.other)
    w.clock.advance(6)  # past the end of the period, well within the time the partners were held for
    waiting = await w.matcher.submit(ask(), doctor)
    await w.matcher.set_presence(w.users["far"], Presence.busy, "test")
    await available(w, "far")
    assert await state(w, waiting.id) is ConsultationState.queued
    assert await state(w, before.id) is ConsultationState.queued
    assert not any(e["consultation_id"] == waiting.id for e in w.events("far", "offer"))


async def test_a_ring_that_sounded_before_the_agreement_expired_cannot_be_accepted_after(world: World) -> None:
    w = world
    now = dt.datetime.fromtimestamp(w.clock.now, dt.UTC)
    lone = (await w.store.insert_organisation("lone", OrgLevel.village_clinic, alliance_id=None)).id
    doctor = await w.store.insert_user("lone.doc", "x", "Lone", Role.clinic_doctor, organisation_id=lone, now=now)
    await w.store.insert_agreement(lone, w.orgs["partner"], valid_from=now - dt.timedelta(days=1),
                                   valid_to=now + dt.timedelta(seconds=10), created_by=None, now=now)
    await available(w, "far")
    asked = await w.matcher.submit(ask(), doctor)
    assert await state(w, asked.id) is ConsultationState.offered  # rung while the agreement was valid
    w.clock.advance(11)  # the ring (30 s) still sounds; the agreement has expired
    with pytest.raises(TelehealthError) as info:
        await w.matcher.accept(asked.id, w.users["far"])
    assert info.value.code is ErrorCode.not_eligible
    assert await state(w, asked.id) is ConsultationState.queued
    live = await w.broker.get(asked.id)
    assert live is not None and not live.ringing
