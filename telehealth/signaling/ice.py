"""ICE servers for a call: STUN URLs, and TURN with time-limited credentials (coturn `use-auth-secret`) for a
participant of a call that is to come or in progress, valid for the call's expected length."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from telehealth.config import IceSettings
from telehealth.domain import ConsultationState
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.models import Consultation

# A call is to come once a specialist has accepted, and in progress while it runs. Before that (requested,
# queued, offered) nobody knows yet who will be in it; after it, there is nothing to relay.
CALL_STATES = frozenset({ConsultationState.accepted, ConsultationState.in_call})


def turn_credentials(secret: str, user_id: int | str, now: float, ttl_s: int) -> tuple[str, str]:
    """The "TURN REST API" scheme: username `<expiry>:<user>`, password base64(HMAC-SHA1(secret, username))."""
    username = f"{int(now) + ttl_s}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(settings: IceSettings, user_id: int, now: float, *, turn: bool = True,
                ttl_s: int | None = None) -> list[dict[str, Any]]:
    """The RTCConfiguration.iceServers list a client should use, in the browser's shape. With `turn`, the
    caller has checked that the user is in a call (`call_participant`); the credential lasts `ttl_s`, by
    default the call's expected length."""
    servers: list[dict[str, Any]] = []
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    if turn and settings.turn_urls and settings.secret:
        username, credential = turn_credentials(settings.secret, user_id, now, ttl_s or settings.call_length_s)
        servers.append({"urls": list(settings.turn_urls), "username": username, "credential": credential})
    return servers


def call_participant(consultation: Consultation, user_id: int) -> None:
    """Refuse unless `user_id` is in the consultation's call that is to come or in progress: its specialist or
    the clinic's doctor with the patient (a colleague taking over becomes that doctor by joining)."""
    if user_id not in (consultation.assigned_specialist_id, consultation.accompanying_doctor_id):
        raise TelehealthError(ErrorCode.forbidden, "you are not a participant of this consultation's call")
    if consultation.state not in CALL_STATES:
        raise TelehealthError(ErrorCode.no_call, "there is no call to come or in progress: the consultation is "
                                                 "{state}", state=consultation.state)


def may_relay(consultation: Consultation, user_id: int) -> bool:
    try:
        call_participant(consultation, user_id)
    except TelehealthError:
        return False
    return True
