"""The booked consultations' pages: the clinic books and follows its bookings; the specialist (or the department's
desk) publishes hours and sees the booked and requested consultations, confirms or proposes. The pages act
through the JSON API and hear reminders and changes over the WebSocket."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from telehealth.domain import SPECIALTIES, Role, Title
from telehealth.server import keys
from telehealth.server.auth import actor_of, page
from telehealth.server.pages import render
from telehealth.services.appointments import Schedule, Status

# Shown under "soon" on the page: what starts within the day-before reminder's reach.
OPEN = (Status.requested, Status.proposed, Status.booked, Status.started, Status.no_show)


def _context(request: web.Request, schedule: Schedule) -> dict[str, Any]:
    services = request.app[keys.SERVICES]
    tz = request.app[keys.SETTINGS].slots.tz
    now = services.now()
    ahead = dt.timedelta(seconds=request.app[keys.SETTINGS].appointments.remind_day_before_s)
    soon = [a for a in schedule.appointments if a.status in (Status.booked, Status.started) and a.starts_at
            and now - dt.timedelta(hours=1) <= a.starts_at <= now + ahead]
    return {
        "schedule": schedule, "open": [a for a in schedule.appointments if a.status in OPEN],
        "past": [a for a in schedule.appointments if a.status not in OPEN], "soon": soon,
        "local": lambda at: at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if at else "—",
        "specialties": SPECIALTIES, "titles": list(Title), "timezone": request.app[keys.SETTINGS].slots.timezone,
    }


@page(Role.clinic_doctor)
async def handle_clinic_appointments(request: web.Request) -> web.StreamResponse:
    schedule = await request.app[keys.SERVICES].appointments.schedule(actor_of(request))
    return render(request, "clinic/appointments.html", _context(request, schedule))


@page(Role.specialist)
async def handle_specialist_appointments(request: web.Request) -> web.StreamResponse:
    schedule = await request.app[keys.SERVICES].appointments.schedule(actor_of(request))
    return render(request, "specialist/appointments.html", _context(request, schedule))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/clinic/appointments", handle_clinic_appointments)
    app.router.add_get("/specialist/appointments", handle_specialist_appointments)
