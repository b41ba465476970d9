"""Administrators publish hospital outpatient slots (a form, or a CSV timetable), set the reserved shares (a
hospital's, and an alliance's rule for the hospitals that do not lead it; on the page and over the JSON
API) and see the reserved pool: published, reserved for the grassroots, booked, released unused."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from telehealth.domain import SPECIALTIES, Role
from telehealth.errors import ErrorCode, TelehealthError, fill
from telehealth.records.models import Alliance
from telehealth.schema import InputError, parse
from telehealth.server import keys
from telehealth.server.api import path_id, read_body
from telehealth.server.auth import actor_of, allow, page
from telehealth.server.forms import beside, integer, text
from telehealth.server.pages import render, see_other, translator
from telehealth.services.slots import PublishInput, ShareInput, TimetableRefused

MAX_CSV_BYTES = 2 * 1024 * 1024
SHOWN_ERRORS = 20


@page(Role.admin)
async def handle_slots_page(request: web.Request) -> web.StreamResponse:
    return await _render(request)


async def _render(request: web.Request, *, errors: list[str] | None = None, status: int = 200) -> web.StreamResponse:
    pool = await request.app[keys.SERVICES].slots.pool(actor_of(request))
    settings = request.app[keys.SETTINGS].slots
    q = request.query
    return render(request, "admin/slots.html", {
        "hospitals": pool.hospitals, "shares": pool.shares, "alliances": pool.alliances, "days": pool.days,
        "specialties": SPECIALTIES, "every_hospital": settings.floor_for_every_hospital,
        "errors": errors or [], "published": q.get("published"), "reserved": q.get("reserved"),
        "release_hours": settings.release_hours_before, "timezone": settings.timezone,
        "today": request.app[keys.SERVICES].now().astimezone(settings.tz).date() + dt.timedelta(days=1),
    }, status=status)


@page(Role.admin)
async def handle_publish(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    data = {"hospital_org_id": integer(form, "hospital") or 0, "department": text(form, "department"),
            "date": text(form, "date"), "first": text(form, "first"), "last": text(form, "last"),
            "every": integer(form, "every") or 30, "location": text(form, "location")}
    try:
        created, reserved = await request.app[keys.SERVICES].slots.publish(actor_of(request),
                                                                           parse(PublishInput, data))
    except InputError as exc:
        return await _render(request, errors=list(beside(exc, translator(request)).values()), status=400)
    return see_other(f"/admin/slots?published={created}&reserved={reserved}")


@page(Role.admin)
async def handle_import(request: web.Request) -> web.StreamResponse:
    await request.app[keys.SERVICES].slots.hospitals(actor_of(request))
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
        created, reserved = await request.app[keys.SERVICES].slots.import_timetable(actor_of(request), csv_text)
    except TimetableRefused as refused:
        shown = [fill(translate(template), params) for template, params in refused.problems[:SHOWN_ERRORS]]
        if len(refused.problems) > SHOWN_ERRORS:
            shown.append(fill(translate("… and {n} more problems"), {"n": len(refused.problems) - SHOWN_ERRORS}))
        return await _render(request, errors=[translate("Nothing was imported."), *shown], status=400)
    return see_other(f"/admin/slots?published={created}&reserved={reserved}")


@page(Role.admin)
async def handle_share(request: web.Request) -> web.StreamResponse:
    org_id = path_id(request, "org_id")
    slots, actor = request.app[keys.SERVICES].slots, actor_of(request)
    await slots.managed_hospital(actor, org_id)
    form = await request.post()
    try:
        body = parse(ShareInput, {"pct": integer(form, "share")})
    except InputError:
        translate = translator(request)
        return await _render(request, errors=[translate("The reserved share is a whole percentage from 0 to 100.")],
                             status=400)
    _, reserved = await slots.set_share(actor, org_id, body)
    return see_other(f"/admin/slots?published=0&reserved={reserved}")


@page(Role.admin)
async def handle_member_share(request: web.Request) -> web.StreamResponse:
    alliance_id = path_id(request, "alliance_id")
    slots, actor = request.app[keys.SERVICES].slots, actor_of(request)
    form = await request.post()
    try:
        body = parse(ShareInput, {"pct": integer(form, "share")})
    except InputError:
        translate = translator(request)
        return await _render(request, errors=[translate("The reserved share is a whole percentage from 0 to 100.")],
                             status=400)
    _, reserved = await slots.set_member_share(actor, alliance_id, body)
    return see_other(f"/admin/slots?published=0&reserved={reserved}")


# -- the same over the JSON API -------------------------------------------------------------------------


def _alliance_view(alliance: Alliance) -> dict[str, Any]:
    return {"id": alliance.id, "name": alliance.name, "name_zh": alliance.name_zh, "kind": alliance.kind,
            "member_share_pct": alliance.member_share_pct}


@allow(Role.admin)
async def handle_shares_json(request: web.Request) -> web.StreamResponse:
    slots, actor = request.app[keys.SERVICES].slots, actor_of(request)
    shares = await slots.shares(actor)
    alliances = await slots.managed_alliances(actor)
    return web.json_response({"hospitals": [s.view() for s in shares],
                              "alliances": [_alliance_view(a) for a in alliances.values()],
                              "floor_for_every_hospital": request.app[keys.SETTINGS].slots.floor_for_every_hospital})


@allow(Role.admin)
async def handle_set_share_json(request: web.Request) -> web.StreamResponse:
    org_id = path_id(request, "org_id")
    slots, actor = request.app[keys.SERVICES].slots, actor_of(request)
    body = await read_body(request, ShareInput, lambda: slots.managed_hospital(actor, org_id))
    share, reserved = await slots.set_share(actor, org_id, body)
    return web.json_response({"hospital": share.view(), "newly_reserved": reserved})


@allow(Role.admin)
async def handle_set_member_share_json(request: web.Request) -> web.StreamResponse:
    alliance_id = path_id(request, "alliance_id")
    slots, actor = request.app[keys.SERVICES].slots, actor_of(request)
    body = await read_body(request, ShareInput, lambda: slots.managed_alliance(actor, alliance_id))
    alliance, reserved = await slots.set_member_share(actor, alliance_id, body)
    return web.json_response({"alliance": _alliance_view(alliance), "newly_reserved": reserved})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/slots", handle_slots_page)
    app.router.add_post("/admin/slots", handle_publish)
    app.router.add_post("/admin/slots/import", handle_import)
    app.router.add_post("/admin/organisations/{org_id}/reserved-share", handle_share)
    app.router.add_post("/admin/alliances/{alliance_id}/member-share", handle_member_share)
    app.router.add_get("/api/admin/reserved-shares", handle_shares_json)
    app.router.add_put("/api/admin/organisations/{org_id}/reserved-share", handle_set_share_json)
    app.router.add_put("/api/admin/alliances/{alliance_id}/member-share", handle_set_member_share_json)
