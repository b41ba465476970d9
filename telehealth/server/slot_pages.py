"""Administrators publish hospital outpatient slots (a form, or a CSV timetable) and see the reserved pool:
published, reserved for the grassroots, booked, released unused, per department and day."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from telehealth.domain import SPECIALTIES, Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import quota
from telehealth.records.models import Organisation
from telehealth.server import keys
from telehealth.server.admin_pages import admin_scope
from telehealth.server.api import audit, path_id
from telehealth.server.auth import current_user, page
from telehealth.server.pages import render, see_other

MAX_CSV_BYTES = 2 * 1024 * 1024
MAX_CSV_ROWS = 20_000
CSV_COLUMNS = ("hospital", "department", "date", "time")
SHOWN_ERRORS = 20


@dataclass
class Timetable:
    rows: list[tuple[int, str, dt.datetime, int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def _hospitals(request: web.Request) -> dict[int, Organisation]:
    alliance = await admin_scope(request, current_user(request))
    orgs = await request.app[keys.STORE].list_organisations(alliance)
    return {o.id: o for o in orgs if o.level.is_hospital}


def parse_timetable(text: str, hospitals: dict[int, Organisation], tz: Any) -> Timetable:
    """Check every row of a CSV timetable (columns hospital, department, date, time, and optionally
    duration_min and location); hospital by name, English or Chinese. Errors name their line."""
    out = Timetable()
    by_name = {name.strip().lower(): o.id for o in hospitals.values() for name in (o.name, o.name_zh) if name}
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        out.errors.append(f"line 1: the header needs the columns {', '.join(CSV_COLUMNS)} (missing: {', '.join(missing)})")
        return out
    for line, row in enumerate(reader, start=2):
        if line - 1 > MAX_CSV_ROWS:
            out.errors.append(f"more than {MAX_CSV_ROWS} rows: split the timetable")
            break
        problems = []
        hospital = by_name.get((row.get("hospital") or "").strip().lower())
        if hospital is None:
            problems.append("unknown hospital (or not in your alliance)")
        department = (row.get("department") or "").strip()
        if department not in SPECIALTIES:
            problems.append(f"department must be one of {', '.join(SPECIALTIES)}")
        starts_at = None
        try:
            day = dt.date.fromisoformat((row.get("date") or "").strip())
            at = dt.time.fromisoformat((row.get("time") or "").strip())
            starts_at = dt.datetime.combine(day, at, tz).astimezone(dt.UTC)
        except ValueError:
            problems.append("date and time must look like 2026-12-01 and 08:30")
        minutes = 30
        if (row.get("duration_min") or "").strip():
            try:
                minutes = int(row["duration_min"])
                if not 5 <= minutes <= 240:
                    raise ValueError
            except ValueError:
                problems.append("duration_min must be a whole number of minutes from 5 to 240")
        location = (row.get("location") or "").strip()
        if len(location) > 200:
            problems.append("location is limited to 200 characters")
        if problems:
            out.errors.append(f"line {line}: {'; '.join(problems)}")
        elif hospital is not None and starts_at is not None:
            out.rows.append((hospital, department, starts_at, minutes, location))
    if not out.rows and not out.errors:
        out.errors.append("the file has no slots")
    return out


@page(Role.admin)
async def handle_slots_page(request: web.Request) -> web.StreamResponse:
    return await _render(request)


async def _render(request: web.Request, *, errors: list[str] | None = None, status: int = 200) -> web.StreamResponse:
    hospitals = await _hospitals(request)
    settings = request.app[keys.SETTINGS].slots
    now = dt.datetime.now(dt.UTC)
    start = dt.datetime.combine(now.astimezone(settings.tz).date(), dt.time(), settings.tz).astimezone(dt.UTC)
    days = await request.app[keys.STORE].slot_days(hospital_org_ids=list(hospitals), start=start,
                                                   end=start + dt.timedelta(days=15), tz=settings.tz)
    shares = {h.id: {"floor": round(float(quota.policy_floor(h)) * 100, 1),
                     "share": round(float(quota.reserved_share(h)) * 100, 1)} for h in hospitals.values()}
    q = request.query
    return render(request, "admin/slots.html", {
        "hospitals": list(hospitals.values()), "shares": shares, "days": days, "specialties": SPECIALTIES,
        "errors": errors or [], "published": q.get("published"), "reserved": q.get("reserved"),
        "release_hours": settings.release_hours_before, "timezone": settings.timezone,
        "today": now.astimezone(settings.tz).date() + dt.timedelta(days=1),
    }, status=status)


@page(Role.admin)
async def handle_publish(request: web.Request) -> web.StreamResponse:
    hospitals = await _hospitals(request)
    form = await request.post()
    tz = request.app[keys.SETTINGS].slots.tz
    errors: list[str] = []
    try:
        hospital = int(str(form.get("hospital", "")))
    except ValueError:
        hospital = 0
    if hospital not in hospitals:
        errors.append("Choose a hospital of your alliance.")
    department = str(form.get("department", ""))
    if department not in SPECIALTIES:
        errors.append("Choose a department.")
    starts: list[dt.datetime] = []
    try:
        day = dt.date.fromisoformat(str(form.get("date", "")))
        first = dt.time.fromisoformat(str(form.get("first", "")))
        last = dt.time.fromisoformat(str(form.get("last", "")))
        every = int(str(form.get("every", "30")))
        if not 5 <= every <= 240 or last < first:
            raise ValueError
        at = dt.datetime.combine(day, first, tz)
        while at.time() <= last and at.date() == day and len(starts) < 200:
            starts.append(at.astimezone(dt.UTC))
            at += dt.timedelta(minutes=every)
    except ValueError:
        errors.append("Give a date, a first and a last start time, and minutes between slots (5 to 240).")
    location = str(form.get("location", "")).strip()[:200]
    if errors:
        return await _render(request, errors=errors, status=400)
    created, reserved = await request.app[keys.STORE].publish_slots(hospital, department, starts, duration_min=every,
                                                                    location=location, tz=tz)
    await audit(request, "slots.publish", f"organisation:{hospital}", {"created": created, "reserved": reserved})
    return see_other(f"/admin/slots?published={created}&reserved={reserved}")


@page(Role.admin)
async def handle_import(request: web.Request) -> web.StreamResponse:
    hospitals = await _hospitals(request)
    if not request.content_type.startswith("multipart/"):
        raise TelehealthError(ErrorCode.invalid_input, "send the timetable as a file upload")
    if request.content_length is not None and request.content_length > MAX_CSV_BYTES + 64 * 1024:
        raise TelehealthError(ErrorCode.too_large, f"a timetable is limited to {MAX_CSV_BYTES // 1024} KiB")
    upload = (await request.post()).get("file")
    if not isinstance(upload, web.FileField):
        return await _render(request, errors=["Choose a CSV file to import."], status=400)
    data = upload.file.read(MAX_CSV_BYTES + 1)
    if len(data) > MAX_CSV_BYTES:
        raise TelehealthError(ErrorCode.too_large, f"a timetable is limited to {MAX_CSV_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return await _render(request, errors=["The file is not UTF-8 text: save the timetable as CSV UTF-8."],
                             status=400)
    tz = request.app[keys.SETTINGS].slots.tz
    table = parse_timetable(text, hospitals, tz)
    if table.errors:
        shown = table.errors[:SHOWN_ERRORS]
        if len(table.errors) > SHOWN_ERRORS:
            shown.append(f"… and {len(table.errors) - SHOWN_ERRORS} more lines with problems")
        return await _render(request, errors=["Nothing was imported.", *shown], status=400)
    created, reserved = await request.app[keys.STORE].publish_timetable(table.rows, tz=tz)
    await audit(request, "slots.import", "slots", {"rows": len(table.rows), "created": created, "reserved": reserved})
    return see_other(f"/admin/slots?published={created}&reserved={reserved}")


@page(Role.admin)
async def handle_share(request: web.Request) -> web.StreamResponse:
    hospitals = await _hospitals(request)
    org_id = path_id(request, "org_id")
    if org_id not in hospitals:
        raise TelehealthError(ErrorCode.forbidden, "this hospital is not in your alliance")
    form = await request.post()
    value = str(form.get("share", "")).strip()
    pct: int | None = None
    if value:
        try:
            pct = int(value)
            if not 0 <= pct <= 100:
                raise ValueError
        except ValueError:
            return await _render(request, errors=["The reserved share is a whole percentage from 0 to 100."],
                                 status=400)
    settings = request.app[keys.SETTINGS].slots
    reserved = await request.app[keys.STORE].set_reserved_share(org_id, pct, now=dt.datetime.now(dt.UTC),
                                                                tz=settings.tz)
    await audit(request, "organisation.reserved_share", f"organisation:{org_id}", {"pct": pct})
    return see_other(f"/admin/slots?published=0&reserved={reserved}")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/slots", handle_slots_page)
    app.router.add_post("/admin/slots", handle_publish)
    app.router.add_post("/admin/slots/import", handle_import)
    app.router.add_post("/admin/organisations/{org_id}/reserved-share", handle_share)
