"""The JSON API: API tokens for non-browser clients, and consultations over HTTP."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from aiohttp import web

from telehealth.accounts import api_token_digest, new_token, verify_password_async
from telehealth.domain import Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.consent import attachments_root, store_signature
from telehealth.records.durations import derive_durations
from telehealth.records.files import FileStore
from telehealth.records.models import Consultation, User
from telehealth.server import keys
from telehealth.server.auth import allow, current_user, public
from telehealth.server.ws import user_view
from telehealth.signaling.commands import CreateBody, consultation_view
from telehealth.signaling.messages import parse_body

MAX_JSON_BYTES = 256 * 1024
MAX_ID = 2**31 - 1


async def read_json(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise TelehealthError(ErrorCode.message_too_large, f"JSON bodies are limited to {MAX_JSON_BYTES} bytes")
    raw = await request.content.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise TelehealthError(ErrorCode.message_too_large, f"JSON bodies are limited to {MAX_JSON_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise TelehealthError(ErrorCode.invalid_json, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise TelehealthError(ErrorCode.invalid_input, "the body must be a JSON object")
    return data


def _remote(request: web.Request) -> str:
    return request.headers.get("X-Forwarded-For", "").split(",")[0].strip() or (request.remote or "")


async def audit(request: web.Request, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    user = request.get(keys.USER)
    await request.app[keys.STORE].insert_audit(
        action, actor_id=user.id if user else None, target=target, remote=_remote(request),
        now=dt.datetime.now(dt.UTC), detail=detail)


@public
async def handle_create_token(request: web.Request) -> web.StreamResponse:
    """Exchange a username and password for an API token (for the Python client and integrations)."""
    data = await read_json(request)
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise TelehealthError(ErrorCode.invalid_input, "`username` and `password` are required strings")
    label = str(data.get("label", ""))[:200]
    limiter = request.app[keys.LOGIN_LIMITER]
    limit_keys = (f"user:{username.lower()}", f"ip:{request.remote}")
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
    body = parse_body(CreateBody, await read_json(request))
    matcher = request.app[keys.MATCHER]
    document = None
    if body.consent is not None:
        files = FileStore(attachments_root(request.app[keys.SETTINGS].data_dir))
        document = await store_signature(files, body.consent.signature)
    consultation = await matcher.submit(body.to_request(document), current_user(request))
    await audit(request, "consultation.create", f"consultation:{consultation.id}")
    status = await matcher.status(consultation)
    return web.json_response({"consultation": consultation_view(consultation, status)}, status=201)


async def get_visible_consultation(request: web.Request, consultation_id: int) -> Consultation:
    """A consultation the current user may see, or not_found / forbidden."""
    user = current_user(request)
    store = request.app[keys.STORE]
    consultation = await store.get_consultation(consultation_id)
    if consultation is None:
        raise TelehealthError(ErrorCode.not_found, f"consultation {consultation_id} does not exist")
    if not await may_see(request, user, consultation):
        await audit(request, "consultation.view_denied", f"consultation:{consultation_id}")
        raise TelehealthError(ErrorCode.forbidden, "this consultation belongs to another institution")
    return consultation


async def may_see(request: web.Request, user: User, consultation: Consultation) -> bool:
    if user.role is Role.clinic_doctor:
        return consultation.clinic_org_id == user.organisation_id
    if user.role is Role.specialist:
        return consultation.assigned_specialist_id == user.id
    if user.is_system_admin:
        return True
    store = request.app[keys.STORE]
    mine = await store.get_organisation(user.organisation_id) if user.organisation_id else None
    clinic = await store.get_organisation(consultation.clinic_org_id)
    return mine is not None and clinic is not None and mine.alliance_id == clinic.alliance_id


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
    consultation = await get_visible_consultation(request, path_id(request))
    await audit(request, "consultation.view", f"consultation:{consultation.id}")
    store = request.app[keys.STORE]
    status = await request.app[keys.MATCHER].status(consultation)
    view = consultation_view(consultation, status)
    view["chief_complaint"] = consultation.chief_complaint
    view["history"] = consultation.history
    view["patient"] = await store.get_patient_summary(consultation.patient_id)
    sessions = await store.list_call_sessions(consultation.id)
    view["sessions"] = [{
        "id": s.id, "started_at": s.started_at.isoformat(), "connected_at": s.connected_at.isoformat()
        if s.connected_at else None, "ended_at": s.ended_at.isoformat() if s.ended_at else None,
        "end_reason": s.end_reason} for s in sessions]
    view["durations"] = derive_durations(await store.list_events(consultation.id), sessions).as_dict()
    return web.json_response({"consultation": view})


@allow(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_consultation_events(request: web.Request) -> web.StreamResponse:
    consultation = await get_visible_consultation(request, path_id(request))
    await audit(request, "consultation.view_events", f"consultation:{consultation.id}")
    events = await request.app[keys.STORE].list_events(consultation.id)
    return web.json_response({"events": [
        {"id": e.id, "kind": e.kind, "at": e.at.isoformat(), "actor_id": e.actor_id, "session_id": e.session_id,
         "data": e.data} for e in events]})


@allow(Role.clinic_doctor, Role.specialist)
async def handle_list_consultations(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    store = request.app[keys.STORE]
    if user.role is Role.clinic_doctor:
        items = await store.list_consultations(clinic_org_id=user.organisation_id, limit=100)
    else:
        items = await store.list_consultations(specialist_id=user.id, limit=100)
    return web.json_response({"consultations": [consultation_view(c) for c in items]})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/tokens", handle_create_token)
    r.add_get("/api/me", handle_me)
    r.add_post("/api/consultations", handle_create_consultation)
    r.add_get("/api/consultations", handle_list_consultations)
    r.add_get("/api/consultations/{consultation_id}", handle_get_consultation)
    r.add_get("/api/consultations/{consultation_id}/events", handle_consultation_events)
