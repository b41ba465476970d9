"""The in-process broker: the embedded default for a single node, with the same contract as Redis."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from sortedcontainers import SortedList

from telehealth.matching.broker import (
    AtOnce,
    BrokerStats,
    ClaimOutcome,
    LiveConsultation,
    LiveState,
    Message,
    MessageHandler,
    OrderedDelivery,
    QueueEntry,
    ReleaseOutcome,
    SpecialistPresence,
)

# Every operation below runs without awaiting between its reads and writes, so on one event loop each is
# atomic: that is this backend's equivalent of Redis running a Lua script.


@dataclass
class _Live:
    entry: QueueEntry
    state: LiveState
    ringing: set[int] = field(default_factory=set)
    owner: int | None = None
    deadline: float = 0.0

    def view(self) -> LiveConsultation:
        return LiveConsultation(self.entry, self.state, frozenset(self.ringing), self.owner, self.deadline)


class _MemorySubscription(OrderedDelivery):
    def __init__(self, broker: MemoryBroker, handler: MessageHandler, at_once: AtOnce | None = None) -> None:
        super().__init__(handler, at_once)
        self._broker = broker
        self.channels: set[str] = set()

    async def add(self, *channels: str) -> None:
        for channel in channels:
            self.channels.add(channel)
            self._broker._subscribers[channel].add(self)

    async def remove(self, *channels: str) -> None:
        for channel in channels:
            self.channels.discard(channel)
            subs = self._broker._subscribers.get(channel)
            if subs is not None:
                subs.discard(self)
                if not subs:
                    del self._broker._subscribers[channel]

    async def close(self) -> None:
        await self.remove(*list(self.channels))
        await self.stop_delivery()


class MemoryBroker:
    """Live state in dictionaries and sorted lists; pub/sub by direct hand-off to subscribers' queues."""

    def __init__(self, node: str = "") -> None:
        self.node = node
        self._live: dict[int, _Live] = {}
        self._queues: dict[str, SortedList] = defaultdict(SortedList)  # (score, id) per specialty
        self._offers: SortedList = SortedList()  # (deadline, id)
        self._expiries: SortedList = SortedList()  # (expires_at, id)
        self._presence: dict[int, tuple[SpecialistPresence, float]] = {}
        self._values: dict[str, tuple[str, float]] = {}
        self._lists: dict[str, tuple[list[str], float]] = {}
        self._appends = 0
        self._subscribers: dict[str, set[_MemorySubscription]] = defaultdict(set)
        self._epoch = False

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                await sub.close()

    async def ping(self) -> None:
        return None

    async def ensure_epoch(self) -> bool:
        created = not self._epoch
        self._epoch = True
        return created

    async def clear_epoch(self) -> None:
        self._epoch = False

    # -- queue ------------------------------------------------------------------------------------

    def _queue_key(self, entry: QueueEntry) -> tuple[float, int]:
        return (entry.score, entry.consultation_id)

    async def enqueue(self, entry: QueueEntry) -> bool:
        if entry.consultation_id in self._live:
            return False
        self._live[entry.consultation_id] = _Live(entry, LiveState.queued)
        self._queues[entry.specialty].add(self._queue_key(entry))
        if entry.expires_at:
            self._expiries.add((entry.expires_at, entry.consultation_id))
        return True

    async def get(self, consultation_id: int) -> LiveConsultation | None:
        live = self._live.get(consultation_id)
        return live.view() if live else None

    async def queue_head(self, specialty: str, limit: int, offset: int = 0) -> list[QueueEntry]:
        queue = self._queues.get(specialty)
        if not queue:
            return []
        return [self._live[cid].entry for _, cid in queue.islice(offset, offset + limit)]

    async def queue_length(self, specialty: str) -> int:
        return len(self._queues.get(specialty, ()))

    async def queue_position(self, consultation_id: int) -> int | None:
        live = self._live.get(consultation_id)
        if live is None or live.state is not LiveState.queued:
            return None
        return int(self._queues[live.entry.specialty].index(self._queue_key(live.entry))) + 1

    async def specialties_queued(self) -> dict[str, int]:
        return {s: len(q) for s, q in self._queues.items() if q}

    def _unqueue(self, live: _Live) -> None:
        queue = self._queues.get(live.entry.specialty)
        if queue is not None:
            queue.discard(self._queue_key(live.entry))

    def _clear_rings(self, live: _Live) -> None:
        for uid in live.ringing:
            current = self._presence.get(uid)
            if current is not None and current[0].ringing == live.entry.consultation_id:
                self._presence[uid] = (replace(current[0], ringing=None), current[1])
        live.ringing.clear()
        if live.deadline:
            self._offers.discard((live.deadline, live.entry.consultation_id))
            live.deadline = 0.0

    async def remove(self, consultation_id: int) -> LiveConsultation | None:
        live = self._live.pop(consultation_id, None)
        if live is None:
            return None
        before = live.view()
        self._unqueue(live)
        self._clear_rings(live)
        if live.entry.expires_at:
            self._expiries.discard((live.entry.expires_at, consultation_id))
        return before

    async def requeue(self, consultation_id: int, entry: QueueEntry) -> bool:
        live = self._live.get(consultation_id)
        if live is None or live.state is not LiveState.claimed:
            return False
        if live.entry.expires_at:
            self._expiries.discard((live.entry.expires_at, consultation_id))
        live.entry, live.state, live.owner = entry, LiveState.queued, None
        self._queues[entry.specialty].add(self._queue_key(entry))
        if entry.expires_at:
            self._expiries.add((entry.expires_at, consultation_id))
        return True

    # -- offers and claims ------------------------------------------------------------------------

    def _live_presence(self, user_id: int) -> SpecialistPresence | None:
        found = self._presence.get(user_id)
        if found is None:
            return None
        if found[1] <= time.time():
            del self._presence[user_id]
            return None
        return found[0]

    async def offer(self, consultation_id: int, specialist_ids: Sequence[int], deadline: float) -> list[int]:
        live = self._live.get(consultation_id)
        if live is None or live.state is not LiveState.queued:
            return []
        rung = []
        for uid in dict.fromkeys(specialist_ids):
            presence = self._live_presence(uid)
            if presence is None or presence.status != "available" or presence.ringing is not None:
                continue
            self._presence[uid] = (replace(presence, ringing=consultation_id), self._presence[uid][1])
            rung.append(uid)
        if not rung:
            return []
        self._unqueue(live)
        live.state = LiveState.offered
        live.ringing = set(rung)
        live.deadline = deadline
        self._offers.add((deadline, consultation_id))
        return rung

    def _win(self, live: _Live, specialist_id: int) -> None:
        self._unqueue(live)
        self._clear_rings(live)
        if live.entry.expires_at:
            self._expiries.discard((live.entry.expires_at, live.entry.consultation_id))
        live.state = LiveState.claimed
        live.owner = specialist_id

    async def accept(self, consultation_id: int, specialist_id: int) -> ClaimOutcome:
        live = self._live.get(consultation_id)
        if live is None:
            return ClaimOutcome.unknown
        if live.state is LiveState.claimed:
            return ClaimOutcome.gone
        if live.state is not LiveState.offered or specialist_id not in live.ringing:
            return ClaimOutcome.not_offered
        self._win(live, specialist_id)
        return ClaimOutcome.won

    async def claim(self, consultation_id: int, specialist_id: int) -> ClaimOutcome:
        live = self._live.get(consultation_id)
        if live is None:
            return ClaimOutcome.unknown
        if live.state is LiveState.claimed:
            return ClaimOutcome.gone
        if live.state is LiveState.offered and specialist_id not in live.ringing:
            return ClaimOutcome.gone
        self._win(live, specialist_id)
        return ClaimOutcome.won

    async def release_offer(self, consultation_id: int, specialist_id: int) -> ReleaseOutcome:
        live = self._live.get(consultation_id)
        if live is None or live.state is not LiveState.offered or specialist_id not in live.ringing:
            return ReleaseOutcome(released=False, requeued=False)
        live.ringing.discard(specialist_id)
        current = self._presence.get(specialist_id)
        if current is not None and current[0].ringing == consultation_id:
            self._presence[specialist_id] = (replace(current[0], ringing=None), current[1])
        if live.ringing:
            return ReleaseOutcome(released=True, requeued=False, entry=live.entry)
        self._offers.discard((live.deadline, consultation_id))
        live.deadline = 0.0
        live.state = LiveState.queued
        self._queues[live.entry.specialty].add(self._queue_key(live.entry))
        return ReleaseOutcome(released=True, requeued=True, entry=live.entry)

    async def due_offers(self, now: float, limit: int = 100) -> list[tuple[int, list[int]]]:
        due = []
        for deadline, cid in self._offers.irange(maximum=(now, float("inf"))):
            live = self._live.get(cid)
            if live is not None and live.state is LiveState.offered and deadline <= now:
                due.append((cid, sorted(live.ringing)))
            if len(due) >= limit:
                break
        return due

    async def due_expiries(self, now: float, limit: int = 100) -> list[int]:
        due = []
        for _, cid in self._expiries.irange(maximum=(now, float("inf"))):
            live = self._live.get(cid)
            if live is not None and live.state is not LiveState.claimed:
                due.append(cid)
            if len(due) >= limit:
                break
        return due

    # -- presence ---------------------------------------------------------------------------------

    async def set_presence(self, presence: SpecialistPresence, ttl: float) -> None:
        current = self._live_presence(presence.user_id)
        ringing = current.ringing if current is not None else None
        self._presence[presence.user_id] = (replace(presence, ringing=ringing), time.time() + ttl)

    async def touch_presence(self, user_id: int, ttl: float) -> bool:
        current = self._live_presence(user_id)
        if current is None:
            return False
        self._presence[user_id] = (current, time.time() + ttl)
        return True

    async def get_presence(self, user_id: int) -> SpecialistPresence | None:
        return self._live_presence(user_id)

    async def clear_presence(self, user_id: int) -> None:
        self._presence.pop(user_id, None)

    async def available_specialists(self, specialty: str) -> list[SpecialistPresence]:
        found = []
        for uid in list(self._presence):
            p = self._live_presence(uid)
            if p is not None and p.status == "available" and p.ringing is None and specialty in p.specialties:
                found.append(p)
        found.sort(key=lambda p: (p.idle_since, p.user_id))
        return found

    async def count_presence(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for uid in list(self._presence):
            p = self._live_presence(uid)
            if p is not None:
                counts[p.status] += 1
        return dict(counts)

    # -- values with expiry -----------------------------------------------------------------------

    async def put(self, key: str, value: str, ttl: float) -> None:
        self._values[key] = (value, time.time() + ttl)

    async def fetch(self, key: str) -> str | None:
        found = self._values.get(key)
        if found is None:
            return None
        if found[1] <= time.time():
            del self._values[key]
            return None
        return found[0]

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    async def append(self, key: str, value: str, ttl: float) -> None:
        now = time.time()
        items, expires = self._lists.get(key, ([], now))
        if expires <= now:
            items = []
        items.append(value)
        self._lists[key] = (items, now + ttl)
        self._appends += 1
        if self._appends % 256 == 0:  # lists nobody came to take
            for k in [k for k, (_, at) in self._lists.items() if at <= now]:
                del self._lists[k]

    async def take_all(self, key: str) -> list[str]:
        items, expires = self._lists.pop(key, ([], 0.0))
        return items if expires > time.time() else []

    # -- pub/sub ----------------------------------------------------------------------------------

    async def publish(self, channel: str, data: bytes) -> None:
        message = Message(channel, data)
        for sub in self._subscribers.get(channel, ()):
            sub.put(message)

    async def subscribe(self, handler: MessageHandler, *channels: str,
                        at_once: AtOnce | None = None) -> _MemorySubscription:
        sub = _MemorySubscription(self, handler, at_once)
        await sub.add(*channels)
        return sub

    async def stats(self) -> BrokerStats:
        states = [live.state for live in self._live.values()]
        return BrokerStats(
            queued=states.count(LiveState.queued), offered=states.count(LiveState.offered),
            claimed=states.count(LiveState.claimed), presence=len(self._presence))
