"""The broker contract: live shared state (queue, offers, presence) and pub/sub between nodes.

Two backends implement it: `MemoryBroker` (one process, the embedded default) and `RedisBroker`
(several nodes). The store stays the source of truth; everything here can be rebuilt from it.
Every operation that decides who gets a consultation is atomic in the backend, so one
consultation is never given to two specialists, however many callers race.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("telehealth.broker")


class LiveState(enum.StrEnum):
    """Where a consultation stands in the broker (a subset of the stored states)."""

    queued = "queued"
    offered = "offered"
    claimed = "claimed"


@dataclass(frozen=True)
class QueueEntry:
    """A waiting consultation and everything matching needs to judge it, without patient data.

    `score` orders the queue (lower first): the time it first entered the queue minus the head start of
    its urgency class, so ordering needs no rescoring as time passes, and a request that comes back to the
    queue (declined, rung out, given back, rebuilt after a restart) keeps its place (see docs/matching.md).
    `enqueued_at` is when it entered the queue this time: the alliance-first and named-specialist
    windows and the service level count from it.
    """

    consultation_id: int
    specialty: str
    urgency: str
    score: float
    enqueued_at: float
    clinic_org_id: int
    # Hospitals whose specialists may take it at once (the clinic's alliance) and after widening
    # (every hospital with a valid agreement, alliance included).
    primary_org_ids: frozenset[int] = frozenset()
    partner_org_ids: frozenset[int] = frozenset()
    widen_at: float = 0.0
    named_specialist_id: int | None = None
    named_until: float = 0.0
    min_title_rank: int = 0
    complex_case: bool = False
    expires_at: float = 0.0
    # When it first entered the queue (0: this time, `enqueued_at`); what the specialists see as waiting since.
    first_queued_at: float = 0.0

    def __post_init__(self) -> None:
        if self.consultation_id <= 0:
            raise ValueError("consultation_id must be positive")
        if not self.specialty:
            raise ValueError("specialty must not be empty")
        if not self.partner_org_ids >= self.primary_org_ids:
            raise ValueError("partner_org_ids must include primary_org_ids")

    @property
    def waiting_since(self) -> float:
        return self.first_queued_at or self.enqueued_at


@dataclass(frozen=True)
class LiveConsultation:
    entry: QueueEntry
    state: LiveState
    ringing: frozenset[int] = frozenset()
    owner: int | None = None
    offer_deadline: float = 0.0


@dataclass(frozen=True)
class SpecialistPresence:
    user_id: int
    status: str  # available | busy | away
    specialties: tuple[str, ...]
    org_id: int
    title_rank: int
    # Seconds since the epoch when the specialist last became available (fair load: longest idle first).
    idle_since: float
    node: str = ""
    # The consultation this specialist is being rung for, if any.
    ringing: int | None = None


class ClaimOutcome(enum.StrEnum):
    won = "won"
    gone = "gone"          # no longer waiting: claimed by someone else, cancelled or expired
    not_offered = "not_offered"  # an accept from a specialist who is not being rung for it
    unknown = "unknown"    # the broker does not know this consultation


@dataclass(frozen=True)
class ReleaseOutcome:
    """What a decline or ring timeout left behind."""

    released: bool           # this specialist's ring was removed
    requeued: bool           # no ring was left, so the consultation went back to the queue
    entry: QueueEntry | None = None


@dataclass(frozen=True)
class Message:
    channel: str
    data: bytes


MessageHandler = Callable[[Message], Awaitable[None]]
# A subscriber's quick path: handles a message on the spot and says True, or says False (nothing done) for
# a message that needs its handler. It must not block or raise.
AtOnce = Callable[[Message], bool]


class OrderedDelivery:
    """Hands messages to one handler in order, on a task of its own, so a slow handler never holds up
    the publisher or other subscribers. Both backends' subscriptions build on it.

    With `at_once`, a message that arrives while nothing is waiting or being handled is offered to it
    first, on the publisher's own call: most relayed messages then reach their socket without a trip
    through the queue and a task switch, and the order is still the order of arrival.
    """

    def __init__(self, handler: MessageHandler, at_once: AtOnce | None = None) -> None:
        self._handler = handler
        self._at_once = at_once
        self._busy = False
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._deliver(), name="broker-subscription")

    def put(self, message: Message) -> None:
        if self._at_once is not None and not self._busy and self._queue.empty():
            try:
                if self._at_once(message):
                    return
            except Exception:
                log.exception("a subscriber failed on a message of %s", message.channel)
                return
        self._queue.put_nowait(message)

    async def _deliver(self) -> None:
        while True:
            message = await self._queue.get()
            if message is None:
                return
            self._busy = True
            try:
                await self._handler(message)
            except Exception:  # one failing message must not stop delivery of the next ones
                log.exception("a subscriber failed on a message of %s", message.channel)
            finally:
                self._busy = False

    async def stop_delivery(self) -> None:
        self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class Subscription(Protocol):
    async def add(self, *channels: str) -> None: ...
    async def remove(self, *channels: str) -> None: ...
    async def close(self) -> None: ...


@dataclass
class BrokerStats:
    queued: int = 0
    offered: int = 0
    claimed: int = 0
    presence: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Broker(Protocol):
    """Live state shared by all nodes. All times are float seconds since the epoch, passed in by callers."""

    node: str

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...

    async def ensure_epoch(self) -> bool:
        """Mark the live state as built; True if it was missing (new or emptied broker: rebuild from store)."""
        ...

    async def clear_epoch(self) -> None: ...

    # -- queue ------------------------------------------------------------------------------------
    async def enqueue(self, entry: QueueEntry) -> bool:
        """Add a consultation as queued. Idempotent: False (and nothing changes) if it is already live."""
        ...

    async def get(self, consultation_id: int) -> LiveConsultation | None: ...

    async def queue_head(self, specialty: str, limit: int, offset: int = 0) -> list[QueueEntry]:
        """Queued (not offered, not claimed) entries of a specialty, best first."""
        ...

    async def queue_length(self, specialty: str) -> int: ...

    async def queue_position(self, consultation_id: int) -> int | None:
        """1-based rank among the queued entries of its specialty; None unless queued."""
        ...

    async def specialties_queued(self) -> dict[str, int]:
        """Queue length per specialty, for metrics and dashboards."""
        ...

    async def remove(self, consultation_id: int) -> LiveConsultation | None:
        """Take a consultation out entirely (cancelled, expired, finished); returns what it was.

        Rings in flight for it are cleared from the specialists' presence.
        """
        ...

    async def requeue(self, consultation_id: int, entry: QueueEntry) -> bool:
        """Put a claimed consultation back into the queue (the specialist gave it back); False if not claimed."""
        ...

    # -- offers and claims ------------------------------------------------------------------------
    async def offer(self, consultation_id: int, specialist_ids: Sequence[int], deadline: float) -> list[int]:
        """Ring specialists for a queued consultation.

        Atomically: only if the consultation is queued; only specialists whose presence exists, is
        `available` and who are not already ringing. Those rung get `ringing = consultation_id`; the
        consultation becomes `offered` with that ring set and the deadline. Returns the ids rung (empty:
        nothing changed).
        """
        ...

    async def accept(self, consultation_id: int, specialist_id: int) -> ClaimOutcome:
        """An offered specialist accepts: first accept wins; every other ring for it stops."""
        ...

    async def claim(self, consultation_id: int, specialist_id: int) -> ClaimOutcome:
        """Pull: take a queued consultation directly (no ring). Also wins if offered to this specialist."""
        ...

    async def release_offer(self, consultation_id: int, specialist_id: int) -> ReleaseOutcome:
        """Decline or ring timeout of one specialist; when no ring is left the consultation is queued again."""
        ...

    async def due_offers(self, now: float, limit: int = 100) -> list[tuple[int, list[int]]]:
        """Offers whose deadline has passed: (consultation id, specialists still ringing)."""
        ...

    async def due_expiries(self, now: float, limit: int = 100) -> list[int]:
        """Queued or offered consultations whose `expires_at` has passed (SLA missed)."""
        ...

    # -- presence ---------------------------------------------------------------------------------
    async def set_presence(self, presence: SpecialistPresence, ttl: float) -> None:
        """Create or replace a specialist's presence, alive for `ttl` seconds unless refreshed.

        Keeps `ringing` if the specialist is being rung.
        """
        ...

    async def touch_presence(self, user_id: int, ttl: float) -> bool:
        """Heartbeat: extend the presence; False if it had already expired."""
        ...

    async def get_presence(self, user_id: int) -> SpecialistPresence | None: ...

    async def clear_presence(self, user_id: int) -> None: ...

    async def available_specialists(self, specialty: str) -> list[SpecialistPresence]:
        """Live, available, not ringing specialists of a specialty, longest idle first."""
        ...

    async def count_presence(self) -> dict[str, int]:
        """Number of live presences per status."""
        ...

    # -- small shared values with expiry (session liveness markers) -------------------------------
    async def put(self, key: str, value: str, ttl: float) -> None:
        """Set a value that disappears after `ttl` seconds unless set again."""
        ...

    async def fetch(self, key: str) -> str | None: ...

    async def delete(self, key: str) -> None: ...

    # -- short lists with expiry (signals kept for a participant who has not joined yet) ----------
    async def append(self, key: str, value: str, ttl: float) -> None:
        """Add `value` at the end of the list `key`; the whole list disappears `ttl` seconds after the last add."""
        ...

    async def take_all(self, key: str) -> list[str]:
        """Return the list `key` in the order it was built and remove it, in one step: two takers never
        both get an item, and an item added after the take starts a new list."""
        ...

    # -- pub/sub ----------------------------------------------------------------------------------
    async def publish(self, channel: str, data: bytes) -> None: ...

    async def subscribe(self, handler: MessageHandler, *channels: str, at_once: AtOnce | None = None) -> Subscription:
        """Deliver messages of these channels (more can be added later) to `handler`, in order per channel;
        `at_once` is offered each message first when nothing waits before it (see `OrderedDelivery`)."""
        ...

    async def stats(self) -> BrokerStats: ...
