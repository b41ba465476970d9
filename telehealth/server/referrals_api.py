"""Referrals over HTTP: booking a reserved outpatient slot for a referral up, the reserved beds open to a
referral up for admission, the refer-down follow-up tasks
and outcome at the receiving clinic, and the record's FHIR export."""

from __future__ import annotations

from aiohttp import web

from telehealth.domain import Role
from telehealth.records.models import Organisation
from telehealth.schema import parse
from telehealth.server import keys
from telehealth.server.api import path_id, read_body
from telehealth.server.auth import actor_of, allow, page
from telehealth.server.pages import see_other
from telehealth.services.referrals import BookingInput, OutcomeInput
from telehealth.views import bed_view, referral_view, slot_view


async def _orgs(request: web.Request) -> dict[int, Organisation]:
    return await request.app[keys.SERVICES].organisations.by_id(actor_of(request))


@allow(Role.specialist)
async def handle_open_slots(request: web.Request) -> web.StreamResponse:
    """Reserved slots still open at the clinic's partner hospitals, for the consultation's specialty unless
    `department` says otherwise."""
    department, slots, booking = await request.app[keys.SERVICES].referrals.open_slots(
        actor_of(request), path_id(request), request.query.get("department"))
    orgs, tz = await _orgs(request), request.app[keys.SETTINGS].slots.tz
    return web.json_response({
        "department": department,
        "slots": [slot_view(s, orgs, tz) for s in slots],
        "booking": slot_view(booking, orgs, tz) if booking else None,
    })


@allow(Role.specialist)
async def handle_open_beds(request: web.Request) -> web.StreamResponse:
    """Reserved beds still open at the hospitals of the clinic's alliance, in the consultation's specialty's
    ward unless `ward` says otherwise; signing a referral up for admission books the one the note names."""
    ward, beds, held = await request.app[keys.SERVICES].referrals.open_beds(
        actor_of(request), path_id(request), request.query.get("ward"))
    orgs = await _orgs(request)
    return web.json_response({"ward": ward, "beds": [bed_view(b, orgs) for b in beds],
                              "booking": bed_view(held, orgs) if held else None})


@allow(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_get_booking(request: web.Request) -> web.StreamResponse:
    booking = await request.app[keys.SERVICES].referrals.booking(actor_of(request), path_id(request))
    tz = request.app[keys.SETTINGS].slots.tz
    return web.json_response({"booking": slot_view(booking, await _orgs(request), tz) if booking else None})


@allow(Role.specialist)
async def handle_book(request: web.Request) -> web.StreamResponse:
    referrals, actor, cid = request.app[keys.SERVICES].referrals, actor_of(request), path_id(request)
    body = await read_body(request, BookingInput, lambda: referrals.authorize_booking(actor, cid))
    booked = await referrals.book(actor, cid, body)
    tz = request.app[keys.SETTINGS].slots.tz
    return web.json_response({"booking": slot_view(booked, await _orgs(request), tz)})


@allow(Role.specialist)
async def handle_cancel_booking(request: web.Request) -> web.StreamResponse:
    cancelled = await request.app[keys.SERVICES].referrals.cancel_booking(actor_of(request), path_id(request))
    return web.json_response({"booking": None, "cancelled": cancelled})


@allow(Role.clinic_doctor, Role.specialist)
async def handle_list_referrals(request: web.Request) -> web.StreamResponse:
    """A clinic doctor: referrals down to their institution (open ones unless `all=1`). A specialist: the
    referrals they made, with the receiving clinic's outcome."""
    referrals = await request.app[keys.SERVICES].referrals.list_for(actor_of(request),
                                                                   everything=request.query.get("all") == "1")
    orgs = await _orgs(request)
    return web.json_response({"referrals": [referral_view(r, orgs) for r in referrals]})


@allow(Role.clinic_doctor)
async def handle_task_done(request: web.Request) -> web.StreamResponse:
    updated = await request.app[keys.SERVICES].referrals.complete_task(
        actor_of(request), path_id(request, "referral_id"), path_id(request, "task_id"))
    return web.json_response({"referral": referral_view(updated, await _orgs(request))})


@allow(Role.clinic_doctor)
async def handle_outcome(request: web.Request) -> web.StreamResponse:
    referrals, actor, rid = request.app[keys.SERVICES].referrals, actor_of(request), path_id(request, "referral_id")
    body = await read_body(request, OutcomeInput, lambda: referrals.authorize_receiving(actor, rid))
    closed = await referrals.close(actor, rid, body)
    return web.json_response({"referral": referral_view(closed, await _orgs(request))})


@page(Role.clinic_doctor)
async def handle_task_done_form(request: web.Request) -> web.StreamResponse:
    await request.app[keys.SERVICES].referrals.complete_task(
        actor_of(request), path_id(request, "referral_id"), path_id(request, "task_id"))
    return see_other("/clinic#referrals")


@page(Role.clinic_doctor)
async def handle_outcome_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    body = parse(OutcomeInput, {"outcome": str(form.get("outcome", ""))})
    await request.app[keys.SERVICES].referrals.close(actor_of(request), path_id(request, "referral_id"), body)
    return see_other("/clinic#referrals")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/clinic/referrals/{referral_id}/tasks/{task_id}/done", handle_task_done_form)
    r.add_post("/clinic/referrals/{referral_id}/outcome", handle_outcome_form)
    r.add_get("/api/consultations/{consultation_id}/slots", handle_open_slots)
    r.add_get("/api/consultations/{consultation_id}/beds", handle_open_beds)
    r.add_get("/api/consultations/{consultation_id}/booking", handle_get_booking)
    r.add_put("/api/consultations/{consultation_id}/booking", handle_book)
    r.add_delete("/api/consultations/{consultation_id}/booking", handle_cancel_booking)
    r.add_get("/api/referrals", handle_list_referrals)
    r.add_post("/api/referrals/{referral_id}/tasks/{task_id}/done", handle_task_done)
    r.add_post("/api/referrals/{referral_id}/outcome", handle_outcome)
