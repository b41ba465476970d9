"""WebSocket commands: each a typed body, the roles allowed, and a handler, registered in one list."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from telehealth.domain import ConsultationState, DeclineReason, Presence, Role
from telehealth.matching.service import Matcher, QueueStatus
from telehealth.records.models import Consultation, User
from telehealth.schema import InputError, require
from telehealth.services import Actor, Services
from telehealth.services.consultations import ConsultationRef, CreateConsultation
from telehealth.signaling.connection import Connection
from telehealth.signaling.hub import Hub
from telehealth.signaling.ice import ice_servers, may_relay
from telehealth.signaling.sessions import ICE_STATES, QUALITY_LEVELS, SIGNAL_KINDS, SessionManager
from telehealth.views import consultation_view

ALL_ROLES = frozenset(Role)
CLINIC = frozenset({Role.clinic_doctor})
SPECIALIST = frozenset({Role.specialist})
MAX_TEXT = 4000
MAX_SDP = 60_000


@dataclass(slots=True)
class Context:
    conn: Connection
    services: Services
    sessions: SessionManager
    hub: Hub
    node: str
    # The client's address, for the audit trail.
    remote: str = ""

    @property
    def user(self) -> User:
        return self.conn.user

    @property
    def actor(self) -> Actor:
        return Actor(self.conn.user, self.remote)

    @property
    def matcher(self) -> Matcher:
        return self.services.matcher


# States in which a call is still to come for the consultation.
CALL_AHEAD = frozenset({ConsultationState.requested, ConsultationState.queued, ConsultationState.offered,
                        ConsultationState.accepted, ConsultationState.in_call})


def waiting_reply(ctx: Context, consultation: Consultation, status: QueueStatus) -> dict[str, Any]:
    """The consultation as its watcher sees it; while a call is still to come, with the ICE servers, so that a
    page waiting for its call makes its peer connection beforehand: STUN while it waits, TURN too once it is a
    participant of an accepted call (`session_ready` brings TURN to a page that waited)."""
    reply: dict[str, Any] = {"consultation": consultation_view(consultation, status)}
    if consultation.state in CALL_AHEAD:
        reply["ice_servers"] = ice_servers(ctx.sessions.settings.ice, ctx.user.id, ctx.sessions.clock(),
                                           turn=may_relay(consultation, ctx.user.id))
    return reply


# -- bodies -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Empty:
    pass


@dataclass(frozen=True)
class PresenceBody:
    status: Presence


@dataclass(frozen=True)
class DeclineBody:
    consultation_id: int
    reason: DeclineReason
    text: str = ""

    def validate(self) -> None:
        require(len(self.text) <= 500, "`text` is limited to 500 characters")
        require(self.reason is not DeclineReason.other or bool(self.text.strip()),
                "a decline for another reason needs a short `text`")


@dataclass(frozen=True)
class QueueListBody:
    limit: int = 50

    def validate(self) -> None:
        require(1 <= self.limit <= 200, "`limit` must be between 1 and 200")


@dataclass(frozen=True)
class SignalBody:
    session_id: int
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.kind not in SIGNAL_KINDS:
            raise InputError("", "`kind` must be one of: {allowed}", allowed=", ".join(SIGNAL_KINDS))
        if self.kind in ("offer", "answer"):
            sdp = self.payload.get("sdp")
            require(isinstance(sdp, str) and sdp.startswith("v=0") and len(sdp) <= MAX_SDP,
                    "`payload.sdp` must be an SDP text starting with v=0")
        if self.kind == "candidate":
            cand = self.payload.get("candidate")
            require(isinstance(cand, str) and len(cand) <= 1000, "`payload.candidate` must be a string")
        if self.kind == "quality_notice":
            require(self.payload.get("level") in QUALITY_LEVELS and
                    self.payload.get("reason") in ("weak_link", "recovered", "manual"),
                    "`payload.level` is one of {levels}; `payload.reason` weak_link, recovered or manual",
                    levels=", ".join(QUALITY_LEVELS))


@dataclass(frozen=True)
class JoinBody:
    consultation_id: int
    # True when the client joins with a new peer connection (first join, page reload): the offerer
    # then starts a new one too. False after only the WebSocket was lost: media may still be flowing.
    fresh: bool = True
    # A doctor of the clinic joining a call a colleague is in takes their place beside the patient.
    take_over: bool = False


@dataclass(frozen=True)
class SessionRef:
    session_id: int


@dataclass(frozen=True)
class IceStateBody:
    session_id: int
    state: str

    def validate(self) -> None:
        require(self.state in ICE_STATES, "`state` must be one of: {allowed}", allowed=", ".join(ICE_STATES))


@dataclass(frozen=True)
class QualityBody:
    session_id: int
    rtt_ms: float | None = None
    loss_pct: float | None = None
    bitrate_kbps: float | None = None
    frames_decoded: int | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    jitter_ms: float | None = None
    audio_only: bool = False

    def sample(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "session_id" and v is not None}


@dataclass(frozen=True)
class ChatBody:
    session_id: int
    text: str

    def validate(self) -> None:
        require(0 < len(self.text.strip()) <= 2000, "`text` must be 1 to 2000 characters")


# -- handlers ---------------------------------------------------------------------------------------

async def handle_ping(ctx: Context, body: Empty) -> dict[str, Any]:
    return {"pong": time.time()}


async def handle_presence_set(ctx: Context, body: PresenceBody) -> dict[str, Any]:
    presence = await ctx.matcher.set_presence(ctx.user, body.status, ctx.node)
    for specialty in ctx.user.specialties:
        await ctx.hub.watch_queue(ctx.conn, specialty)
    return {"status": presence.status}


async def handle_queue_list(ctx: Context, body: QueueListBody) -> dict[str, Any]:
    from telehealth.matching.rules import eligible

    presence = ctx.matcher.presence_for(ctx.user, Presence.available, 0.0, "")
    now = ctx.matcher.clock()
    items: list[dict[str, Any]] = []
    for specialty in ctx.user.specialties:
        await ctx.hub.watch_queue(ctx.conn, specialty)
        for entry in await ctx.matcher.broker.queue_head(specialty, 200):
            if eligible(entry, presence, now):
                items.append({"consultation_id": entry.consultation_id, "specialty": entry.specialty,
                              "urgency": entry.urgency, "waiting_since": entry.waiting_since,
                              "complex_case": entry.complex_case, "clinic_org_id": entry.clinic_org_id,
                              "score": entry.score})
    items.sort(key=lambda i: (i["score"], i["consultation_id"]))
    items = items[: body.limit]
    # Details for display (clinic name, complaint) come from the store, for the visible items only.
    summaries = await ctx.services.consultations.queue_summaries(ctx.actor, [i["consultation_id"] for i in items])
    for item in items:
        complaint, org = summaries.get(item["consultation_id"], ("", None))
        item["chief_complaint"] = complaint
        item["clinic"] = org.name if org else ""
        item["clinic_zh"] = org.name_zh if org else ""
        del item["score"]
    return {"items": items}


async def _start_call(ctx: Context, consultation: Consultation) -> dict[str, Any]:
    session = await ctx.sessions.open_for(consultation, ctx.user)
    return {"consultation": consultation_view(consultation), "session_id": session.id}


async def handle_take_next(ctx: Context, body: Empty) -> dict[str, Any]:
    consultation = await ctx.matcher.take_next(ctx.user)
    if consultation is None:
        return {"consultation": None}
    return await _start_call(ctx, consultation)


async def handle_take(ctx: Context, body: ConsultationRef) -> dict[str, Any]:
    consultation = await ctx.matcher.take(body.consultation_id, ctx.user)
    return await _start_call(ctx, consultation)


async def handle_offer_accept(ctx: Context, body: ConsultationRef) -> dict[str, Any]:
    consultation = await ctx.matcher.accept(body.consultation_id, ctx.user)
    return await _start_call(ctx, consultation)


async def handle_offer_decline(ctx: Context, body: DeclineBody) -> dict[str, Any]:
    await ctx.matcher.decline(body.consultation_id, ctx.user, body.reason, body.text)
    return {}


async def handle_create(ctx: Context, body: CreateConsultation) -> dict[str, Any]:
    consultation, status = await ctx.services.consultations.create(ctx.actor, body)
    ctx.conn.watch(consultation.id)
    await ctx.hub.watch_queue(ctx.conn, consultation.specialty)
    return waiting_reply(ctx, consultation, status)


async def handle_cancel(ctx: Context, body: ConsultationRef) -> dict[str, Any]:
    consultation = await ctx.services.consultations.cancel(ctx.actor, body.consultation_id)
    return {"consultation": consultation_view(consultation)}


async def handle_requeue(ctx: Context, body: ConsultationRef) -> dict[str, Any]:
    consultation, status = await ctx.services.consultations.requeue(ctx.actor, body.consultation_id)
    return {"consultation": consultation_view(consultation, status)}


async def handle_watch(ctx: Context, body: ConsultationRef) -> dict[str, Any]:
    consultation, status = await ctx.services.consultations.watched(ctx.actor, body.consultation_id)
    ctx.conn.watch(consultation.id)
    await ctx.hub.watch_queue(ctx.conn, consultation.specialty)
    return waiting_reply(ctx, consultation, status)


async def handle_session_join(ctx: Context, body: JoinBody) -> dict[str, Any]:
    return await ctx.sessions.join(ctx.conn, body.consultation_id, fresh=body.fresh, take_over=body.take_over)


async def handle_ice_servers(ctx: Context, body: ConsultationRef) -> dict[str, Any]:
    return {"ice_servers": await ctx.sessions.ice_for(ctx.user, body.consultation_id)}


async def handle_signal(ctx: Context, body: SignalBody) -> dict[str, Any]:
    await ctx.sessions.relay(ctx.conn, body.session_id, body.kind, body.payload)
    return {}


async def handle_ice_state(ctx: Context, body: IceStateBody) -> dict[str, Any]:
    await ctx.sessions.record_ice_state(ctx.conn, body.session_id, body.state)
    return {}


async def handle_quality(ctx: Context, body: QualityBody) -> dict[str, Any]:
    await ctx.sessions.record_quality(ctx.conn, body.session_id, body.sample())
    return {}


async def handle_chat(ctx: Context, body: ChatBody) -> dict[str, Any]:
    sent_at = await ctx.sessions.chat(ctx.conn, body.session_id, body.text.strip())
    return {"sent_at": sent_at}


async def handle_hangup(ctx: Context, body: SessionRef) -> dict[str, Any]:
    await ctx.sessions.hangup(ctx.conn, body.session_id)
    return {}


@dataclass(frozen=True)
class Command:
    name: str
    body: type[Any]
    roles: frozenset[Role]
    handler: Callable[[Context, Any], Awaitable[dict[str, Any]]]
    # Commands that change durable state are not replayed by clients after a reconnect without checking.
    summary: str


COMMANDS: tuple[Command, ...] = (
    Command("ping", Empty, ALL_ROLES, handle_ping, "Round trip check."),
    Command("presence.set", PresenceBody, SPECIALIST, handle_presence_set, "Set available / busy / away."),
    Command("queue.list", QueueListBody, SPECIALIST, handle_queue_list, "Waiting requests you may take."),
    Command("consultation.take_next", Empty, SPECIALIST, handle_take_next, "Take the best waiting request."),
    Command("consultation.take", ConsultationRef, SPECIALIST, handle_take, "Take one waiting request."),
    Command("offer.accept", ConsultationRef, SPECIALIST, handle_offer_accept, "Accept a ringing offer."),
    Command("offer.decline", DeclineBody, SPECIALIST, handle_offer_decline, "Decline an offer with a reason."),
    Command("consultation.create", CreateConsultation, CLINIC, handle_create, "Ask for a consultation."),
    Command("consultation.cancel", ConsultationRef, CLINIC, handle_cancel, "Withdraw a request."),
    Command("consultation.requeue", ConsultationRef, ALL_ROLES - {Role.admin}, handle_requeue,
            "Queue an expired request again (clinic) or give an accepted one back (specialist)."),
    Command("consultation.watch", ConsultationRef, ALL_ROLES - {Role.admin}, handle_watch,
            "Follow a consultation's state and queue position."),
    Command("session.join", JoinBody, ALL_ROLES - {Role.admin}, handle_session_join,
            "Enter the call of a consultation."),
    Command("call.ice_servers", ConsultationRef, ALL_ROLES - {Role.admin}, handle_ice_servers,
            "Fresh ICE servers (TURN included) for a participant of a call to come or in progress."),
    Command("session.signal", SignalBody, ALL_ROLES - {Role.admin}, handle_signal,
            "Relay SDP or ICE to the other participant."),
    Command("session.ice_state", IceStateBody, ALL_ROLES - {Role.admin}, handle_ice_state,
            "Report an ICE connection state change."),
    Command("session.quality", QualityBody, ALL_ROLES - {Role.admin}, handle_quality,
            "Report a call quality sample."),
    Command("session.chat", ChatBody, ALL_ROLES - {Role.admin}, handle_chat, "Send a chat line."),
    Command("session.hangup", SessionRef, ALL_ROLES - {Role.admin}, handle_hangup, "End the call."),
)

REGISTRY: dict[str, Command] = {c.name: c for c in COMMANDS}
