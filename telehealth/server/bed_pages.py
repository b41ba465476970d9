"""Administrators publish hospital wards' inpatient beds per day (a form, or a CSV table) and see the pool:
published, reserved for referrals up from the grassroots, booked, released unused."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from telehealth.domain import SPECIALTIES, Role
from telehealth.errors import ErrorCode, TelehealthError, fill
from telehealth.schema import InputError, parse
from telehealth.server import keys
from telehealth.server.auth import actor_of, page
from telehealth.server.forms import beside, integer, text
from telehealth.server.pages import render, see_other, translator
from telehealth.services.beds import BedsInput, BedTableRefused

MAX_CSV_BYTES = 2 * 1024 * 1024
SHOWN_ERRORS = 20


@page(Role.admin)
async def handle_beds_page(request: web.Request) -> web.StreamResponse:
    return await _render(request)


async def _render(request: web.Request, *, errors: list[str] | None = None, status: int = 200) -> web.StreamResponse:
    services = request.app[keys.SERVICES]
    pool = await services.beds.pool(actor_of(request))
    settings = request.app[keys.SETTINGS].slots
    q = request.query
    return render(request, "admin/beds.html", {
        "hospitals": pool.hospitals, "floors": pool.floors, "days": pool.days, "specialties": SPECIALTIES,
        "errors": errors or [], "published": q.get("published"), "reserved": q.get("reserved"),
        "release_hours": settings.release_hours_before, "timezone": settings.timezone,
        "today": services.now().astimezone(settings.tz).date() + dt.timedelta(days=1),
    }, status=status)


@page(Role.admin)
async def handle_publish(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    data = {"hospital_org_id": integer(form, "hospital") or 0, "ward": text(form, "ward"),
            "date": text(form, "date"), "beds": integer(form, "beds") or 0}
    try:
        created, reserved = await request.app[keys.SERVICES].beds.publish(actor_of(request), parse(BedsInput, data))
    except InputError as exc:
        return await _render(request, errors=list(beside(exc, translator(request)).values()), status=400)
    return see_other(f"/admin/beds?published={created}&reserved={reserved}")


@page(Role.admin)
async def handle_import(request: web.Request) -> web.StreamResponse:
    await request.app[keys.SERVICES].beds.hospitals(actor_of(request))
    if not request.content_type.startswith("multipart/"):
        raise TelehealthError(ErrorCode.invalid_input, "send the timetable as a file upload")
    if request.content_length is not None and request.content_length > MAX_CSV_BYTES + 64 * 1024:
        raise TelehealthError(ErrorCode.too_large, "a timetable is limited to {kib} KiB", kib=MAX_CSV_BYTES // 1024)
    upload = (await request.post()).get("file")
    translate = translator(request)
    if not isinstance(upload, web.FileField):
        return await _render(request, errors=[translate("Choose a CSV file to import.")], status=400)
    data = upload.file.read(MAX_CSV_BYTES + 1)
    if len(data) > MAX_CSV_BYTES:
        raise TelehealthError(ErrorCode.too_large, "a timetable is limited to {kib} KiB", kib=MAX_CSV_BYTES // 1024)
    try:
        csv_text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return await _render(request, errors=[translate("The file is not UTF-8 text: save the timetable as CSV UTF-8.")],
                             status=400)
    try:
        created, reserved = await request.app[keys.SERVICES].beds.import_table(actor_of(request), csv_text)
    except BedTableRefused as refused:
        shown = [fill(translate(template), params) for template, params in refused.problems[:SHOWN_ERRORS]]
        if len(refused.problems) > SHOWN_ERRORS:
            shown.append(fill(translate("… and {n} more problems"), {"n": len(refused.problems) - SHOWN_ERRORS}))
        return await _render(request, errors=[translate("Nothing was imported."), *shown], status=400)
    return see_other(f"/admin/beds?published={created}&reserved={reserved}")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/beds", handle_beds_page)
    app.router.add_post("/admin/beds", handle_publish)
    app.router.add_post("/admin/beds/import", handle_import)
