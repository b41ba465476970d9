"""The JSON API: API tokens for non-browser clients, and consultations over HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from telehealth.accounts import api_token_digest, new_token, verify_password_async
from telehealth.domain import Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.models import Consultation
from telehealth.schema import InputError, parse
from telehealth.server import keys
from telehealth.server.auth import actor_of, allow, client_address, current_user, public
from telehealth.server.ws import user_view
from telehealth.services.consultations import CreateConsultation
from telehealth.services.context import Actor
from telehealth.strict_input import json_loads
from telehealth.views import consultation_view, event_view, session_view

T = TypeVar("T")
MAX_JSON_BYTES = 256 * 1024
MAX_ID = 2**31 - 1


async def read_json(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise TelehealthError(ErrorCode.message_too_large, f"JSON bodies are limited to {MAX_JSON_BYTES} bytes")
    raw = await request.content.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise TelehealthError(ErrorCode.message_too_large, f"JSON bodies are limited to {MAX_JSON_BYTES} bytes")
    data = json_loads(raw)
    if not isinstance(data, dict):
        raise TelehealthError(ErrorCode.invalid_input, "the body must be a JSON object")
    return data


async def audit(request: web.Request, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    """An audit entry for an edge that has no service operation of its own yet."""
    user = request.get(keys.USER)
    await request.app[keys.SERVICES].audit(Actor(user, client_address(request)) if user else None, action,
                                           target, detail)


@public
async def handle_create_token(request: web.Request) -> web.StreamResponse:
    """Exchange a username and password for an API token (for the Python client and integrations)."""
    data = await read_json(request)
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise TelehealthError(ErrorCode.invalid_input, "`username` and `password` are required strings")
    label = str(data.get("label", ""))[:200]
    limiter = request.app[keys.LOGIN_LIMITER]
    limit_keys = (f"user:{username.lower()}", f"ip:{client_address(request)}")
    if max(limiter.blocked(k) for k in limit_keys) > 0:
        raise TelehealthError(ErrorCode.login_rate_limited, "too many attempts; wait a few minutes")
    store = request.app[keys.STORE]
    user = await store.get_user_by_username(username[:80])
    if not await verify_password_async(user.password_hash if user else None, password[:1024]) or user is None:
        for k in limit_keys:
            limiter.hit(k)
        raise TelehealthError(ErrorCode.auth_failed, "wrong username or password")
    token = new_token()
    await store.insert_api_token(api_token_digest(token), user.id, label, dt.datetime.now(dt.UTC))
    request[keys.USER] = user
    await audit(request, "api_token.create", f"user:{user.id}")
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


async def get_visible_consultation(request: web.Request, consultation_id: int) -> Consultation:
    """A consultation the current user may see, or not_found / forbidden (by the one access policy)."""
    return await request.app[keys.SERVICES].access.consultation(actor_of(request), consultation_id)


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


def path_id(request: web.Request, name: str = "consultation_id") -> int:
    what = name.removesuffix("_id").replace("_", " ")
    try:
        value = int(request.match_info[name])
    except ValueError:
        raise TelehealthError(ErrorCode.not_found, f"no such {what}") from None
    if not 0 < value <= MAX_ID:  # ids are 32-bit in every database the store runs on
        raise TelehealthError(ErrorCode.not_found, f"no such {what}")
    return value


@allow(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_get_consultation(request: web.Request) -> web.StreamResponse:
    detail = await request.app[keys.SERVICES].consultations.detail(actor_of(request), path_id(request))
    c = detail.consultation
    view = consultation_view(c, detail.status)
    view.update(chief_complaint=c.chief_complaint, history=c.history, patient=detail.patient,
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
