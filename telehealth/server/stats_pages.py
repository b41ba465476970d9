"""Policy statistics for administrators (a dashboard page and the same figures as JSON), and the duty
roster of senior doctors at grassroots institutions that the coverage figure counts."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from telehealth.domain import SPECIALTIES, Role, Urgency
from telehealth.schema import InputError, from_query, parse
from telehealth.server import keys
from telehealth.server.api import path_id
from telehealth.server.auth import actor_of, allow, page
from telehealth.server.charts import bar_chart
from telehealth.server.forms import beside, integer, text
from telehealth.server.pages import render, see_other, translator
from telehealth.services.oversight import DutyInput, PeriodQuery


def _period(request: web.Request) -> PeriodQuery:
    return from_query(PeriodQuery, request.query, {"start": "from", "end": "to"})


@allow(Role.admin)
async def handle_statistics_json(request: web.Request) -> web.StreamResponse:
    figures = await request.app[keys.SERVICES].oversight.statistics(actor_of(request), _period(request),
                                                                    shown_as="json")
    return web.json_response(figures)


async def _page(request: web.Request, *, errors: list[str] | None = None, status: int = 200) -> web.Response:
    oversight, actor = request.app[keys.SERVICES].oversight, actor_of(request)
    figures = await oversight.statistics(actor, _period(request), shown_as="html")
    start = dt.date.fromisoformat(figures["period"]["from"])
    end = dt.date.fromisoformat(figures["period"]["to"]) + dt.timedelta(days=1)
    roster = await oversight.roster(actor, start, end)
    by_day = figures["volume"]["by_day"]
    return render(request, "admin/statistics.html", {
        "f": figures, "chart": bar_chart([(d["date"], d["total"]) for d in by_day]),
        "grassroots": roster.grassroots, "people": roster.people,
        "names": {u.id: u.display_name for u in roster.people}, "duty": roster.duty, "errors": errors or [],
        "urgencies": [u.value for u in Urgency], "specialties": SPECIALTIES,
        "today": request.app[keys.SERVICES].now().astimezone(request.app[keys.SETTINGS].slots.tz).date(),
        "query": dict(request.query), "saved": request.query.get("saved"),
    }, status=status)


@page(Role.admin)
async def handle_statistics_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@page(Role.admin)
async def handle_add_duty(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    weekdays = [int(str(v)) if str(v).isdigit() else str(v) for v in form.getall("weekday", [])]
    data = {"user_id": integer(form, "user") or 0, "org_id": integer(form, "org") or 0,
            "first": text(form, "first"), "last": text(form, "last"), "weekdays": weekdays}
    translate = translator(request)
    try:
        body = parse(DutyInput, data)
        added = await request.app[keys.SERVICES].oversight.add_duty(actor_of(request), body)
    except InputError as exc:
        return await _page(request, errors=list(beside(exc, translate).values()), status=400)
    return see_other(f"/admin/statistics?saved={added}")


@page(Role.admin)
async def handle_delete_duty(request: web.Request) -> web.StreamResponse:
    await request.app[keys.SERVICES].oversight.delete_duty(actor_of(request), path_id(request, "duty_id"))
    return see_other("/admin/statistics?saved=0")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/statistics", handle_statistics_page)
    app.router.add_get("/api/admin/statistics", handle_statistics_json)
    app.router.add_post("/admin/duty", handle_add_duty)
    app.router.add_post("/admin/duty/{duty_id}/delete", handle_delete_duty)
