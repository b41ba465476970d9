"""Policy statistics for administrators (a dashboard page and the same figures as JSON), and the duty
roster of senior doctors at grassroots institutions that the coverage figure counts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from telehealth.domain import SPECIALTIES, OrgLevel, Role, Title, Urgency
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import quota, stats
from telehealth.records.models import Organisation
from telehealth.server import keys
from telehealth.server.admin_pages import admin_scope
from telehealth.server.api import audit, path_id
from telehealth.server.auth import allow, current_user, page
from telehealth.server.charts import bar_chart
from telehealth.server.pages import render, see_other
from telehealth.server.query import query_date

DEFAULT_DAYS = 28
MAX_DAYS = 366
MAX_DUTY_DAYS = 92


def _period(request: web.Request, tz: Any) -> tuple[dt.date, dt.date]:
    """[start, end) in local days from `from` and `to` (inclusive) in the query; the last four weeks by default."""
    today = dt.datetime.now(tz).date()
    last = query_date(request.query.get("to")) or today
    first = query_date(request.query.get("from")) or last - dt.timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        raise TelehealthError(ErrorCode.invalid_input, "`to` comes before `from`")
    if (last - first).days >= MAX_DAYS:
        raise TelehealthError(ErrorCode.invalid_input, f"a period is at most {MAX_DAYS} days")
    return first, last + dt.timedelta(days=1)


async def compute_for(request: web.Request) -> dict[str, Any]:
    user = current_user(request)
    alliance = await admin_scope(request, user)
    store = request.app[keys.STORE]
    settings = request.app[keys.SETTINGS]
    tz = settings.slots.tz
    start, end = _period(request, tz)
    start_at, _ = quota.day_bounds(start, tz)
    end_at, _ = quota.day_bounds(end, tz)
    consultations, events, sessions = await store.statistics_rows(alliance_id=alliance, start=start_at, end=end_at)
    everyone = await store.list_organisations()
    scope = {o.id for o in everyone if alliance is None or o.alliance_id == alliance}
    hospitals = [o.id for o in everyone if o.id in scope and o.level.is_hospital]
    data = stats.StatsInput(
        start=start, end=end, tz=tz, sla_s={u.value: settings.matching.sla(u.value) for u in Urgency},
        consultations=consultations, events=events, sessions=sessions, organisations=everyone,
        users=await store.list_all_users(), agreements=await store.list_agreements(None),
        duty_days=await store.list_duty_days(org_ids=scope, start=start, end=end),
        presence_days=await store.list_presence_days(start, end),
        slot_days=await store.slot_days(hospital_org_ids=hospitals, start=start_at, end=end_at, tz=tz),
        scope_org_ids=scope)
    return stats.compute(data)


@allow(Role.admin)
async def handle_statistics_json(request: web.Request) -> web.StreamResponse:
    figures = await compute_for(request)
    await audit(request, "admin.statistics", "statistics", {"from": figures["period"]["from"],
                                                            "to": figures["period"]["to"], "format": "json"})
    return web.json_response(figures)


async def _roster(request: web.Request) -> tuple[dict[int, Organisation], list[Any]]:
    """Grassroots institutions the administrator manages, and the clinicians of attending title or above
    in their reach (their own staff and the hospitals' specialists)."""
    alliance = await admin_scope(request, current_user(request))
    orgs = {o.id: o for o in await request.app[keys.STORE].list_organisations(alliance)}
    people = [u for u in await request.app[keys.STORE].list_users(organisation_ids=list(orgs))
              if u.role is not Role.admin and u.title is not None and u.title.rank >= Title.attending.rank]
    grassroots = {i: o for i, o in orgs.items() if o.level in (OrgLevel.village_clinic, OrgLevel.township_centre)}
    return grassroots, people


async def _page(request: web.Request, *, errors: list[str] | None = None, status: int = 200) -> web.Response:
    figures = await compute_for(request)
    grassroots, people = await _roster(request)
    tz = request.app[keys.SETTINGS].slots.tz
    start = dt.date.fromisoformat(figures["period"]["from"])
    end = dt.date.fromisoformat(figures["period"]["to"]) + dt.timedelta(days=1)
    duty = await request.app[keys.STORE].list_duty_days(org_ids=list(grassroots), start=start, end=end)
    names = {u.id: u.display_name for u in people}
    await audit(request, "admin.statistics", "statistics", {"from": figures["period"]["from"],
                                                            "to": figures["period"]["to"], "format": "html"})
    by_day = figures["volume"]["by_day"]
    return render(request, "admin/statistics.html", {
        "f": figures, "chart": bar_chart([(d["date"][5:], d["total"]) for d in by_day]),
        "grassroots": grassroots, "people": people, "names": names, "duty": duty, "errors": errors or [],
        "urgencies": [u.value for u in Urgency], "specialties": SPECIALTIES,
        "today": dt.datetime.now(tz).date(), "query": dict(request.query),
        "saved": request.query.get("saved"),
    }, status=status)


@page(Role.admin)
async def handle_statistics_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@page(Role.admin)
async def handle_add_duty(request: web.Request) -> web.StreamResponse:
    grassroots, people = await _roster(request)
    form = await request.post()
    errors: list[str] = []
    try:
        user_id = int(str(form.get("user", "")))
    except ValueError:
        user_id = 0
    try:
        org_id = int(str(form.get("org", "")))
    except ValueError:
        org_id = 0
    if user_id not in {u.id for u in people}:
        errors.append("Choose a clinician of attending title or above.")
    if org_id not in grassroots:
        errors.append("Choose a grassroots institution of your alliance.")
    weekdays = {int(str(v)) for v in form.getall("weekday", []) if str(v).isdigit() and 0 <= int(str(v)) <= 6}
    days: list[dt.date] = []
    try:
        first = dt.date.fromisoformat(str(form.get("first", "")))
        last = dt.date.fromisoformat(str(form.get("last", "") or form.get("first", "")))
        if last < first or (last - first).days >= MAX_DUTY_DAYS:
            raise ValueError
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        days = [d for d in days if not weekdays or d.weekday() in weekdays]
        if not days:
            raise ValueError
    except ValueError:
        errors.append("Give a first and a last date (at most 92 days apart) and the weekdays of duty.")
    if errors:
        return await _page(request, errors=errors, status=400)
    added = await request.app[keys.STORE].insert_duty_days(user_id, org_id, days, created_by=current_user(request).id,
                                                          now=dt.datetime.now(dt.UTC))
    await audit(request, "duty.add", f"organisation:{org_id}", {"user": user_id, "days": added})
    return see_other(f"/admin/statistics?saved={added}")


@page(Role.admin)
async def handle_delete_duty(request: web.Request) -> web.StreamResponse:
    grassroots, _ = await _roster(request)
    duty_id = path_id(request, "duty_id")
    if not await request.app[keys.STORE].delete_duty_day(duty_id, list(grassroots)):
        raise TelehealthError(ErrorCode.not_found, "no such duty day in your alliance")
    await audit(request, "duty.delete", f"duty:{duty_id}")
    return see_other("/admin/statistics?saved=0")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/statistics", handle_statistics_page)
    app.router.add_get("/api/admin/statistics", handle_statistics_json)
    app.router.add_post("/admin/duty", handle_add_duty)
    app.router.add_post("/admin/duty/{duty_id}/delete", handle_delete_duty)
