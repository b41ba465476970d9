"""The matcher: turns requests, presence changes, accepts, declines and timers into offers and claims.

The store is written first for every state change; the broker decides races. Notifications go out as
JSON on broker channels (`user:<id>`, `queue:<specialty>`), which the signaling hub forwards to the
WebSocket connections on whichever node holds them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import statistics
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from telehealth.config import MatchingSettings
from telehealth.domain import ConsultationState, DeclineReason, Presence, Role, Urgency
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.events import (
    EventPublisher,
    queue_channel,
    user_channel,
)
from telehealth.matching.broker import (
    Broker,
    ClaimOutcome,
    LiveConsultation,
    LiveState,
    QueueEntry,
    SpecialistPresence,
)
from telehealth.matching.rules import build_entry, eligible, pick_entry, rank_specialists
from telehealth.matching.store import MatchingStore
from telehealth.records.models import Consultation, NewConsultation, User

log = logging.getLogger("telehealth.matching")

S = ConsultationState
PICK_WINDOW = 200
CLAIM_RETRIES = 8
# A value in the broker that changes whenever a clinic's agreements change (one ended, or came into effect).
# Every node reads it before trusting the partner hospitals it holds, so no node's copy outlives an ended
# agreement; its time to live only bounds what the broker keeps (a missing value is a change too).
AGREEMENTS_EPOCH_KEY = "agreements:epoch"
AGREEMENTS_EPOCH_TTL_S = 7 * 86400.0
# A clinic's partner hospitals are held at most this long, and never past the next start or end of one of its
# agreements' validity periods (so an agreement that expires stops routing at that instant).
PARTNERS_TTL_S = 30.0


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


@dataclass(frozen=True)
class QueueStatus:
    consultation_id: int
    state: str
    position: int | None
    estimated_wait_s: float | None


class Matcher:
    """One per node. Every public method is safe to call concurrently and from any node."""

    def __init__(self, store: MatchingStore, broker: Broker, settings: MatchingSettings,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.broker = broker
        self.settings = settings
        self.clock = clock
        self.events = EventPublisher(broker.publish)
        self._service_interval: dict[str, tuple[float, float | None]] = {}
        # clinic -> (held until, the agreements epoch read before the lookup, alliance hospitals, all partners)
        self._partners: dict[int, tuple[float, str | None, frozenset[int], frozenset[int]]] = {}
        self._names: dict[int, tuple[float, str, str]] = {}
        self.offer_latency_observer: Callable[[float], None] | None = None
        self.claim_latency_observer: Callable[[float], None] | None = None
        # When the live queue was last rebuilt from the store (0: never on this node).
        self.rebuilt_at = 0.0
        # Local days are those of the alliance's time zone (set by the app; UTC otherwise).
        self.tz: dt.tzinfo = dt.UTC
        self._online_noted: dict[int, dt.date] = {}

    # -- helpers --------------------------------------------------------------------------------

    async def _emit(self, channel: str, event: str, data: dict[str, Any]) -> None:
        await self.events.publish(channel, event, data)

    async def _agreements_epoch(self) -> str | None:
        return await self.broker.fetch(AGREEMENTS_EPOCH_KEY)

    async def _partner_orgs(self, clinic_org_id: int, now: float,
                            epoch: str | None) -> tuple[frozenset[int], frozenset[int]]:
        """(the clinic's alliance hospitals, every hospital it may consult now). `epoch` is read before the
        lookup, so a change committed during it makes the next call look again."""
        cached = self._partners.get(clinic_org_id)
        if cached and cached[0] > now and cached[1] == epoch:
            return cached[2], cached[3]
        primary, partners = await self.store.get_partner_hospitals(clinic_org_id, _utc(now))
        change = await self.store.get_next_agreement_change(clinic_org_id, _utc(now))
        until = now + PARTNERS_TTL_S if change is None else min(now + PARTNERS_TTL_S, change.timestamp())
        result = (frozenset(primary), frozenset(partners) | frozenset(primary))
        self._partners[clinic_org_id] = (until, epoch, *result)
        return result

    async def _current(self, entries: Sequence[QueueEntry], now: float) -> list[QueueEntry]:
        """The entries with their clinics' partner hospitals as they are now. The broker keeps those a request
        was queued with; an agreement ended or expired since must not let it be rung or taken there."""
        if not entries:
            return []
        epoch = await self._agreements_epoch()
        current = []
        for entry in entries:
            primary, partners = await self._partner_orgs(entry.clinic_org_id, now, epoch)
            if primary != entry.primary_org_ids or partners != entry.partner_org_ids:
                entry = dataclasses.replace(entry, primary_org_ids=primary, partner_org_ids=partners)
            current.append(entry)
        return current

    async def entry_for(self, consultation: Consultation, enqueued_at: float) -> QueueEntry:
        primary, partners = await self._partner_orgs(consultation.clinic_org_id, self.clock(),
                                                     await self._agreements_epoch())
        return build_entry(consultation, enqueued_at=enqueued_at, primary_org_ids=primary,
                           partner_org_ids=partners, settings=self.settings)

    async def agreements_changed(self, clinic_org_id: int) -> int:
        """A clinic's agreements changed (one ended, or came into effect): from now on no node uses the partner
        hospitals it held; rings open at a hospital the clinic may no longer consult are withdrawn (the request
        goes on to whoever may take it), and its queued requests are offered to whoever may take them now.
        Returns the number of rings withdrawn."""
        self._partners.pop(clinic_org_id, None)
        try:
            await self.broker.put(AGREEMENTS_EPOCH_KEY, uuid.uuid4().hex, AGREEMENTS_EPOCH_TTL_S)
        except Exception:
            # The broker is unreachable, and matching with it: other nodes look again within PARTNERS_TTL_S.
            log.warning("the agreements epoch was not changed: the broker did not take it", exc_info=True)
            return 0
        withdrawn = 0
        for consultation in await self.store.list_consultations(states=[S.queued, S.offered], limit=1000):
            if consultation.clinic_org_id != clinic_org_id:
                continue
            live = await self.broker.get(consultation.id)
            if live is None:
                continue
            [entry] = await self._current([live.entry], self.clock())
            if live.state is LiveState.queued:
                await self.dispatch(entry, consultation)
                continue
            for uid in live.ringing:
                user = await self.store.get_user(uid)
                if user is not None and user.organisation_id in entry.partner_org_ids:
                    continue
                try:
                    await self._release_ring(consultation.id, uid, kind="ring_withdrawn",
                                             data={"reason": "agreement_ended"}, actor_id=None)
                    withdrawn += 1
                except TelehealthError:
                    continue  # answered or timed out meanwhile
        return withdrawn

    @staticmethod
    def presence_for(user: User, status: Presence, idle_since: float, node: str) -> SpecialistPresence:
        return SpecialistPresence(
            user_id=user.id, status=status.value, specialties=user.specialties, org_id=user.organisation_id or 0,
            title_rank=user.title.rank if user.title else 0, idle_since=idle_since, node=node)

    # -- clinic side ----------------------------------------------------------------------------

    async def submit(self, request: NewConsultation, doctor: User) -> Consultation:
        """Record a clinic's request and queue it if consent is recorded (it cannot be queued before)."""
        if doctor.role is not Role.clinic_doctor or doctor.organisation_id is None:
            raise TelehealthError(ErrorCode.forbidden, "only a clinic doctor of an institution can ask for a "
                                                       "consultation")
        if request.requested_specialist_id is not None:
            named = await self.store.get_user(request.requested_specialist_id)
            if named is None or named.role is not Role.specialist or not named.active:
                raise TelehealthError(ErrorCode.invalid_input,
                                      "`requested_specialist_id` does not name an active specialist")
        now = self.clock()
        consent = bool(request.consent_by)
        consultation = await self.store.insert_consultation(request, clinic_org_id=doctor.organisation_id,
                                                            doctor_id=doctor.id, now=_utc(now), queue=consent)
        if consent:
            consultation = await self.queue_live(consultation)
        return consultation

    async def enqueue(self, consultation: Consultation, *, actor_id: int | None) -> Consultation:
        """requested/expired -> queued, then into the broker and out to the best idle specialist."""
        if not consultation.consent_by:
            raise TelehealthError(ErrorCode.consent_required,
                                  "record the patient's written consent before the request is queued")
        consultation = await self.store.transition_consultation(
            consultation.id, S.queued, actor_id=actor_id, now=_utc(self.clock()),
            expected=[S.requested, S.expired])
        return await self.queue_live(consultation)

    async def queue_live(self, consultation: Consultation) -> Consultation:
        """A queued consultation (committed in the store) into the broker and out to the best idle specialist."""
        now = self.clock()
        entry = await self.entry_for(consultation, now)
        await self.broker.enqueue(entry)
        # Ring first: the dashboards' queue views can hear of it a moment later.
        await self.dispatch(entry, consultation)
        await self._emit(queue_channel(entry.specialty), "queue_changed", {"specialty": entry.specialty})
        return consultation

    async def cancel(self, consultation_id: int, actor: User) -> Consultation:
        consultation = await self._get(consultation_id)
        if actor.role is Role.clinic_doctor and consultation.clinic_org_id != actor.organisation_id:
            raise TelehealthError(ErrorCode.forbidden, "this consultation belongs to another institution")
        live = await self.broker.remove(consultation_id)
        try:
            consultation = await self.store.transition_consultation(
                consultation_id, S.cancelled, actor_id=actor.id, now=_utc(self.clock()),
                expected=[S.requested, S.queued, S.offered, S.expired, S.accepted])
        except TelehealthError:
            if live is not None and live.state is not LiveState.claimed:
                await self.broker.enqueue(live.entry)  # the store refused: keep it waiting as it was
            raise
        if live is not None:
            for uid in live.ringing:
                await self._emit(user_channel(uid), "offer_withdrawn",
                                 {"consultation_id": consultation_id, "reason": "cancelled"})
            await self._emit(queue_channel(live.entry.specialty), "queue_changed",
                             {"specialty": live.entry.specialty})
        if consultation.assigned_specialist_id:
            await self._emit(user_channel(consultation.assigned_specialist_id), "consultation_state",
                             {"consultation_id": consultation_id, "state": S.cancelled.value})
        return consultation

    async def status(self, consultation: Consultation) -> QueueStatus:
        position = await self.broker.queue_position(consultation.id) if consultation.state.is_waiting else None
        estimate = None
        if position is not None:
            interval = await self._accept_interval(consultation.specialty)
            estimate = round(position * interval, 1) if interval is not None else None
        return QueueStatus(consultation.id, consultation.state.value, position, estimate)

    async def _accept_interval(self, specialty: str) -> float | None:
        """Seconds between accepts in a specialty lately: position × this estimates the wait."""
        now = self.clock()
        cached = self._service_interval.get(specialty)
        if cached and cached[0] > now:
            return cached[1]
        waits = await self.store.get_recent_service_times(specialty, limit=30)
        value = statistics.median(waits) if waits else None
        self._service_interval[specialty] = (now + 10.0, value)
        return value

    # -- specialist side ------------------------------------------------------------------------

    async def set_presence(self, user: User, status: Presence, node: str) -> SpecialistPresence:
        if user.role is not Role.specialist:
            raise TelehealthError(ErrorCode.forbidden, "only specialists have a presence")
        now = self.clock()
        previous = await self.broker.get_presence(user.id)
        idle_since = previous.idle_since if previous and previous.status == status.value else now
        presence = self.presence_for(user, status, idle_since, node)
        await self.broker.set_presence(presence, self.settings.presence_ttl_s)
        if status is not Presence.away:
            await self.note_online(user.id)
        if status is Presence.available:
            await self.offer_to_specialist(presence)
        return presence

    async def withdraw_specialist(self, user_id: int) -> int:
        """A specialist whose access ended: out of presence at once, and every ring still open to them
        released (the request goes on to others). Returns how many rings were released."""
        await self.broker.clear_presence(user_id)
        released = 0
        for consultation in await self.store.list_consultations(states=[S.offered], limit=1000):
            live = await self.broker.get(consultation.id)
            if live is None or user_id not in live.ringing:
                continue
            try:
                await self._release_ring(consultation.id, user_id, kind="ring_withdrawn",
                                         data={"reason": "access_ended"}, actor_id=None)
                released += 1
            except TelehealthError:
                continue  # answered or timed out meanwhile
        return released

    async def note_online(self, user_id: int, *, check_presence: bool = False) -> None:
        """Note (once per local day and node) that a specialist is online for consultations: the senior
        coverage statistics count these days. With `check_presence`, only if their presence says so."""
        now = self.clock()
        day = dt.datetime.fromtimestamp(now, self.tz).date()
        if self._online_noted.get(user_id) == day:
            return
        if check_presence:
            presence = await self.broker.get_presence(user_id)
            if presence is None or presence.status == Presence.away.value:
                return
        try:
            await self.store.record_presence_day(user_id, day, _utc(now))
        except TelehealthError:
            return  # the store is unreachable: the next heartbeat tries again
        self._online_noted[user_id] = day

    async def offer_to_specialist(self, presence: SpecialistPresence) -> int | None:
        """A specialist became free: ring them for the best request they may take, if any."""
        now = self.clock()
        for _ in range(CLAIM_RETRIES):
            best: QueueEntry | None = None
            for specialty in presence.specialties:
                head = await self._current(await self.broker.queue_head(specialty, PICK_WINDOW), now)
                candidate = pick_entry(head, presence, now)
                if candidate and (best is None or (candidate.score, candidate.consultation_id)
                                  < (best.score, best.consultation_id)):
                    best = candidate
            if best is None:
                return None
            if await self._ring(best, [presence.user_id], now):
                return best.consultation_id
            current = await self.broker.get_presence(presence.user_id)
            if current is None or current.status != Presence.available.value or current.ringing is not None:
                return None
        return None

    async def dispatch(self, entry: QueueEntry, consultation: Consultation | None = None) -> list[int]:
        """Ring the best idle eligible specialist for a queued request (all of them for an emergency)."""
        now = self.clock()
        [entry] = await self._current([entry], now)
        for _ in range(CLAIM_RETRIES):
            candidates = await self.broker.available_specialists(entry.specialty)
            ranked = rank_specialists(entry, candidates, now)
            if not ranked:
                return []
            targets = [p.user_id for p in ranked] if entry.urgency == Urgency.emergency.value else [ranked[0].user_id]
            rung = await self._ring(entry, targets, now, consultation)
            if rung:
                return rung
            live = await self.broker.get(entry.consultation_id)
            if live is None or live.state is not LiveState.queued:
                return []
        return []

    async def _ring(self, entry: QueueEntry, specialist_ids: list[int], now: float,
                    consultation: Consultation | None = None) -> list[int]:
        """Ring through the broker, tell the specialists, then log the offer in the store.

        An offer in flight is live state, held by the broker; the specialists hear of it before the
        store's log does, which keeps the ring fast. If the store then refuses (the request was
        cancelled meanwhile) the rings are taken back and the specialists told.
        """
        deadline = now + self.settings.ring_timeout_s
        rung = await self.broker.offer(entry.consultation_id, specialist_ids, deadline)
        if not rung:
            return []
        summary = await self._offer_summary(entry, deadline, consultation)
        for uid in rung:
            await self._emit(user_channel(uid), "offer", summary)
        if self.offer_latency_observer is not None:
            self.offer_latency_observer(self.clock() - entry.enqueued_at)
        try:
            await self.store.transition_consultation(
                entry.consultation_id, S.offered, actor_id=None, now=_utc(now), expected=[S.queued],
                event_kind="offered", event_data={"specialists": rung})
        except TelehealthError as exc:
            current = await self.store.get_consultation(entry.consultation_id)
            if current is not None and current.state in (S.accepted, S.in_call):
                # A rung specialist accepted before the ring was logged: the offer did its job.
                await self.store.insert_event(entry.consultation_id, "offered", actor_id=None, now=_utc(now),
                                              data={"specialists": rung, "logged_after_accept": True})
                return rung
            log.info("offer of %s dropped: %s", entry.consultation_id, exc.code)
            for uid in rung:
                await self.broker.release_offer(entry.consultation_id, uid)
                await self._emit(user_channel(uid), "offer_withdrawn",
                                 {"consultation_id": entry.consultation_id, "reason": "cancelled"})
            await self.broker.remove(entry.consultation_id)
            return []
        await self._emit(queue_channel(entry.specialty), "queue_changed", {"specialty": entry.specialty})
        return rung

    async def _org_names(self, org_id: int) -> tuple[str, str]:
        """An organisation's names, cached briefly: every offer shows them and they rarely change."""
        now = self.clock()
        cached = self._names.get(org_id)
        if cached and cached[0] > now:
            return cached[1], cached[2]
        org = await self.store.get_organisation(org_id)
        names = (org.name, org.name_zh) if org else ("", "")
        self._names[org_id] = (now + 60.0, *names)
        return names

    async def _offer_summary(self, entry: QueueEntry, deadline: float,
                             consultation: Consultation | None) -> dict[str, Any]:
        name, name_zh = await self._org_names(entry.clinic_org_id)
        if consultation is None:
            consultation = await self.store.get_consultation(entry.consultation_id)
        return {
            "consultation_id": entry.consultation_id, "specialty": entry.specialty, "urgency": entry.urgency,
            "complex_case": entry.complex_case, "clinic": name, "clinic_zh": name_zh,
            "chief_complaint": consultation.chief_complaint if consultation else "",
            "waiting_since": entry.waiting_since,
            "deadline": deadline, "ring_timeout_s": self.settings.ring_timeout_s,
        }

    async def accept(self, consultation_id: int, specialist: User) -> Consultation:
        # Read the rings first: the winning accept clears them, and the others must be told.
        before = await self.broker.get(consultation_id)
        if before is not None:
            # A ring that sounded before the clinic's agreement with this hospital ended or expired is not
            # answered: the request goes on to whoever may take it.
            [entry] = await self._current([before.entry], self.clock())
            if specialist.organisation_id not in entry.partner_org_ids:
                try:
                    await self._release_ring(consultation_id, specialist.id, kind="ring_withdrawn",
                                             data={"reason": "agreement_ended"}, actor_id=None)
                except TelehealthError:
                    pass  # no longer ringing them
                raise TelehealthError(ErrorCode.not_eligible, "your hospital's agreement with this clinic is no "
                                                              "longer in effect")
        outcome = await self.broker.accept(consultation_id, specialist.id)
        if outcome is not ClaimOutcome.won:
            raise self._claim_error(outcome)
        return await self._record_claim(consultation_id, specialist, via="accept", before=before)

    async def take(self, consultation_id: int, specialist: User) -> Consultation:
        """Pull one particular request from the queue."""
        live = await self.broker.get(consultation_id)
        if live is None:
            raise TelehealthError(ErrorCode.offer_gone, "this request is no longer waiting")
        presence = self.presence_for(specialist, Presence.available, 0.0, "")
        [entry] = await self._current([live.entry], self.clock())
        if not eligible(entry, presence, self.clock()):
            raise TelehealthError(ErrorCode.not_eligible, "you may not take this request (specialty, alliance, "
                                                          "title or a named colleague)")
        outcome = await self.broker.claim(consultation_id, specialist.id)
        if outcome is not ClaimOutcome.won:
            raise self._claim_error(outcome)
        return await self._record_claim(consultation_id, specialist, via="take", before=live)

    async def take_next(self, specialist: User) -> Consultation | None:
        """Pull the best request this specialist may take; None if there is none."""
        presence = self.presence_for(specialist, Presence.available, 0.0, "")
        tried: set[int] = set()
        # Each round either wins or rules one request out, so this ends; losing a race to another
        # specialist just moves on to the next best request.
        for _ in range(PICK_WINDOW):
            now = self.clock()
            best: QueueEntry | None = None
            for specialty in specialist.specialties:
                head = await self._current(await self.broker.queue_head(specialty, PICK_WINDOW), now)
                candidate = pick_entry(head, presence, now, exclude=tried)
                if candidate and (best is None or (candidate.score, candidate.consultation_id)
                                  < (best.score, best.consultation_id)):
                    best = candidate
            if best is None:
                return None
            before = await self.broker.get(best.consultation_id)
            outcome = await self.broker.claim(best.consultation_id, specialist.id)
            if outcome is ClaimOutcome.won:
                return await self._record_claim(best.consultation_id, specialist, via="take_next", before=before)
            tried.add(best.consultation_id)
        return None

    def _claim_error(self, outcome: ClaimOutcome) -> TelehealthError:
        if outcome is ClaimOutcome.not_offered:
            return TelehealthError(ErrorCode.not_eligible, "this request is not being offered to you")
        return TelehealthError(ErrorCode.already_claimed, "another specialist has already taken this request, "
                                                          "or it was cancelled")

    async def _record_claim(self, consultation_id: int, specialist: User, via: str,
                            before: LiveConsultation | None) -> Consultation:
        started = time.perf_counter()
        try:
            return await self._write_claim(consultation_id, specialist, via, before)
        finally:
            if self.claim_latency_observer is not None:
                self.claim_latency_observer(time.perf_counter() - started)

    async def _write_claim(self, consultation_id: int, specialist: User, via: str,
                           before: LiveConsultation | None) -> Consultation:
        now = self.clock()
        live = before
        try:
            consultation = await self.store.transition_consultation(
                consultation_id, S.accepted, actor_id=specialist.id, now=_utc(now),
                expected=[S.queued, S.offered], assigned_specialist_id=specialist.id,
                event_kind="accepted", event_data={"via": via})
        except TelehealthError:
            # The broker said yes but the store says no (cancelled meanwhile): the store wins.
            await self.broker.remove(consultation_id)
            raise
        await self.broker.remove(consultation_id)
        presence = self.presence_for(specialist, Presence.busy, now, "")
        await self.broker.set_presence(presence, self.settings.presence_ttl_s)
        if live is not None:
            for uid in live.ringing - {specialist.id}:
                await self._emit(user_channel(uid), "offer_withdrawn",
                                 {"consultation_id": consultation_id, "reason": "accepted_by_other"})
            await self._emit(queue_channel(live.entry.specialty), "queue_changed",
                             {"specialty": live.entry.specialty})
        await self._emit(user_channel(consultation.requesting_doctor_id), "consultation_state", {
            "consultation_id": consultation_id, "state": S.accepted.value,
            "specialist": {"id": specialist.id, "name": specialist.display_name,
                           "title": specialist.title.value if specialist.title else None}})
        return consultation

    async def decline(self, consultation_id: int, specialist: User, reason: DeclineReason,
                      text: str = "") -> None:
        await self._release_ring(consultation_id, specialist.id, kind="declined",
                                 data={"reason": reason.value, **({"text": text[:500]} if text else {})},
                                 actor_id=specialist.id)

    async def give_back(self, consultation_id: int, specialist: User) -> Consultation:
        """An accepted request goes back to the queue (before the call starts)."""
        consultation = await self.store.transition_consultation(
            consultation_id, S.queued, actor_id=specialist.id, now=_utc(self.clock()), expected=[S.accepted],
            assigned_specialist_id=None, event_kind="given_back")
        return await self.queue_live(consultation)

    async def _release_ring(self, consultation_id: int, specialist_id: int, *, kind: str,
                            data: dict[str, Any], actor_id: int | None) -> None:
        outcome = await self.broker.release_offer(consultation_id, specialist_id)
        if not outcome.released:
            raise TelehealthError(ErrorCode.offer_gone, "this offer is no longer open")
        now = self.clock()
        await self.store.insert_event(consultation_id, kind, actor_id=actor_id, now=_utc(now),
                                      data={"specialist": specialist_id, **data})
        await self._emit(user_channel(specialist_id), "offer_withdrawn",
                         {"consultation_id": consultation_id, "reason": kind})
        if outcome.requeued and outcome.entry is not None:
            try:
                await self.store.transition_consultation(consultation_id, S.queued, actor_id=None, now=_utc(now),
                                                         expected=[S.offered], event_kind="requeued")
            except TelehealthError:
                await self.broker.remove(consultation_id)
                return
            await self._emit(queue_channel(outcome.entry.specialty), "queue_changed",
                             {"specialty": outcome.entry.specialty})
            refusals = await self._refusals(consultation_id)
            if not await self._dispatch_excluding(outcome.entry, set(refusals)):
                await self._tell_clinic_nobody_took_it(consultation_id, refusals)

    async def _refusals(self, consultation_id: int) -> dict[int, str]:
        """Who declined or let it ring out so far, with the reason."""
        events = await self.store.list_events(consultation_id)
        return {int(e.data["specialist"]): str(e.data.get("reason", "ring_timeout")) for e in events
                if e.kind in ("declined", "ring_timeout") and "specialist" in e.data}

    async def _tell_clinic_nobody_took_it(self, consultation_id: int, refusals: dict[int, str]) -> None:
        """Every specialist free now has refused: the clinic hears why, and that the request still waits."""
        consultation = await self.store.get_consultation(consultation_id)
        if consultation is None:
            return
        reasons = sorted(set(refusals.values()))
        await self._emit(user_channel(consultation.requesting_doctor_id), "consultation_state", {
            "consultation_id": consultation_id, "state": consultation.state.value, "refusals": reasons,
            "reason": "every specialist available now has declined (" + ", ".join(reasons) + "); the request "
                      "stays in the queue for the next one, or you can cancel it"})

    async def _dispatch_excluding(self, entry: QueueEntry, exclude: Iterable[int]) -> list[int]:
        now = self.clock()
        [entry] = await self._current([entry], now)
        candidates = await self.broker.available_specialists(entry.specialty)
        ranked = rank_specialists(entry, candidates, now, exclude=exclude)
        if not ranked:
            return []
        targets = [p.user_id for p in ranked] if entry.urgency == Urgency.emergency.value else [ranked[0].user_id]
        return await self._ring(entry, targets, now)

    # -- timers ---------------------------------------------------------------------------------

    async def sweep(self) -> None:
        """Ring timeouts and missed service levels; any node may run it, each item is handled once."""
        now = self.clock()
        for consultation_id, specialists in await self.broker.due_offers(now):
            for uid in specialists:
                try:
                    await self._release_ring(consultation_id, uid, kind="ring_timeout", data={}, actor_id=None)
                except TelehealthError:
                    continue  # another node got there first
                # No answer to a ring: the specialist is probably away from the desk.
                presence = await self.broker.get_presence(uid)
                if presence is not None and presence.status == Presence.available.value:
                    await self.broker.set_presence(
                        SpecialistPresence(presence.user_id, Presence.away.value, presence.specialties,
                                           presence.org_id, presence.title_rank, now, presence.node),
                        self.settings.presence_ttl_s)
                    await self._emit(user_channel(uid), "presence", {"status": Presence.away.value,
                                                                     "reason": "ring_timeout"})
        for consultation_id in await self.broker.due_expiries(now):
            await self.expire(consultation_id)

    async def expire(self, consultation_id: int) -> None:
        live = await self.broker.remove(consultation_id)
        if live is None:
            return
        try:
            consultation = await self.store.transition_consultation(
                consultation_id, S.expired, actor_id=None, now=_utc(self.clock()), expected=[S.queued, S.offered],
                event_kind="expired", event_data={"reason": "sla"})
        except TelehealthError:
            return
        for uid in live.ringing:
            await self._emit(user_channel(uid), "offer_withdrawn",
                             {"consultation_id": consultation_id, "reason": "expired"})
        await self._emit(queue_channel(live.entry.specialty), "queue_changed", {"specialty": live.entry.specialty})
        await self._emit(user_channel(consultation.requesting_doctor_id), "consultation_state", {
            "consultation_id": consultation_id, "state": S.expired.value,
            "reason": "no specialist answered within the service level for this urgency; you can queue it again"})

    async def rebuild(self) -> int:
        """Put every waiting consultation of the store back into an empty broker. Idempotent."""
        waiting = await self.store.list_consultations(states=[S.queued, S.offered], limit=1_000_000)
        count = 0
        for consultation in reversed(waiting):
            # Read before the ring is undone, which stamps a new queue time: the windows and the service
            # level go on from this entry, and the place is by the first queue time (never reset).
            queued_at = consultation.queued_at or consultation.created_at
            if consultation.state is S.offered:
                try:
                    consultation = await self.store.transition_consultation(
                        consultation.id, S.queued, actor_id=None, now=_utc(self.clock()), expected=[S.offered],
                        event_kind="requeued", event_data={"reason": "broker_rebuild"})
                except TelehealthError:
                    continue
            entry = await self.entry_for(consultation, queued_at.timestamp())
            if await self.broker.enqueue(entry):
                count += 1
        self.rebuilt_at = self.clock()
        return count

    async def run_background(self, stop: asyncio.Event) -> None:
        """The sweeper, and a rebuild whenever the broker comes back empty."""
        interval = self.settings.sweep_interval_s
        while not stop.is_set():
            try:
                if await self.broker.ensure_epoch():
                    rebuilt = await self.rebuild()
                    log.info("live queue rebuilt from the store: %d waiting consultations", rebuilt)
                await self.sweep()
            except Exception:
                log.warning("matching sweep failed; retrying", exc_info=True)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass

    async def _get(self, consultation_id: int) -> Consultation:
        consultation = await self.store.get_consultation(consultation_id)
        if consultation is None:
            raise TelehealthError(ErrorCode.not_found, "consultation {id} does not exist", id=consultation_id)
        return consultation
