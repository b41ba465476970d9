"""The JSON API: API tokens for non-browser clients, and consultations over HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from telehealth.domain import Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.schema import InputError, parse
from telehealth.server import keys
from telehealth.server.auth import actor_of, allow, client_address, current_user, public
from telehealth.server.ws import user_view
from telehealth.services.accounts import Credentials
from telehealth.services.consultations import ConsentInput, CreateConsultation
from telehealth.strict_input import json_loads
from telehealth.views import consultation_view, event_view, session_view

T = TypeVar("T")
MAX_JSON_BYTES = 256 * 1024
MAX_ID = 2**31 - 1


async def read_json(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise TelehealthError(ErrorCode.message_too_large, "JSON bodies are limited to {max} bytes",
                              max=MAX_JSON_BYTES)
    raw = await request.content.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise TelehealthError(ErrorCode.message_too_large, "JSON bodies are limited to {max} bytes",
                              max=MAX_JSON_BYTES)
    data = json_loads(raw)
    if not isinstance(data, dict):
        raise TelehealthError(ErrorCode.invalid_input, "the body must be a JSON object")
    return data


@public
async def handle_create_token(request: web.Request) -> web.StreamResponse:
    """Exchange a username and password for an API token (for the Python client and integrations)."""
    data = await read_json(request)
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise TelehealthError(ErrorCode.invalid_input, "`username` and `password` are required strings")
    label, code = data.get("label", ""), data.get("code", "")
    credentials = Credentials(username[:80], password[:1024], label[:200] if isinstance(label, str) else "",
                              code[:40] if isinstance(code, str) else "")
    token, user = await request.app[keys.SERVICES].accounts.mint_api_token(credentials, client_address(request))
    return web.json_response({"token": token, "user": user_view(user)}, status=201)


@allow(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_me(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    return web.json_response({"user": user_view(user), "csrf_token": request.get(keys.CSRF)})


@allow(Role.clinic_doctor)
async def handle_create_consultation(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, CreateConsultation)
    consultation, status = await request.app[keys.SERVICES].consultations.create(actor_of(request), body)
    return web.json_response({"consultation": consultation_view(consultation, status)}, status=201)


@allow(Role.clinic_doctor)
async def handle_record_consent(request: web.Request) -> web.StreamResponse:
    consultations = request.app[keys.SERVICES].consultations
    actor, cid = actor_of(request), path_id(request)
    body = await read_body(request, ConsentInput, lambda: consultations.authorize_consent(actor, cid))
    consultation, status = await consultations.record_consent(actor, cid, body)
    return web.json_response({"consultation": consultation_view(consultation, status)})


async def read_body(request: web.Request, schema: type[T],
                    gate: Callable[[], Awaitable[object]] | None = None) -> T:
    """The JSON body by its schema. When the body is wrong, `gate` (the operation's own access check) runs
    first, so that a caller who may not act here hears `forbidden`, not what their body lacked."""
    data = await read_json(request)
    try:
        return parse(schema, data)
    except InputError:
        if gate is not None:
            await gate()
        raise


# One whole sentence per kind of record, so that each is translated as a sentence, not as a pasted-in noun.
NO_SUCH = {
    "consultation_id": "no such consultation", "referral_id": "no such referral", "task_id": "no such task",
    "user_id": "no such user", "org_id": "no such organisation", "agreement_id": "no such agreement",
    "attachment_id": "no such attachment", "duty_id": "no such duty day", "session_id": "no such session",
    "slot_id": "no such slot", "patient_id": "no such patient", "alliance_id": "no such alliance",
    "appointment_id": "no such booked consultation", "hours_id": "no such consultation hours",
}


def path_id(request: web.Request, name: str = "consultation_id") -> int:
    message = NO_SUCH.get(name, "no such record")
    try:
        value = int(request.match_info[name])
    except ValueError:
        raise TelehealthError(ErrorCode.not_found, message) from None
    if not 0 < value <= MAX_ID:  # ids are 32-bit in every database the store runs on
        raise TelehealthError(ErrorCode.not_found, message)
    return value


@allow(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_get_consultation(request: web.Request) -> web.StreamResponse:
    detail = await request.app[keys.SERVICES].consultations.detail(actor_of(request), path_id(request))
    c = detail.consultation
    view = consultation_view(c, detail.status)
    view.update(chief_complaint=c.chief_complaint, history=c.history, patient=detail.patient, patient_id=c.patient_id,
                sessions=[session_view(s) for s in detail.sessions], durations=detail.durations)
    return web.json_response({"consultation": view})


@allow(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_consultation_events(request: web.Request) -> web.StreamResponse:
    events = await request.app[keys.SERVICES].consultations.events(actor_of(request), path_id(request))
    return web.json_response({"events": [event_view(e) for e in events]})


@allow(Role.clinic_doctor, Role.specialist)
async def handle_list_consultations(request: web.Request) -> web.StreamResponse:
    items = await request.app[keys.SERVICES].consultations.list_own(actor_of(request))
    return web.json_response({"consultations": [consultation_view(c) for c in items]})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/tokens", handle_create_token)
    r.add_get("/api/me", handle_me)
    r.add_post("/api/consultations", handle_create_consultation)
    r.add_get("/api/consultations", handle_list_consultations)
    r.add_get("/api/consultations/{consultation_id}", handle_get_consultation)
    r.add_get("/api/consultations/{consultation_id}/events", handle_consultation_events)
    r.add_post("/api/consultations/{consultation_id}/consent", handle_record_consent)
