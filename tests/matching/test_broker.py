"""The broker contract, run against both backends: the in-process broker and Redis (a real server)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telehealth.matching.broker import (
    Broker,
    ClaimOutcome,
    LiveState,
    Message,
    QueueEntry,
    SpecialistPresence,
)
from telehealth.matching.memory import MemoryBroker
from telehealth.matching.redis_broker import RedisBroker

REDIS_URL = "redis://127.0.0.1:6379/0"
BACKENDS = ["memory", "redis"]


async def open_broker(kind: str) -> tuple[Broker, str]:
    prefix = f"tb{uuid.uuid4().hex[:10]}"
    broker: Broker = MemoryBroker(node="t") if kind == "memory" else RedisBroker(REDIS_URL, prefix=prefix, node="t")
    await broker.start()
    return broker, prefix


async def close_broker(broker: Broker, kind: str, prefix: str) -> None:
    await broker.close()
    if kind == "redis":
        client = aioredis.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(match=f"{{{prefix}}}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture(params=BACKENDS)
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    b, prefix = await open_broker(request.param)
    try:
        yield b
    finally:
        await close_broker(b, request.param, prefix)


def entry(cid: int, score: float, specialty: str = "cardiology", expires_at: float = 0.0) -> QueueEntry:
    return QueueEntry(consultation_id=cid, specialty=specialty, urgency="routine", score=score, enqueued_at=score,
                      clinic_org_id=1, primary_org_ids=frozenset({5}), partner_org_ids=frozenset({5, 6}),
                      expires_at=expires_at)


def presence(uid: int, status: str = "available", idle: float = 0.0,
             specialties: tuple[str, ...] = ("cardiology",)) -> SpecialistPresence:
    return SpecialistPresence(user_id=uid, status=status, specialties=specialties, org_id=5, title_rank=1,
                              idle_since=idle)


async def test_queue_orders_by_score_then_id_and_round_trips_entries(broker: Broker) -> None:
    for cid, score in [(3, 10.0), (1, 10.0), (2, 5.0), (10, 10.0), (4, 20.0)]:
        assert await broker.enqueue(entry(cid, score))
    head = await broker.queue_head("cardiology", 10)
    assert [e.consultation_id for e in head] == [2, 1, 3, 10, 4]
    assert head[0] == entry(2, 5.0)
    assert [e.consultation_id for e in await broker.queue_head("cardiology", 2, offset=2)] == [3, 10]
    assert await broker.queue_length("cardiology") == 5
    assert await broker.queue_position(10) == 4
    assert await broker.specialties_queued() == {"cardiology": 5}
    assert await broker.queue_head("neurology", 10) == []


async def test_enqueue_is_idempotent(broker: Broker) -> None:
    assert await broker.enqueue(entry(1, 1.0))
    assert not await broker.enqueue(entry(1, 0.5))
    live = await broker.get(1)
    assert live is not None and live.entry.score == 1.0 and live.state is LiveState.queued


async def test_offer_rings_only_live_available_specialists_not_already_ringing(broker: Broker) -> None:
    await broker.enqueue(entry(1, 1.0))
    await broker.enqueue(entry(2, 2.0))
    await broker.set_presence(presence(7), ttl=30)
    await broker.set_presence(presence(8, status="busy"), ttl=30)
    assert await broker.offer(1, [7, 8, 9], deadline=100.0) == [7]
    live = await broker.get(1)
    assert live is not None and live.state is LiveState.offered and live.ringing == {7}
    assert await broker.queue_position(1) is None and await broker.queue_length("cardiology") == 1
    assert await broker.offer(2, [7], deadline=100.0) == []  # 7 is ringing for 1
    assert await broker.offer(1, [7], deadline=100.0) == []  # 1 is no longer queued
    p7 = await broker.get_presence(7)
    assert p7 is not None and p7.ringing == 1


async def test_first_accept_wins_and_every_ring_stops(broker: Broker) -> None:
    await broker.enqueue(entry(1, 1.0))
    for uid in (7, 8, 9):
        await broker.set_presence(presence(uid), ttl=30)
    assert sorted(await broker.offer(1, [7, 8, 9], deadline=100.0)) == [7, 8, 9]
    outcomes = await asyncio.gather(*(broker.accept(1, uid) for uid in (7, 8, 9)))
    assert sorted(o.value for o in outcomes) == ["gone", "gone", "won"]
    assert await broker.accept(1, 42) is ClaimOutcome.gone
    for uid in (7, 8, 9):
        p = await broker.get_presence(uid)
        assert p is not None and p.ringing is None
    live = await broker.get(1)
    assert live is not None and live.state is LiveState.claimed and live.owner in (7, 8, 9)
    assert await broker.due_offers(now=1e12) == []


async def test_accept_without_a_ring_is_refused(broker: Broker) -> None:
    await broker.enqueue(entry(1, 1.0))
    assert await broker.accept(1, 7) is ClaimOutcome.not_offered
    assert await broker.accept(99, 7) is ClaimOutcome.unknown


async def test_claim_races_have_exactly_one_winner(broker: Broker) -> None:
    await broker.enqueue(entry(1, 1.0))
    outcomes = await asyncio.gather(*(broker.claim(1, uid) for uid in range(100, 150)))
    assert [o for o in outcomes if o is ClaimOutcome.won] == [ClaimOutcome.won]
    assert await broker.queue_length("cardiology") == 0


async def test_claim_of_an_offered_consultation_only_by_the_rung(broker: Broker) -> None:
    await broker.enqueue(entry(1, 1.0))
    await broker.set_presence(presence(7), ttl=30)
    await broker.offer(1, [7], deadline=100.0)
    assert await broker.claim(1, 8) is ClaimOutcome.gone
    assert await broker.claim(1, 7) is ClaimOutcome.won


async def test_decline_requeues_with_the_original_place(broker: Broker) -> None:
    await broker.enqueue(entry(1, 1.0))
    await broker.enqueue(entry(2, 2.0))
    for uid in (7, 8):
        await broker.set_presence(presence(uid), ttl=30)
    await broker.offer(1, [7, 8], deadline=100.0)
    first = await broker.release_offer(1, 7)
    assert first.released and not first.requeued  # 8 still rings
    again = await broker.release_offer(1, 7)
    assert not again.released
    last = await broker.release_offer(1, 8)
    assert last.released and last.requeued and last.entry == entry(1, 1.0)
    assert await broker.queue_position(1) == 1
    p8 = await broker.get_presence(8)
    assert p8 is not None and p8.ringing is None


async def test_due_offers_and_expiries(broker: Broker) -> None:
    await broker.enqueue(entry(1, 1.0, expires_at=50.0))
    await broker.enqueue(entry(2, 2.0, expires_at=500.0))
    await broker.set_presence(presence(7), ttl=30)
    await broker.offer(1, [7], deadline=20.0)
    assert await broker.due_offers(now=19.0) == []
    assert await broker.due_offers(now=21.0) == [(1, [7])]
    assert await broker.due_expiries(now=49.0) == []
    assert await broker.due_expiries(now=51.0) == [1]
    assert await broker.claim(2, 8) is ClaimOutcome.won
    assert await broker.due_expiries(now=600.0) == [1]  # a claimed consultation no longer expires


async def test_remove_clears_rings_and_everything_else(broker: Broker) -> None:
    await broker.enqueue(entry(1, 1.0, expires_at=50.0))
    await broker.set_presence(presence(7), ttl=30)
    await broker.offer(1, [7], deadline=20.0)
    before = await broker.remove(1)
    assert before is not None and before.state is LiveState.offered and before.ringing == {7}
    assert await broker.get(1) is None and await broker.remove(1) is None
    assert await broker.due_offers(now=100.0) == [] and await broker.due_expiries(now=100.0) == []
    p7 = await broker.get_presence(7)
    assert p7 is not None and p7.ringing is None
    assert [p.user_id for p in await broker.available_specialists("cardiology")] == [7]


async def test_requeue_after_claim(broker: Broker) -> None:
    await broker.enqueue(entry(1, 1.0))
    assert not await broker.requeue(1, entry(1, 0.5))
    assert await broker.claim(1, 7) is ClaimOutcome.won
    assert await broker.requeue(1, entry(1, 0.5))
    head = await broker.queue_head("cardiology", 5)
    assert [e.score for e in head] == [0.5]


async def test_presence_expires_and_heartbeats_extend_it(broker: Broker) -> None:
    await broker.set_presence(presence(7), ttl=0.3)
    await broker.set_presence(presence(8), ttl=0.3)
    await asyncio.sleep(0.15)
    assert await broker.touch_presence(8, ttl=1.0)
    await asyncio.sleep(0.3)
    assert await broker.get_presence(7) is None
    assert await broker.get_presence(8) is not None
    assert not await broker.touch_presence(7, ttl=1.0)
    assert [p.user_id for p in await broker.available_specialists("cardiology")] == [8]


async def test_available_specialists_longest_idle_first(broker: Broker) -> None:
    await broker.set_presence(presence(1, idle=30.0), ttl=30)
    await broker.set_presence(presence(2, idle=10.0), ttl=30)
    await broker.set_presence(presence(3, idle=20.0, status="away"), ttl=30)
    await broker.set_presence(presence(4, idle=5.0, specialties=("neurology",)), ttl=30)
    await broker.set_presence(presence(5, idle=1.0), ttl=30)
    await broker.enqueue(entry(1, 1.0))
    await broker.offer(1, [5], deadline=100.0)
    assert [p.user_id for p in await broker.available_specialists("cardiology")] == [2, 1]
    await broker.set_presence(presence(2, status="busy"), ttl=30)
    assert [p.user_id for p in await broker.available_specialists("cardiology")] == [1]
    assert (await broker.count_presence())["available"] == 3
    await broker.clear_presence(1)
    assert await broker.available_specialists("cardiology") == []


async def test_values_expire(broker: Broker) -> None:
    await broker.put("k", "v", ttl=0.2)
    assert await broker.fetch("k") == "v"
    await asyncio.sleep(0.3)
    assert await broker.fetch("k") is None
    await broker.put("k", "w", ttl=5)
    await broker.delete("k")
    assert await broker.fetch("k") is None


async def test_lists_keep_order_are_taken_once_and_expire(broker: Broker) -> None:
    assert await broker.take_all("l") == []
    for item in ("a", "b", "c"):
        await broker.append("l", item, ttl=5)
    taken = await asyncio.gather(broker.take_all("l"), broker.take_all("l"))
    assert sorted(taken, key=len) == [[], ["a", "b", "c"]]
    await broker.append("l", "d", ttl=5)
    assert await broker.take_all("l") == ["d"]
    await broker.append("gone", "x", ttl=0.2)
    await asyncio.sleep(0.3)
    assert await broker.take_all("gone") == []
    # An add after expiry starts a new list; each add extends the list's life.
    await broker.append("gone", "y", ttl=0.4)
    await asyncio.sleep(0.25)
    await broker.append("gone", "z", ttl=0.4)
    await asyncio.sleep(0.25)
    assert await broker.take_all("gone") == ["y", "z"]


async def test_pubsub_delivers_in_order_to_every_subscriber(broker: Broker) -> None:
    got_a: list[tuple[str, bytes]] = []
    got_b: list[tuple[str, bytes]] = []

    async def a(m: Message) -> None:
        got_a.append((m.channel, m.data))

    async def b(m: Message) -> None:
        got_b.append((m.channel, m.data))

    sub_a = await broker.subscribe(a, "user:1")
    sub_b = await broker.subscribe(b, "user:1", "queue:cardiology")
    for i in range(20):
        await broker.publish("user:1", str(i).encode())
    await broker.publish("queue:cardiology", b"q")
    await broker.publish("user:2", b"nobody")
    for _ in range(50):
        if len(got_a) == 20 and len(got_b) == 21:
            break
        await asyncio.sleep(0.02)
    assert [d for _, d in got_a] == [str(i).encode() for i in range(20)]
    assert ("queue:cardiology", b"q") in got_b and len(got_b) == 21
    await sub_a.remove("user:1")
    await sub_a.add("user:2")
    await broker.publish("user:1", b"after")
    await broker.publish("user:2", b"two")
    await asyncio.sleep(0.1)
    assert got_a[-1] == ("user:2", b"two")
    await sub_a.close()
    await sub_b.close()


async def test_pubsub_at_once_keeps_the_order_behind_a_slow_handler(broker: Broker) -> None:
    """The quick path takes a message only when nothing waits before it: one that arrives while the handler is
    busy with an earlier one waits its turn, and after the queue drains the quick path takes over again."""
    got: list[bytes] = []
    gate = asyncio.Event()

    def at_once(m: Message) -> bool:
        if m.data.startswith(b"slow"):
            return False
        got.append(m.data)
        return True

    async def handler(m: Message) -> None:
        if m.data.startswith(b"slow"):
            await gate.wait()
        got.append(m.data)

    sub = await broker.subscribe(handler, "user:1", at_once=at_once)
    await broker.publish("user:1", b"1")
    await broker.publish("user:1", b"slow 2")
    await broker.publish("user:1", b"3")
    await broker.publish("user:1", b"4")
    await asyncio.sleep(0.1)
    assert got == [b"1"]  # 3 and 4 wait behind the slow one, although the quick path would take them
    gate.set()
    for _ in range(50):
        if len(got) == 4:
            break
        await asyncio.sleep(0.02)
    assert got == [b"1", b"slow 2", b"3", b"4"]
    await broker.publish("user:1", b"5")
    for _ in range(50):
        if len(got) == 5:
            break
        await asyncio.sleep(0.02)
    assert got[-1] == b"5"
    await sub.close()


async def test_epoch_marks_a_built_live_state(broker: Broker) -> None:
    assert await broker.ensure_epoch()
    assert not await broker.ensure_epoch()
    await broker.clear_epoch()
    assert await broker.ensure_epoch()


# -- properties -----------------------------------------------------------------------------------

OPS = st.lists(st.tuples(st.sampled_from(["enqueue", "offer", "accept", "claim", "release", "remove"]),
                         st.integers(1, 6), st.integers(1, 4)), min_size=1, max_size=40)


@pytest.mark.parametrize("kind", BACKENDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_no_double_owner_and_nothing_lost(kind: str, ops: list[tuple[str, int, int]]) -> None:
    async def run() -> None:
        broker, prefix = await open_broker(kind)
        try:
            for uid in range(1, 5):
                await broker.set_presence(presence(uid), ttl=60)
            enqueued: set[int] = set()
            removed: set[int] = set()
            owners: dict[int, int] = {}
            for op, cid, uid in ops:
                if op == "enqueue" and cid not in enqueued:
                    enqueued.add(cid) if await broker.enqueue(entry(cid, float(cid))) else None
                elif op == "offer":
                    await broker.offer(cid, [uid], deadline=1e9)
                elif op in ("accept", "claim"):
                    outcome = await (broker.accept(cid, uid) if op == "accept" else broker.claim(cid, uid))
                    if outcome is ClaimOutcome.won:
                        assert cid not in owners, "a consultation was won twice"
                        owners[cid] = uid
                elif op == "release":
                    await broker.release_offer(cid, uid)
                elif op == "remove" and await broker.remove(cid) is not None:
                    removed.add(cid)
                    owners.pop(cid, None)
            # Every consultation is in exactly one place.
            for cid in enqueued - removed:
                live = await broker.get(cid)
                assert live is not None
                queued = await broker.queue_position(cid) is not None
                assert queued == (live.state is LiveState.queued)
                assert (live.state is LiveState.claimed) == (cid in owners)
                if live.state is LiveState.offered:
                    assert live.ringing
                    for r in live.ringing:
                        p = await broker.get_presence(r)
                        assert p is not None and p.ringing == cid
            head = await broker.queue_head("cardiology", 100)
            assert [(e.score, e.consultation_id) for e in head] == sorted((e.score, e.consultation_id) for e in head)
        finally:
            await close_broker(broker, kind, prefix)

    asyncio.run(run())


@settings(max_examples=60, deadline=None)
@given(routine_at=st.floats(0, 10_000), later=st.floats(0, 5_000), head_start=st.floats(1, 3_600))
def test_ageing_bound(routine_at: float, later: float, head_start: float) -> None:
    """A routine request is overtaken only by urgent ones made within the urgent head start of it."""
    from telehealth.config import MatchingSettings
    from telehealth.matching.rules import queue_score

    s = MatchingSettings(head_start_urgent_s=head_start, head_start_emergency_s=max(head_start, 3600))
    urgent_at = routine_at + later
    routine_first = queue_score(routine_at, "routine", s) < queue_score(urgent_at, "urgent", s)
    if abs(later - head_start) > 1e-6:  # at the boundary itself, float rounding decides
        assert routine_first == (later > head_start)



async def test_an_entry_keeps_its_score_and_first_queue_time_through_claim_and_requeue(broker: Broker) -> None:
    first = QueueEntry(consultation_id=1, specialty="cardiology", urgency="routine", score=100.0, enqueued_at=500.0,
                       clinic_org_id=1, partner_org_ids=frozenset({5}), first_queued_at=100.0)
    await broker.enqueue(first)
    await broker.enqueue(entry(2, 200.0))
    assert await broker.claim(1, 7) is ClaimOutcome.won
    assert [e.consultation_id for e in await broker.queue_head("cardiology", 10)] == [2]
    # Given back later: the caller builds the entry anew, and the first queue time still orders it.
    back = QueueEntry(consultation_id=1, specialty="cardiology", urgency="routine", score=100.0, enqueued_at=900.0,
                      clinic_org_id=1, partner_org_ids=frozenset({5}), first_queued_at=100.0)
    assert await broker.requeue(1, back)
    head = await broker.queue_head("cardiology", 10)
    assert [e.consultation_id for e in head] == [1, 2]
    assert head[0] == back and head[0].waiting_since == 100.0
    assert await broker.queue_position(1) == 1
