"""Booked consultations over HTTP: consultation hours, booking, the desk's answer, reschedule, cancel, a missed
consultation turned into an on-demand request, and the desks an administrator names."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from telehealth.domain import Role
from telehealth.server import keys
from telehealth.server.api import path_id, read_body
from telehealth.server.auth import actor_of, allow
from telehealth.services.appointments import (
    AnswerInput,
    BookInput,
    CancelInput,
    DeskInput,
    HoursInput,
    RescheduleInput,
    Schedule,
)
from telehealth.views import appointment_view, consultation_view, hours_view


def _one(request: web.Request, appointment: Any) -> web.Response:
    return web.json_response({"appointment": appointment_view(appointment, request.app[keys.SETTINGS].slots.tz)})


def schedule_view(request: web.Request, schedule: Schedule) -> dict[str, Any]:
    tz = request.app[keys.SETTINGS].slots.tz
    return {
        "appointments": [
            {**appointment_view(a, tz, schedule.people, schedule.organisations),
             "consultation": consultation_view(schedule.consultations[a.consultation_id])
             if a.consultation_id in schedule.consultations else None}
            for a in schedule.appointments],
        "hours": [hours_view(h, tz, schedule.people) for h in schedule.hours],
        "desks": [{"hospital_org_id": d.hospital_org_id, "department": d.department} for d in schedule.desks],
    }


@allow(Role.clinic_doctor, Role.specialist)
async def handle_list(request: web.Request) -> web.StreamResponse:
    """A clinic: its booked consultations and the hours it may book. A specialist: theirs, those of the desks
    they keep, and the requested windows of their department."""
    schedule = await request.app[keys.SERVICES].appointments.schedule(actor_of(request))
    return web.json_response(schedule_view(request, schedule))


@allow(Role.clinic_doctor)
async def handle_book(request: web.Request) -> web.StreamResponse:
    appointments, actor = request.app[keys.SERVICES].appointments, actor_of(request)
    body = await read_body(request, BookInput, lambda: appointments.authorize_book(actor))
    booked = await appointments.book(actor, body)
    return web.json_response({"appointment": appointment_view(booked, request.app[keys.SETTINGS].slots.tz)},
                             status=201)


@allow(Role.clinic_doctor, Role.specialist)
async def handle_hours(request: web.Request) -> web.StreamResponse:
    """Consultation hours from now on: at the clinic's partner hospitals (in `department` if given), or the
    specialist's own."""
    hours = await request.app[keys.SERVICES].appointments.open_hours(actor_of(request),
                                                                     request.query.get("department"))
    tz = request.app[keys.SETTINGS].slots.tz
    return web.json_response({"hours": [hours_view(h, tz) for h in hours]})


@allow(Role.specialist)
async def handle_publish_hours(request: web.Request) -> web.StreamResponse:
    appointments, actor = request.app[keys.SERVICES].appointments, actor_of(request)
    body = await read_body(request, HoursInput)
    hours = await appointments.publish_hours(actor, body)
    return web.json_response({"hours": hours_view(hours, request.app[keys.SETTINGS].slots.tz)}, status=201)


@allow(Role.specialist)
async def handle_withdraw_hours(request: web.Request) -> web.StreamResponse:
    await request.app[keys.SERVICES].appointments.withdraw_hours(actor_of(request), path_id(request, "hours_id"))
    return web.json_response({"withdrawn": True})


@allow(Role.specialist)
async def handle_answer(request: web.Request) -> web.StreamResponse:
    services, actor, aid = request.app[keys.SERVICES], actor_of(request), path_id(request, "appointment_id")
    body = await read_body(request, AnswerInput, lambda: services.access.appointment_hospital(actor, aid))
    return _one(request, await services.appointments.answer(actor, aid, body))


@allow(Role.clinic_doctor)
async def handle_accept(request: web.Request) -> web.StreamResponse:
    appointment = await request.app[keys.SERVICES].appointments.accept_proposal(
        actor_of(request), path_id(request, "appointment_id"))
    return _one(request, appointment)


@allow(Role.clinic_doctor, Role.specialist)
async def handle_reschedule(request: web.Request) -> web.StreamResponse:
    services, actor, aid = request.app[keys.SERVICES], actor_of(request), path_id(request, "appointment_id")
    body = await read_body(request, RescheduleInput, lambda: services.access.appointment_party(actor, aid))
    return _one(request, await services.appointments.reschedule(actor, aid, body))


@allow(Role.clinic_doctor, Role.specialist)
async def handle_cancel(request: web.Request) -> web.StreamResponse:
    services, actor, aid = request.app[keys.SERVICES], actor_of(request), path_id(request, "appointment_id")
    body = await read_body(request, CancelInput, lambda: services.access.appointment_party(actor, aid))
    return _one(request, await services.appointments.cancel(actor, aid, body))


@allow(Role.clinic_doctor)
async def handle_on_demand(request: web.Request) -> web.StreamResponse:
    appointment = await request.app[keys.SERVICES].appointments.on_demand(
        actor_of(request), path_id(request, "appointment_id"))
    return _one(request, appointment)


@allow(Role.admin)
async def handle_grant_desk(request: web.Request) -> web.StreamResponse:
    services, actor = request.app[keys.SERVICES], actor_of(request)
    body = await read_body(request, DeskInput, lambda: services.access.admin_alliance(actor))
    return web.json_response({"granted": await services.appointments.grant_desk(actor, body)})


@allow(Role.admin)
async def handle_revoke_desk(request: web.Request) -> web.StreamResponse:
    services, actor = request.app[keys.SERVICES], actor_of(request)
    body = await read_body(request, DeskInput, lambda: services.access.admin_alliance(actor))
    return web.json_response({"revoked": await services.appointments.revoke_desk(actor, body)})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/appointments", handle_list)
    r.add_post("/api/appointments", handle_book)
    r.add_post("/api/appointments/{appointment_id}/answer", handle_answer)
    r.add_post("/api/appointments/{appointment_id}/accept", handle_accept)
    r.add_post("/api/appointments/{appointment_id}/reschedule", handle_reschedule)
    r.add_post("/api/appointments/{appointment_id}/cancel", handle_cancel)
    r.add_post("/api/appointments/{appointment_id}/on-demand", handle_on_demand)
    r.add_get("/api/consultation-hours", handle_hours)
    r.add_post("/api/consultation-hours", handle_publish_hours)
    r.add_delete("/api/consultation-hours/{hours_id}", handle_withdraw_hours)
    r.add_put("/api/admin/desks", handle_grant_desk)
    r.add_post("/api/admin/desks/revoke", handle_revoke_desk)
