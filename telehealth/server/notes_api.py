"""The opinion report over HTTP: draft saved as the specialist types, signing, addenda, ICD-10 look-up."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from telehealth.domain import Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.icd10 import DiagnosisIndex
from telehealth.server import keys
from telehealth.server.api import path_id, read_body
from telehealth.server.auth import actor_of, allow, current_user
from telehealth.server.i18n import DIAGNOSES, pick_language
from telehealth.services.consultations import Decision
from telehealth.services.notes import AddendumInput, NoteInput, SignInput
from telehealth.views import note_view


@allow(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_get_note(request: web.Request) -> web.StreamResponse:
    note, addenda = await request.app[keys.SERVICES].notes.read(actor_of(request), path_id(request))
    return web.json_response({"note": note_view(note, addenda)})


@allow(Role.specialist)
async def handle_save_note(request: web.Request) -> web.StreamResponse:
    notes, actor, cid = request.app[keys.SERVICES].notes, actor_of(request), path_id(request)
    body = await read_body(request, NoteInput, lambda: notes.authorize(actor, cid))
    note = await notes.save_draft(actor, cid, body)
    return web.json_response({"note": note_view(note)})


@allow(Role.specialist)
async def handle_sign_note(request: web.Request) -> web.StreamResponse:
    notes, actor, cid = request.app[keys.SERVICES].notes, actor_of(request), path_id(request)
    body = await read_body(request, SignInput, lambda: notes.authorize(actor, cid))
    note = await notes.sign(actor, cid, body)
    return web.json_response({"note": note_view(note)})


@allow(Role.specialist)
async def handle_add_addendum(request: web.Request) -> web.StreamResponse:
    notes, actor, cid = request.app[keys.SERVICES].notes, actor_of(request), path_id(request)
    body = await read_body(request, AddendumInput, lambda: notes.authorize(actor, cid))
    note, addenda = await notes.add_addendum(actor, cid, body)
    return web.json_response({"note": note_view(note, addenda)}, status=201)


@allow(Role.clinic_doctor)
async def handle_decision(request: web.Request) -> web.StreamResponse:
    """The clinic doctor, who stays responsible for the patient, records their decision and closes the record."""
    consultations, actor, cid = request.app[keys.SERVICES].consultations, actor_of(request), path_id(request)
    body = await read_body(request, Decision, lambda: consultations.authorize_decision(actor, cid))
    closed = await consultations.decide(actor, cid, body)
    return web.json_response({"consultation": {"id": closed.id, "state": closed.state.value,
                                               "clinic_decision": closed.clinic_decision}})


async def _icd_index(request: web.Request) -> DiagnosisIndex | None:
    """The diagnosis index, or None while the server still builds it (in the background, from its start)
    after a short wait for it, so a search just after a start is answered rather than refused."""
    names = request.app[DIAGNOSES]
    if names.index is None and names.wait_s > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(names.ready.wait(), names.wait_s)
    return names.index


@allow(Role.specialist, Role.clinic_doctor, Role.admin)
async def handle_icd10_search(request: web.Request) -> web.StreamResponse:
    """Codes by code, English or Chinese words, or pinyin (`xjt`); the searcher's recent and department's
    frequent codes first, and those alone for an empty query. 503 `busy` while the index loads."""
    user = current_user(request)
    lang = pick_language(request, user.language, request.app[keys.SETTINGS].default_language)
    renderer = request.app[keys.RENDERER]
    query = request.query.get("q", "").strip()[:100]
    if len(query) == 1:
        raise TelehealthError(ErrorCode.invalid_input, "type at least two characters")
    index = await _icd_index(request)
    if index is None:
        retry = 2
        loading = "The diagnosis list is still loading. Please try again in a moment."
        return web.json_response({"error": {"code": ErrorCode.busy.value, "retry_after_s": retry,
                                            "message": renderer.translate(lang, loading), "message_en": loading}},
                                 status=503, headers={"Retry-After": str(retry)})
    preferred = await request.app[keys.SERVICES].notes.preferred_codes(actor_of(request))
    body: dict[str, Any] = {"results": index.search(query, lang, preferred), "chinese": index.has_chinese}
    if not index.has_chinese:
        body["message"] = renderer.translate(lang, "Chinese diagnosis names are not installed: the list is in "
                                                   "English. An administrator can add them.")
    return web.json_response(body)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/consultations/{consultation_id}/note", handle_get_note)
    r.add_put("/api/consultations/{consultation_id}/note", handle_save_note)
    r.add_post("/api/consultations/{consultation_id}/note/sign", handle_sign_note)
    r.add_post("/api/consultations/{consultation_id}/note/addenda", handle_add_addendum)
    r.add_get("/api/icd10", handle_icd10_search)
    r.add_post("/api/consultations/{consultation_id}/decision", handle_decision)
