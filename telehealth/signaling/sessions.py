"""Call sessions: opening, joining, relaying signaling between the two participants, reconnection, ending.

Liveness of each participant is a broker value with expiry (`sj:<session>:<user>`), refreshed by the
node that holds the participant's connection. A dropped connection leaves the value to expire after
the reconnect grace period; any node that finds it gone ends the session with reason `network`.

A participant that has not joined yet (its page is still opening) is `pending`: what the other side sends
it meanwhile is kept in a broker list (`sk:<session>:<user>`) and handed over with its join, so neither
side waits for the other before offering.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from telehealth.config import Settings
from telehealth.domain import ConsultationState, EndReason, Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.events import encode_event, user_channel
from telehealth.matching.broker import Broker
from telehealth.matching.service import Matcher
from telehealth.records.models import CallSession, Consultation, User
from telehealth.records.store import Store
from telehealth.signaling.connection import Connection
from telehealth.signaling.hub import Hub
from telehealth.signaling.ice import call_participant, ice_servers

log = logging.getLogger("telehealth.sessions")

S = ConsultationState
SIGNAL_KINDS = ("offer", "answer", "candidate", "restart_request", "quality_notice")
QUALITY_LEVELS = ("high", "medium", "low", "audio_only")
LOG_BATCH_S = 0.1
ICE_STATES = ("new", "checking", "connected", "completed", "disconnected", "failed", "closed")


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def marker_key(session_id: int, user_id: int) -> str:
    return f"sj:{session_id}:{user_id}"


def kept_key(session_id: int, user_id: int) -> str:
    """Signals sent to a participant before it first joined the session, handed over with its join."""
    return f"sk:{session_id}:{user_id}"


def role_of(session: CallSession, user_id: int) -> str:
    # The clinic offers: it is the side on the weak line, and a browser uses the candidates it gathered in
    # advance (a TURN allocation) only for an offer, not for an answer.
    return "offerer" if user_id == session.clinic_user_id else "answerer"


async def keep_for_pending(broker: Broker, session_id: int, peer: int, event: dict[str, Any],
                           ttl: float) -> bool:
    """Keep a signal for a participant that has not joined yet; False if it is to be sent now.

    The join sets the marker live and then takes the kept list. Keeping, then looking at the marker
    again, leaves no gap between the two: a signal is either in the list the join takes, or sent
    because the marker was already live (possibly both: clients drop the second by its `id`).
    """
    key = marker_key(session_id, peer)
    if await broker.fetch(key) != "pending":
        return False
    await broker.append(kept_key(session_id, peer), json.dumps(event), ttl)
    return await broker.fetch(key) == "pending"


class SessionManager:
    def __init__(self, store: Store, broker: Broker, hub: Hub, matcher: Matcher, settings: Settings,
                 node: str, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.broker = broker
        self.hub = hub
        self.matcher = matcher
        self.settings = settings
        self.node = node
        self.clock = clock
        self.started_at = clock()
        self.draining = False
        self._cache: dict[int, CallSession] = {}
        # Participants of each session known to have joined once: signals to them are no longer kept.
        self._joined_once: dict[int, set[int]] = {}
        self.relayed = 0
        # Signal ids, unique across nodes and restarts (a random prefix) without a system call per signal.
        self._signal_prefix = secrets.token_hex(4)
        self._signal_ids = itertools.count(1)
        # Call telemetry (joins, SDP, ICE states, quality) is written in small batches off the call's
        # critical path; state changes are written at once.
        self._log_buffer: list[dict[str, Any]] = []
        self._log_flusher: asyncio.Task[None] | None = None
        hub.event_hooks.append(self._on_event)

    @property
    def grace(self) -> float:
        return self.settings.signaling.reconnect_grace_s

    def _log(self, consultation_id: int, kind: str, actor_id: int | None, session_id: int,
             data: dict[str, Any]) -> None:
        self._log_buffer.append({"consultation_id": consultation_id, "kind": kind, "actor_id": actor_id,
                                 "at": _utc(self.clock()), "session_id": session_id, "data": data})
        if self._log_flusher is None:
            self._log_flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        try:
            await asyncio.sleep(LOG_BATCH_S)
            await self.flush_log()
        finally:
            self._log_flusher = None
        if self._log_buffer:
            self._log_flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def flush_log(self) -> None:
        """Write buffered telemetry; on failure keep it for the next attempt (nothing is dropped)."""
        batch, self._log_buffer = self._log_buffer, []
        if not batch:
            return
        try:
            await self.store.insert_events(batch)
        except Exception:
            log.warning("could not write %d session log events; will retry", len(batch), exc_info=True)
            self._log_buffer[:0] = batch
            await asyncio.sleep(LOG_BATCH_S)

    async def _emit(self, user_id: int, event: str, data: dict[str, Any]) -> None:
        await self.broker.publish(user_channel(user_id), encode_event(event, data))

    async def _on_event(self, conn: Connection, name: str, data: dict[str, Any]) -> None:
        if name == "handed_over":
            conn.leave_session(int(data.get("session_id", 0)))
        elif name == "session_ended":
            sid = int(data.get("session_id", 0))
            self._cache.pop(sid, None)
            self._joined_once.pop(sid, None)
            conn.leave_session(sid)

    # -- opening and joining --------------------------------------------------------------------

    async def open_for(self, consultation: Consultation, actor: User) -> CallSession:
        """Start a call for an accepted consultation and tell both participants."""
        specialist_id = consultation.assigned_specialist_id
        if specialist_id is None:
            raise TelehealthError(ErrorCode.invalid_transition, "nobody has accepted this consultation yet")
        now = self.clock()
        existing = await self.store.get_open_call_session(consultation.id)
        if existing is not None:
            return existing
        consultation, session = await self.store.open_call_session(
            consultation.id, consultation.accompanying_doctor_id, specialist_id, actor_id=actor.id, now=_utc(now),
            expected=[S.accepted, S.ended])
        self._cache[session.id] = session
        for uid in session.participants():
            await self.broker.put(marker_key(session.id, uid), "pending", self.grace)
        for uid in session.participants():
            # With the ICE servers, a page can make its peer connection (and start gathering) while its join
            # is still on the way: on a slow line that is one round trip less before media flows.
            await self._emit(uid, "session_ready", {
                "consultation_id": consultation.id, "session_id": session.id,
                "role": role_of(session, uid),
                "ice_servers": ice_servers(self.settings.ice, uid, now)})
        return session

    async def ice_for(self, user: User, consultation_id: int) -> list[dict[str, Any]]:
        """Fresh ICE servers, TURN included, for a participant of the consultation's call to come or in progress
        (a call longer than its expected length renews its credentials so); refused to anyone else."""
        consultation = await self.store.get_consultation(consultation_id)
        if consultation is None:
            raise TelehealthError(ErrorCode.not_found, "consultation {id} does not exist", id=consultation_id)
        call_participant(consultation, user.id)
        return ice_servers(self.settings.ice, user.id, self.clock())

    async def get_session(self, session_id: int) -> CallSession:
        session = self._cache.get(session_id)
        if session is None:
            session = await self.store.get_call_session(session_id)
            if session is None:
                raise TelehealthError(ErrorCode.not_found, "session {id} does not exist", id=session_id)
            if session.ended_at is None:
                self._cache[session_id] = session
        return session

    async def _session_for(self, user: User, session_id: int) -> CallSession:
        session = await self.get_session(session_id)
        if user.id not in session.participants():
            raise TelehealthError(ErrorCode.forbidden, "you are not a participant of this session")
        if session.ended_at is not None:
            raise TelehealthError(ErrorCode.session_ended, "this session has ended")
        return session

    async def join(self, conn: Connection, consultation_id: int, *, fresh: bool = True,
                   take_over: bool = False) -> dict[str, Any]:
        """A participant's tab enters the call (first time, after a reload, or after a reconnect).

        Another doctor of the clinic who joins with `take_over` takes the colleague's place beside the
        patient: the hand-over is recorded and the colleague's tab leaves the call.
        """
        user = conn.user
        consultation = await self.store.get_consultation(consultation_id)
        if consultation is None:
            raise TelehealthError(ErrorCode.not_found, "consultation {id} does not exist", id=consultation_id)
        is_clinic = user.role is Role.clinic_doctor and user.organisation_id == consultation.clinic_org_id
        is_specialist = user.id == consultation.assigned_specialist_id
        if not (is_clinic or is_specialist):
            raise TelehealthError(ErrorCode.forbidden, "you are not a participant of this consultation")
        if self.draining:
            raise TelehealthError(ErrorCode.unavailable, "this server is shutting down; reconnect to join")
        session = await self.store.get_open_call_session(consultation_id)
        if session is None:
            if consultation.state not in (S.accepted, S.ended):
                raise TelehealthError(ErrorCode.invalid_transition,
                                      "there is no call to join: the consultation is {state}",
                                      state=consultation.state)
            session = await self.open_for(consultation, user)
        if is_clinic and user.id != session.clinic_user_id:
            if not take_over:
                raise TelehealthError(ErrorCode.colleague_in_call,
                                      "a colleague of your clinic is with the patient in this call; "
                                      "join with take_over to take their place")
            session = await self._hand_over(session, user)
        now = self.clock()
        previous = await self.broker.fetch(marker_key(session.id, user.id))
        # Back after a drop, or after the node holding their connection died without a word (its marker
        # still says live): either way the participant had joined this session before.
        resumed = previous in ("dropped", "live")
        await self.broker.put(marker_key(session.id, user.id), "live", self.grace)
        conn.join_session(session.id)
        # What the other side sent before this first join (`relay` keeps it, or sends it if it sees the
        # participant live): the client drops a signal it gets twice by its `id`.
        kept = [json.loads(item) for item in await self.broker.take_all(kept_key(session.id, user.id))]
        self._log(consultation_id, "rejoined" if resumed else "joined", user.id, session.id,
                  {"node": self.node, "connection": conn.id})
        peer = session.peer_of(user.id)
        peer_marker = await self.broker.fetch(marker_key(session.id, peer))
        await self._emit(peer, "peer_joined", {"session_id": session.id, "resumed": resumed,
                                               "fresh": fresh, "user_id": user.id})
        return {
            "session_id": session.id,
            "consultation_id": consultation_id,
            "role": role_of(session, user.id),
            "peer_present": peer_marker == "live",
            # The other side has not joined yet: what is sent to it now is kept for its join.
            "peer_expected": peer_marker == "pending",
            "resumed": resumed,
            "signals": kept,
            "ice_servers": ice_servers(self.settings.ice, user.id, now),
        }

    async def _hand_over(self, session: CallSession, user: User) -> CallSession:
        """Put `user` in the clinic's place of a live call; the colleague's tabs are told and leave."""
        previous = session.clinic_user_id
        await self.store.update_accompanying_doctor(session.consultation_id, user.id, actor_id=user.id,
                                                    now=_utc(self.clock()), session_id=session.id)
        self._cache.pop(session.id, None)
        await self.broker.delete(marker_key(session.id, previous))
        await self._emit(previous, "handed_over", {
            "session_id": session.id, "consultation_id": session.consultation_id, "to_user_id": user.id,
            "to_name": user.display_name})
        return await self.get_session(session.id)

    # -- during the call ------------------------------------------------------------------------

    async def relay(self, conn: Connection, session_id: int, kind: str, payload: dict[str, Any]) -> None:
        # Every signal of a call passes here: an open session this node knows, with the sender in it, is taken
        # as it is, without the awaits of the general path (which also answers every refusal).
        session = self._cache.get(session_id)
        if session is None or session.ended_at is not None or conn.user.id not in session.participants():
            session = await self._session_for(conn.user, session_id)
        if session_id not in conn.joined_sessions:
            raise TelehealthError(ErrorCode.not_in_session, "join the session before signaling in it")
        if kind not in SIGNAL_KINDS:
            raise TelehealthError(ErrorCode.invalid_message, "`kind` must be one of: {allowed}",
                                  allowed=", ".join(SIGNAL_KINDS))
        peer = session.peer_of(conn.user.id)
        event = {"session_id": session_id, "kind": kind, "payload": payload, "from": conn.user.id,
                 "id": f"{self._signal_prefix}{next(self._signal_ids):x}"}
        if peer in self._joined_once.get(session_id, ()) or not await self._keep_for_pending(session_id, peer, event):
            await self.broker.publish(user_channel(peer), encode_event("signal", event))
        self.relayed += 1
        if kind in ("offer", "answer"):
            restart = bool(payload.get("ice_restart"))
            self._log(session.consultation_id, f"sdp_{kind}", conn.user.id, session_id, {"ice_restart": restart})
        elif kind == "quality_notice":
            # The sender stepped its video down or up: the session log keeps each step and why.
            self._log(session.consultation_id, "adapted", conn.user.id, session_id,
                      {"level": payload.get("level"), "reason": payload.get("reason")})

    async def _keep_for_pending(self, session_id: int, peer: int, event: dict[str, Any]) -> bool:
        if peer in self._joined_once.get(session_id, ()):
            return False
        kept = await keep_for_pending(self.broker, session_id, peer, event, self.grace)
        if not kept:
            self._joined_once.setdefault(session_id, set()).add(peer)
        return kept

    async def chat(self, conn: Connection, session_id: int, text: str) -> float:
        session = await self._session_for(conn.user, session_id)
        sent_at = self.clock()
        await self._emit(session.peer_of(conn.user.id), "chat", {
            "session_id": session_id, "from": conn.user.id, "name": conn.user.display_name, "text": text,
            "sent_at": sent_at})
        return sent_at

    async def record_ice_state(self, conn: Connection, session_id: int, state: str) -> None:
        session = await self._session_for(conn.user, session_id)
        now = self.clock()
        self._log(session.consultation_id, "ice_state", conn.user.id, session_id, {"state": state})
        if state in ("connected", "completed") and session.connected_at is None:
            await self.store.update_call_session_connected(session_id, _utc(now))
            self._cache.pop(session_id, None)

    async def record_quality(self, conn: Connection, session_id: int, sample: dict[str, float]) -> None:
        session = await self._session_for(conn.user, session_id)
        self._log(session.consultation_id, "quality", conn.user.id, session_id, sample)

    async def hangup(self, conn: Connection, session_id: int) -> None:
        await self._session_for(conn.user, session_id)
        await self.end(session_id, EndReason.hangup, actor_id=conn.user.id)

    async def end(self, session_id: int, reason: EndReason, *, actor_id: int | None) -> bool:
        """End a session once, whoever asks first; the consultation moves to match the reason."""
        session = await self.get_session(session_id)
        await self.flush_log()
        now = self.clock()
        if not await self.store.end_call_session(session_id, reason.value, actor_id=actor_id, now=_utc(now)):
            return False
        self._cache.pop(session_id, None)
        self._joined_once.pop(session_id, None)
        target = S.ended if reason is EndReason.hangup else S.accepted
        try:
            await self.store.transition_consultation(
                session.consultation_id, target, actor_id=actor_id, now=_utc(now), expected=[S.in_call],
                session_id=session_id, event_kind="call_ended", event_data={"reason": reason.value})
        except TelehealthError as exc:
            log.info("session %s ended but consultation %s did not move: %s", session_id,
                     session.consultation_id, exc.code)
        for uid in session.participants():
            await self.broker.delete(marker_key(session_id, uid))
            await self._emit(uid, "session_ended", {"session_id": session_id,
                                                    "consultation_id": session.consultation_id,
                                                    "reason": reason.value, "consultation_state": target.value})
        return True

    # -- connection loss and housekeeping -------------------------------------------------------

    async def connection_lost(self, conn: Connection) -> None:
        """A joined tab went away: its user has the grace period to come back before the call ends."""
        for session_id in list(conn.joined_sessions):
            others = [c for c in self.hub.connections_of(conn.user.id)
                      if c is not conn and session_id in c.joined_sessions]
            if others:
                continue
            try:
                session = await self.get_session(session_id)
            except TelehealthError:
                continue
            if session.ended_at is not None:
                continue
            await self.broker.put(marker_key(session_id, conn.user.id), "dropped", self.grace)
            self._log(session.consultation_id, "left", conn.user.id, session_id,
                      {"reason": "connection_lost", "node": self.node})
            await self._emit(session.peer_of(conn.user.id), "peer_left", {
                "session_id": session_id, "reason": "connection_lost", "grace_s": self.grace})

    async def refresh_presence(self) -> None:
        """Heartbeat the presence of every specialist connected here; it expires if this node dies."""
        ttl = self.settings.matching.presence_ttl_s
        for user_id in {c.user.id for c in self.hub.all_connections() if c.user.role is Role.specialist}:
            await self.broker.touch_presence(user_id, ttl)
            await self.matcher.note_online(user_id, check_presence=True)

    async def refresh_markers(self) -> None:
        """Keep the liveness of every participant connected here from expiring."""
        seen: set[tuple[int, int]] = set()
        for conn in self.hub.all_connections():
            for session_id in conn.joined_sessions:
                key = (session_id, conn.user.id)
                if key not in seen:
                    seen.add(key)
                    await self.broker.put(marker_key(*key), "live", self.grace)

    async def reap(self, quiet_since: float) -> int:
        """End sessions whose participant has been gone longer than the grace period.

        `quiet_since` is when this node last started or rebuilt the broker: before a grace period has
        passed since then, missing markers may only mean the broker was emptied.
        """
        if self.clock() - quiet_since < self.grace:
            return 0
        ended = 0
        for session in await self.store.list_open_call_sessions():
            for uid in session.participants():
                if await self.broker.fetch(marker_key(session.id, uid)) is None:
                    if await self.end(session.id, EndReason.network, actor_id=None):
                        ended += 1
                    break
        return ended

    async def end_all_local(self, reason: EndReason) -> None:
        """On shutdown of a lone node: close every open session consistently."""
        for session in await self.store.list_open_call_sessions():
            await self.end(session.id, reason, actor_id=None)

    async def run_background(self, stop: asyncio.Event, rebuilt_at: Callable[[], float]) -> None:
        interval = max(0.2, min(self.grace / 3, self.settings.matching.presence_ttl_s / 3, 5.0))
        while not stop.is_set():
            try:
                await self.refresh_presence()
                if self._log_buffer and self._log_flusher is None:
                    await self.flush_log()
                await self.refresh_markers()
                await self.reap(max(self.started_at, rebuilt_at()))
            except Exception:
                log.warning("session housekeeping failed; retrying", exc_info=True)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass

