"""Referrals over HTTP: booking a reserved outpatient slot for a referral up, the refer-down follow-up tasks
and outcome at the receiving clinic, and the record's FHIR export."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from telehealth.domain import ConsultationState, Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import quota
from telehealth.records.models import Consultation, NewReferral, Referral, Slot
from telehealth.server import keys
from telehealth.server.api import audit, get_visible_consultation, path_id, read_json
from telehealth.server.auth import allow, current_user, page
from telehealth.server.pages import see_other
from telehealth.signaling.messages import parse_body, require

# How far ahead a specialist is offered reserved slots.
BOOKING_HORIZON = dt.timedelta(days=28)
BOOKABLE_STATES = (ConsultationState.accepted, ConsultationState.in_call, ConsultationState.ended)


@dataclass(frozen=True)
class BookingBody:
    slot_id: int

    def validate(self) -> None:
        require(self.slot_id > 0, "`slot_id` must be a slot id")


@dataclass(frozen=True)
class OutcomeBody:
    outcome: str

    def validate(self) -> None:
        require(0 < len(self.outcome.strip()) <= 8000, "`outcome` must be 1 to 8000 characters")


def slot_view(slot: Slot, hospitals: dict[int, Any], tz: Any) -> dict[str, Any]:
    org = hospitals.get(slot.hospital_org_id)
    local = slot.starts_at.astimezone(tz)
    return {
        "id": slot.id, "hospital_org_id": slot.hospital_org_id,
        "hospital": org.name if org else "", "hospital_zh": org.name_zh if org else "",
        "department": slot.department, "starts_at": slot.starts_at.isoformat(),
        "local_time": local.strftime("%Y-%m-%d %H:%M"), "duration_min": slot.duration_min,
        "location": slot.location, "reserved": slot.reserved,
        "released": slot.released_at is not None, "booked": slot.booked_consultation_id is not None,
    }


def referral_view(r: Referral, orgs: dict[int, Any]) -> dict[str, Any]:
    def name(org_id: int) -> str:
        org = orgs.get(org_id)
        return org.name if org else ""

    return {
        "id": r.id, "consultation_id": r.consultation_id, "direction": r.direction,
        "from_org_id": r.from_org_id, "from": name(r.from_org_id), "to_org_id": r.to_org_id, "to": name(r.to_org_id),
        "department": r.department, "slot_id": r.slot_id, "priority": r.priority, "care_plan": r.care_plan,
        "status": r.status, "outcome": r.outcome, "created_at": r.created_at.isoformat(),
        "closed_at": r.closed_at.isoformat() if r.closed_at else None,
        "tasks": [{"id": k.id, "text": k.text, "due_date": k.due_date.isoformat() if k.due_date else None,
                   "done_at": k.done_at.isoformat() if k.done_at else None} for k in r.tasks],
    }


async def _orgs(request: web.Request) -> dict[int, Any]:
    return {o.id: o for o in await request.app[keys.STORE].list_organisations()}


async def referral_for(request: web.Request, consultation: Consultation, disposition: dict[str, Any],
                       now: dt.datetime) -> NewReferral | None:
    """The referral a signed disposition opens; a slot held by a note that no longer refers up goes back."""
    store = request.app[keys.STORE]
    kind = disposition.get("kind")
    booking = await store.get_booking(consultation.id)
    if kind == "refer_up":
        if booking is None:
            raise TelehealthError(ErrorCode.invalid_input,
                                  "book a reserved outpatient slot for the referral up before signing")
        return NewReferral("up", consultation.clinic_org_id, booking.hospital_org_id, booking.department,
                           booking.id, priority=True, care_plan=str(disposition.get("details", "")))
    if booking is not None:
        await store.cancel_booking(consultation.id, now=now)
    if kind != "refer_down":
        return None
    to_id = int(disposition.get("to_org_id") or consultation.clinic_org_id)
    clinic = await store.get_organisation(consultation.clinic_org_id)
    target = await store.get_organisation(to_id)
    if target is None or clinic is None or target.level.is_hospital or target.alliance_id != clinic.alliance_id:
        raise TelehealthError(ErrorCode.invalid_input,
                              "a referral down goes to a clinic or health centre of the same alliance")
    specialist = current_user(request)
    tasks = tuple((str(k["text"]).strip(), dt.date.fromisoformat(k["due_date"]) if k.get("due_date") else None)
                  for k in disposition.get("tasks", []))
    return NewReferral("down", specialist.organisation_id or consultation.clinic_org_id, to_id,
                       consultation.specialty, care_plan=str(disposition.get("details", "")), tasks=tasks)


async def _own_open(request: web.Request) -> Consultation:
    consultation = await get_visible_consultation(request, path_id(request))
    if consultation.assigned_specialist_id != current_user(request).id:
        raise TelehealthError(ErrorCode.forbidden, "only the specialist who took this consultation books for it")
    if consultation.state not in BOOKABLE_STATES:
        raise TelehealthError(ErrorCode.invalid_transition,
                              f"the consultation is {consultation.state}: its booking can no longer change")
    return consultation


@allow(Role.specialist)
async def handle_open_slots(request: web.Request) -> web.StreamResponse:
    """Reserved slots still open at the clinic's partner hospitals, for the consultation's specialty unless
    `department` says otherwise."""
    consultation = await _own_open(request)
    store = request.app[keys.STORE]
    settings = request.app[keys.SETTINGS].slots
    now = dt.datetime.now(dt.UTC)
    _, partners = await store.get_partner_hospitals(consultation.clinic_org_id, now)
    department = request.query.get("department") or consultation.specialty
    slots = await store.list_slots(hospital_org_ids=partners, department=department, start=now,
                                   end=now + BOOKING_HORIZON, open_reserved=True, limit=300)
    slots = [s for s in slots if now < quota.release_cutoff(s.starts_at, settings.tz, settings.release_hours_before)]
    orgs = await _orgs(request)
    booking = await store.get_booking(consultation.id)
    return web.json_response({
        "department": department,
        "slots": [slot_view(s, orgs, settings.tz) for s in slots],
        "booking": slot_view(booking, orgs, settings.tz) if booking else None,
    })


@allow(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_get_booking(request: web.Request) -> web.StreamResponse:
    consultation = await get_visible_consultation(request, path_id(request))
    booking = await request.app[keys.STORE].get_booking(consultation.id)
    tz = request.app[keys.SETTINGS].slots.tz
    return web.json_response({"booking": slot_view(booking, await _orgs(request), tz) if booking else None})


@allow(Role.specialist)
async def handle_book(request: web.Request) -> web.StreamResponse:
    consultation = await _own_open(request)
    body = parse_body(BookingBody, await read_json(request))
    store = request.app[keys.STORE]
    settings = request.app[keys.SETTINGS].slots
    slot = await store.get_slot(body.slot_id)
    _, partners = await store.get_partner_hospitals(consultation.clinic_org_id, dt.datetime.now(dt.UTC))
    if slot is None or slot.hospital_org_id not in partners:
        raise TelehealthError(ErrorCode.not_found, f"slot {body.slot_id} is not offered to this clinic")
    booked = await store.book_slot(consultation.id, slot.id, now=dt.datetime.now(dt.UTC), tz=settings.tz,
                                   release_hours=settings.release_hours_before)
    await audit(request, "slot.book", f"consultation:{consultation.id}", {"slot": slot.id})
    return web.json_response({"booking": slot_view(booked, await _orgs(request), settings.tz)})


@allow(Role.specialist)
async def handle_cancel_booking(request: web.Request) -> web.StreamResponse:
    consultation = await _own_open(request)
    cancelled = await request.app[keys.STORE].cancel_booking(consultation.id, now=dt.datetime.now(dt.UTC))
    if cancelled:
        await audit(request, "slot.cancel", f"consultation:{consultation.id}")
    return web.json_response({"booking": None, "cancelled": cancelled})


@allow(Role.clinic_doctor, Role.specialist)
async def handle_list_referrals(request: web.Request) -> web.StreamResponse:
    """A clinic doctor: referrals down to their institution (open ones unless `all=1`). A specialist: the
    referrals they made, with the receiving clinic's outcome."""
    user = current_user(request)
    store = request.app[keys.STORE]
    everything = request.query.get("all") == "1"
    if user.role is Role.clinic_doctor:
        if user.organisation_id is None:
            raise TelehealthError(ErrorCode.forbidden, "this account belongs to no institution")
        referrals = await store.list_referrals(to_org_id=user.organisation_id, direction="down",
                                               open_only=not everything)
    else:
        referrals = await store.list_referrals(created_by=user.id, open_only=not everything)
    orgs = await _orgs(request)
    return web.json_response({"referrals": [referral_view(r, orgs) for r in referrals]})


async def receiving_referral(request: web.Request) -> Referral:
    """A refer-down referral addressed to the current clinic doctor's institution."""
    referral = await request.app[keys.STORE].get_referral(path_id(request, "referral_id"))
    if referral is None:
        raise TelehealthError(ErrorCode.not_found, "no such referral")
    user = current_user(request)
    if referral.direction != "down" or referral.to_org_id != user.organisation_id:
        await audit(request, "referral.view_denied", f"referral:{referral.id}")
        raise TelehealthError(ErrorCode.forbidden, "this referral is addressed to another institution")
    return referral


@allow(Role.clinic_doctor)
async def handle_task_done(request: web.Request) -> web.StreamResponse:
    referral = await receiving_referral(request)
    task_id = path_id(request, "task_id")
    store = request.app[keys.STORE]
    await store.complete_referral_task(referral.id, task_id, current_user(request).id, now=dt.datetime.now(dt.UTC))
    await audit(request, "referral.task_done", f"consultation:{referral.consultation_id}", {"task": task_id})
    updated = await store.get_referral(referral.id)
    assert updated is not None
    return web.json_response({"referral": referral_view(updated, await _orgs(request))})


@allow(Role.clinic_doctor)
async def handle_outcome(request: web.Request) -> web.StreamResponse:
    referral = await receiving_referral(request)
    body = parse_body(OutcomeBody, await read_json(request))
    closed = await request.app[keys.STORE].close_referral(referral.id, body.outcome.strip(), current_user(request).id,
                                                         now=dt.datetime.now(dt.UTC))
    await audit(request, "referral.close", f"consultation:{referral.consultation_id}")
    return web.json_response({"referral": referral_view(closed, await _orgs(request))})


@page(Role.clinic_doctor)
async def handle_task_done_form(request: web.Request) -> web.StreamResponse:
    referral = await receiving_referral(request)
    task_id = path_id(request, "task_id")
    await request.app[keys.STORE].complete_referral_task(referral.id, task_id, current_user(request).id,
                                                         now=dt.datetime.now(dt.UTC))
    await audit(request, "referral.task_done", f"consultation:{referral.consultation_id}", {"task": task_id})
    return see_other("/clinic#referrals")


@page(Role.clinic_doctor)
async def handle_outcome_form(request: web.Request) -> web.StreamResponse:
    referral = await receiving_referral(request)
    outcome = str((await request.post()).get("outcome", "")).strip()
    if not 0 < len(outcome) <= 8000:
        raise TelehealthError(ErrorCode.invalid_input, "describe the outcome (up to 8000 characters)")
    await request.app[keys.STORE].close_referral(referral.id, outcome, current_user(request).id,
                                                 now=dt.datetime.now(dt.UTC))
    await audit(request, "referral.close", f"consultation:{referral.consultation_id}")
    return see_other("/clinic#referrals")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/clinic/referrals/{referral_id}/tasks/{task_id}/done", handle_task_done_form)
    r.add_post("/clinic/referrals/{referral_id}/outcome", handle_outcome_form)
    r.add_get("/api/consultations/{consultation_id}/slots", handle_open_slots)
    r.add_get("/api/consultations/{consultation_id}/booking", handle_get_booking)
    r.add_put("/api/consultations/{consultation_id}/booking", handle_book)
    r.add_delete("/api/consultations/{consultation_id}/booking", handle_cancel_booking)
    r.add_get("/api/referrals", handle_list_referrals)
    r.add_post("/api/referrals/{referral_id}/tasks/{task_id}/done", handle_task_done)
    r.add_post("/api/referrals/{referral_id}/outcome", handle_outcome)
