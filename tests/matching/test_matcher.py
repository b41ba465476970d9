"""The matcher on the real store (SQLite) with each broker backend: order, offers, rings, claims, expiry, rebuild."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from telehealth.config import load_settings
from telehealth.domain import ConsultationState, DeclineReason, OrgLevel, Presence, Role, Title, Urgency
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.events import decode_event
from telehealth.matching.broker import Broker, Message
from telehealth.matching.memory import MemoryBroker
from telehealth.matching.service import Matcher
from telehealth.records.db import create_engine, migrate
from telehealth.records.models import Consultation, NewConsultation, User
from telehealth.records.store import Store

S = ConsultationState
REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclasses.dataclass
class World:
    store: Store
    broker: Broker
    matcher: Matcher
    clock: Clock
    users: dict[str, User]
    orgs: dict[str, int]
    inbox: dict[int, list[tuple[str, dict[str, Any]]]]

    def events(self, user: str, name: str | None = None) -> list[dict[str, Any]]:
        return [d for n, d in self.inbox.get(self.users[user].id, []) if name is None or n == name]

    async def settle(self) -> None:
        await asyncio.sleep(0.05)


async def make_broker(kind: str) -> Broker:
    if kind == "memory":
        return MemoryBroker(node="test")
    from telehealth.matching.redis_broker import RedisBroker

    return RedisBroker(REDIS_URL, prefix=f"tm{uuid.uuid4().hex[:8]}", node="test")


SETTINGS = dataclasses.replace(load_settings(profile="test", env={}).matching, ring_timeout_s=30,
                               widen_after_s=180, named_specialist_window_s=120)


@pytest.fixture(params=["memory", "redis"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.sqlite3'}")
    await migrate(engine)
    store = Store(engine)
    broker = await make_broker(request.param)
    await broker.start()
    clock = Clock()
    matcher = Matcher(store, broker, SETTINGS, clock=clock)
    now = dt.datetime.now(dt.UTC)
    own = await store.insert_alliance("own", "county_community")
    far = await store.insert_alliance("far", "city_group")
    orgs = {
        "clinic": (await store.insert_organisation("clinic", OrgLevel.village_clinic, alliance_id=own.id)).id,
        "county": (await store.insert_organisation("county", OrgLevel.county_hospital, alliance_id=own.id)).id,
        "partner": (await store.insert_organisation("partner", OrgLevel.city_hospital, alliance_id=far.id)).id,
        "stranger": (await store.insert_organisation("stranger", OrgLevel.city_hospital, alliance_id=far.id)).id,
    }
    await store.insert_agreement(orgs["clinic"], orgs["partner"], valid_from=now - dt.timedelta(days=1),
                                 valid_to=None, created_by=None, now=now)
    users: dict[str, User] = {}
    users["doc"] = await store.insert_user("doc", "x", "Doc", Role.clinic_doctor, organisation_id=orgs["clinic"],
                                           now=now)
    for name, org, title in [("att", "county", Title.attending), ("att2", "county", Title.attending),
                             ("chief", "county", Title.chief), ("far", "partner", Title.chief),
                             ("stranger", "stranger", Title.chief)]:
        users[name] = await store.insert_user(name, "x", name, Role.specialist, organisation_id=orgs[org], now=now,
                                              title=title, specialties=("cardiology",))
    inbox: dict[int, list[tuple[str, dict[str, Any]]]] = {}

    async def collect(message: Message) -> None:
        name, data = decode_event(message.data)
        uid = int(message.channel.split(":")[1])
        inbox.setdefault(uid, []).append((name, data))

    sub = await broker.subscribe(collect, *[f"user:{u.id}" for u in users.values()])
    try:
        yield World(store, broker, matcher, clock, users, orgs, inbox)
    finally:
        await sub.close()
        await broker.close()
        await engine.dispose()


def ask(urgency: Urgency = Urgency.routine, **changes: Any) -> NewConsultation:
    base: dict[str, Any] = dict(patient_name="P", patient_sex="female", patient_birth_year=1980,
                                patient_local_id="", specialty="cardiology", urgency=urgency,
                                chief_complaint="palpitations", consent_by="patient", consent_name="P")
    base.update(changes)
    return NewConsultation(**base)


async def submit(w: World, urgency: Urgency = Urgency.routine, **changes: Any) -> Consultation:
    return await w.matcher.submit(ask(urgency, **changes), w.users["doc"])


async def available(w: World, *names: str) -> None:
    for name in names:
        await w.matcher.set_presence(w.users[name], Presence.available, "test")
        w.clock.advance(1)  # distinct idle_since: the first made available has been idle longest


async def state(w: World, consultation_id: int) -> S:
    c = await w.store.get_consultation(consultation_id)
    assert c is not None
    return c.state


async def test_without_consent_nothing_is_queued(world: World) -> None:
    c = await submit(world, consent_by=None, consent_name=None)
    assert c.state is S.requested
    assert await world.broker.queue_length("cardiology") == 0
    with pytest.raises(TelehealthError) as info:
        await world.matcher.enqueue(c, actor_id=world.users["doc"].id)
    assert info.value.code is ErrorCode.consent_required


async def test_queue_order_is_urgency_then_waiting_time_with_ageing(world: World) -> None:
    routine_old = await submit(world, Urgency.routine)
    world.clock.advance(SETTINGS.head_start_urgent_s + 1)  # the routine request has waited past the head start
    urgent = await submit(world, Urgency.urgent)
    routine_new = await submit(world, Urgency.routine)
    emergency = await submit(world, Urgency.emergency)
    head = await world.broker.queue_head("cardiology", 10)
    assert [e.consultation_id for e in head] == [emergency.id, routine_old.id, urgent.id, routine_new.id]
    status = await world.matcher.status(await world.store.get_consultation(urgent.id))  # type: ignore[arg-type]
    assert status.position == 3


async def test_a_new_request_rings_the_longest_idle_eligible_specialist(world: World) -> None:
    await available(world, "att2", "att")
    c = await submit(world)
    await world.settle()
    assert await state(world, c.id) is S.offered
    assert [d["consultation_id"] for d in world.events("att2", "offer")] == [c.id]
    assert world.events("att", "offer") == []
    events = [e.kind for e in await world.store.list_events(c.id)]
    assert events == ["requested", "queued", "offered"]


async def test_decline_passes_the_request_on_and_never_back(world: World) -> None:
    await available(world, "att", "att2")
    c = await submit(world)
    await world.matcher.decline(c.id, world.users["att"], DeclineReason.busy_with_patient)
    await world.settle()
    assert [d["consultation_id"] for d in world.events("att2", "offer")] == [c.id]
    await world.matcher.decline(c.id, world.users["att2"], DeclineReason.other, "on a ward round")
    await world.settle()
    assert await state(world, c.id) is S.queued  # nobody left who has not declined
    assert len(world.events("att", "offer")) == 1
    declines = [e.data for e in await world.store.list_events(c.id) if e.kind == "declined"]
    assert [d["reason"] for d in declines] == ["busy_with_patient", "other"]
    told = world.events("doc", "consultation_state")[-1]
    assert told["state"] == "queued" and told["refusals"] == ["busy_with_patient", "other"]
    assert "declined" in told["reason"]


async def test_ring_timeout_passes_it_on_and_sets_the_silent_one_away(world: World) -> None:
    await available(world, "att", "att2")
    c = await submit(world)
    world.clock.advance(SETTINGS.ring_timeout_s + 0.1)
    await world.matcher.sweep()
    await world.settle()
    assert [d["consultation_id"] for d in world.events("att2", "offer")] == [c.id]
    presence = await world.broker.get_presence(world.users["att"].id)
    assert presence is not None and presence.status == "away"
    assert world.events("att", "offer_withdrawn")[0]["reason"] == "ring_timeout"


async def test_emergency_rings_everyone_and_the_first_accept_wins(world: World) -> None:
    await available(world, "att", "att2", "chief")
    c = await submit(world, Urgency.emergency)
    await world.settle()
    for name in ("att", "att2", "chief"):
        assert [d["consultation_id"] for d in world.events(name, "offer")] == [c.id]
    results = await asyncio.gather(*(world.matcher.accept(c.id, world.users[n]) for n in ("att", "att2", "chief")),
                                   return_exceptions=True)
    winners = [r for r in results if isinstance(r, Consultation)]
    losers = [r for r in results if isinstance(r, TelehealthError)]
    assert len(winners) == 1 and len(losers) == 2
    assert all(e.code is ErrorCode.already_claimed for e in losers)
    await world.settle()
    final = await world.store.get_consultation(c.id)
    assert final is not None and final.state is S.accepted
    winner_name = next(n for n in ("att", "att2", "chief") if world.users[n].id == final.assigned_specialist_id)
    for name in {"att", "att2", "chief"} - {winner_name}:
        assert [d["reason"] for d in world.events(name, "offer_withdrawn")] == ["accepted_by_other"]
    accepted = world.events("doc", "consultation_state")
    assert accepted[-1]["state"] == "accepted" and accepted[-1]["specialist"]["id"] == final.assigned_specialist_id


async def test_a_named_specialist_gets_it_alone_first(world: World) -> None:
    await available(world, "att", "chief")
    c = await submit(world, requested_specialist_id=world.users["chief"].id)
    await world.settle()
    assert [d["consultation_id"] for d in world.events("chief", "offer")] == [c.id]
    assert not world.events("att", "offer")
    other = await world.matcher.take_next(world.users["att"])
    assert other is None  # still in the named specialist's window


async def test_alliance_first_then_agreement_partners_never_strangers(world: World) -> None:
    c = await submit(world)
    assert await world.matcher.take_next(world.users["far"]) is None
    with pytest.raises(TelehealthError) as info:
        await world.matcher.take(c.id, world.users["stranger"])
    assert info.value.code is ErrorCode.not_eligible
    world.clock.advance(SETTINGS.widen_after_s + 1)
    assert await world.matcher.take_next(world.users["stranger"]) is None
    taken = await world.matcher.take_next(world.users["far"])
    assert taken is not None and taken.id == c.id and taken.assigned_specialist_id == world.users["far"].id


async def test_minimum_title_is_a_hard_requirement_unless_the_clinic_agreed_to_fall_back(world: World) -> None:
    strict = await submit(world, min_title=Title.chief)
    lenient = await submit(world, min_title=Title.chief, title_fallback=True)
    assert await world.matcher.take_next(world.users["att"]) is None
    world.clock.advance(SETTINGS.widen_after_s + 1)
    taken = await world.matcher.take_next(world.users["att"])
    assert taken is not None and taken.id == lenient.id
    chief = await world.matcher.take_next(world.users["chief"])
    assert chief is not None and chief.id == strict.id


async def test_complex_cases_prefer_senior_titles(world: World) -> None:
    await available(world, "att", "chief")  # the attending has been idle longer
    c = await submit(world, complex_case=True)
    await world.settle()
    assert world.events("chief", "offer") and not world.events("att", "offer")
    assert c.complex_case


async def test_many_specialists_racing_take_next_each_request_once(world: World) -> None:
    ids = {(await submit(world)).id for _ in range(12)}
    taken = await asyncio.gather(*(world.matcher.take_next(world.users[n]) for n in
                                   ["att", "att2", "chief"] * 6))
    got = [c.id for c in taken if c is not None]
    assert len(got) == len(set(got)) == 12 and set(got) == ids
    for cid in ids:
        assert await state(world, cid) is S.accepted


async def test_cancel_withdraws_the_ring(world: World) -> None:
    await available(world, "att")
    c = await submit(world)
    await world.settle()
    await world.matcher.cancel(c.id, world.users["doc"])
    await world.settle()
    assert await state(world, c.id) is S.cancelled
    assert world.events("att", "offer_withdrawn")[-1]["reason"] == "cancelled"
    with pytest.raises(TelehealthError) as info:
        await world.matcher.accept(c.id, world.users["att"])
    assert info.value.code is ErrorCode.already_claimed


async def test_unanswered_request_expires_and_can_be_queued_again(world: World) -> None:
    c = await submit(world, Urgency.emergency)
    world.clock.advance(SETTINGS.sla_emergency_s + 1)
    await world.matcher.sweep()
    await world.settle()
    assert await state(world, c.id) is S.expired
    told = world.events("doc", "consultation_state")
    assert told[-1]["state"] == "expired" and "queue it again" in told[-1]["reason"]
    expired = await world.store.get_consultation(c.id)
    assert expired is not None
    again = await world.matcher.enqueue(expired, actor_id=world.users["doc"].id)
    assert again.state is S.queued and await world.broker.queue_length("cardiology") == 1


async def test_an_emptied_broker_is_rebuilt_from_the_store(world: World) -> None:
    a = await submit(world, Urgency.routine)
    await available(world, "att")
    b = await submit(world, Urgency.urgent)  # rung to att: offered
    await world.settle()
    assert await state(world, a.id) is S.offered  # att was rung for the oldest first
    fresh = await make_broker("memory")
    await fresh.start()
    rebuilt = Matcher(world.store, fresh, SETTINGS, clock=world.clock)
    assert await fresh.ensure_epoch()
    assert await rebuilt.rebuild() == 2
    assert not await fresh.ensure_epoch()
    head = await fresh.queue_head("cardiology", 10)
    assert [e.consultation_id for e in head] == [b.id, a.id]
    assert await state(world, a.id) is S.queued
    assert await rebuilt.rebuild() == 0  # idempotent
    await fresh.close()


async def rebuilt_head(w: World) -> list[tuple[int, float]]:
    """The queue as a restarted node (a new in-process broker) or an emptied Redis rebuilds it from the
    store: (consultation id, score), best first."""
    fresh = await make_broker("memory" if isinstance(w.broker, MemoryBroker) else "redis")
    await fresh.start()
    try:
        assert await fresh.ensure_epoch()
        await Matcher(w.store, fresh, SETTINGS, clock=w.clock).rebuild()
        return [(e.consultation_id, e.score) for e in await fresh.queue_head("cardiology", 10)]
    finally:
        await fresh.close()


async def live_head(w: World) -> list[tuple[int, float]]:
    return [(e.consultation_id, e.score) for e in await w.broker.queue_head("cardiology", 10)]


async def test_a_declined_request_keeps_its_first_place_live_and_after_a_rebuild(world: World) -> None:
    t0 = world.clock.now
    first = await submit(world)  # nobody is available: queued at t0
    world.clock.advance(10)
    await available(world, "att")  # rung for the first at t0 + 10
    second = await submit(world)  # queued at t0 + 11, while att rings
    world.clock.advance(20)
    await world.matcher.decline(first.id, world.users["att"], DeclineReason.busy_with_patient)
    stored = await world.store.get_consultation(first.id)
    assert stored is not None and stored.state is S.queued
    assert stored.queued_at is not None and stored.queued_at.timestamp() == pytest.approx(t0 + 31, abs=1e-3)
    assert stored.first_queued_at is not None and stored.first_queued_at.timestamp() == pytest.approx(t0, abs=1e-3)
    expected = [(first.id, pytest.approx(t0, abs=1e-3)), (second.id, pytest.approx(t0 + 11, abs=1e-3))]
    assert await live_head(world) == expected
    assert await rebuilt_head(world) == expected


async def test_a_rung_out_request_keeps_its_first_place_live_and_after_a_rebuild(world: World) -> None:
    t0 = world.clock.now
    first = await submit(world)
    world.clock.advance(10)
    await available(world, "att")
    second = await submit(world)  # t0 + 11
    world.clock.advance(SETTINGS.ring_timeout_s + 0.5)
    await world.matcher.sweep()  # att let it ring out: back in the queue, att away
    assert await state(world, first.id) is S.queued
    expected = [(first.id, pytest.approx(t0, abs=1e-3)), (second.id, pytest.approx(t0 + 11, abs=1e-3))]
    assert await live_head(world) == expected
    assert await rebuilt_head(world) == expected


async def test_a_request_ringing_at_a_crash_keeps_its_first_place_after_the_rebuild(world: World) -> None:
    t0 = world.clock.now
    await available(world, "att")  # t0 + 1 after this
    first = await submit(world)  # rung to att at t0 + 1
    world.clock.advance(5)
    second = await submit(world)  # queued at t0 + 6
    assert await state(world, first.id) is S.offered
    world.clock.advance(100)  # the rebuild undoes the ring at t0 + 106
    assert await rebuilt_head(world) == [(first.id, pytest.approx(t0 + 1, abs=1e-3)),
                                         (second.id, pytest.approx(t0 + 6, abs=1e-3))]
    stored = await world.store.get_consultation(first.id)
    assert stored is not None and stored.state is S.queued
    assert stored.first_queued_at is not None and stored.first_queued_at.timestamp() == pytest.approx(t0 + 1,
                                                                                                     abs=1e-3)


async def test_a_request_given_back_after_a_dropped_call_keeps_its_first_place_with_urgency_ordering(
        world: World) -> None:
    t0 = world.clock.now
    await available(world, "att")
    first = await submit(world, Urgency.routine)  # rung to att at t0 + 1
    await world.matcher.accept(first.id, world.users["att"])
    world.clock.advance(500)
    urgent_soon = await submit(world, Urgency.urgent)  # t0 + 501: head start 900 -> score t0 - 399, ahead
    world.clock.advance(500)
    urgent_later = await submit(world, Urgency.urgent)  # t0 + 1001: score t0 + 101, behind the routine one
    world.clock.advance(500)
    # The call starts, drops and nobody comes back within the grace period; the specialist gives it back.
    for target in (S.in_call, S.accepted):
        await world.store.transition_consultation(first.id, target, actor_id=None,
                                                  now=dt.datetime.fromtimestamp(world.clock.now, dt.UTC))
    world.clock.advance(60)
    await world.matcher.give_back(first.id, world.users["att"])
    expected = [(urgent_soon.id, pytest.approx(t0 + 501 - 900, abs=1e-3)),
                (first.id, pytest.approx(t0 + 1, abs=1e-3)),
                (urgent_later.id, pytest.approx(t0 + 1001 - 900, abs=1e-3))]
    assert await live_head(world) == expected
    assert await rebuilt_head(world) == expected
    live = await world.broker.get(first.id)
    assert live is not None
    # The windows and the service level count from this return; the place from the first entry.
    assert live.entry.enqueued_at == pytest.approx(t0 + 1561, abs=1e-3)
    assert live.entry.expires_at == pytest.approx(t0 + 1561 + SETTINGS.sla_routine_s, abs=1e-3)
    assert live.entry.waiting_since == pytest.approx(t0 + 1, abs=1e-3)


async def test_a_request_queued_again_after_expiry_keeps_its_first_place(world: World) -> None:
    t0 = world.clock.now
    c = await submit(world, Urgency.emergency)  # score t0 - 3600
    world.clock.advance(SETTINGS.sla_emergency_s + 1)
    await world.matcher.sweep()
    assert await state(world, c.id) is S.expired
    later = await submit(world, Urgency.emergency)  # score t0 + 601 - 3600
    expired = await world.store.get_consultation(c.id)
    assert expired is not None
    await world.matcher.enqueue(expired, actor_id=world.users["doc"].id)
    expected = [(c.id, pytest.approx(t0 - 3600, abs=1e-3)), (later.id, pytest.approx(t0 + 601 - 3600, abs=1e-3))]
    assert await live_head(world) == expected
    assert await rebuilt_head(world) == expected
