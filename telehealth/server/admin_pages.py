"""Administrators: the session log, filtered and paginated, and one consultation's timeline."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from aiohttp import web

from telehealth.domain import SPECIALTIES, ConsultationState, EndReason, Role, Urgency
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.durations import derive_durations
from telehealth.records.models import CallSession, Event, User
from telehealth.server import keys
from telehealth.server.api import audit, get_visible_consultation, path_id
from telehealth.server.auth import current_user, page
from telehealth.server.charts import line_chart
from telehealth.server.exports import csv_writer
from telehealth.server.pages import render
from telehealth.server.query import query_day
from telehealth.server.query import query_number as _int

PAGE_SIZE = 50


async def admin_scope(request: web.Request, user: User) -> int | None:
    """The alliance an administrator sees; None for a system administrator (every alliance)."""
    if user.is_system_admin:
        return None
    org = await request.app[keys.STORE].get_organisation(user.organisation_id) if user.organisation_id else None
    if org is None or org.alliance_id is None:
        raise TelehealthError(ErrorCode.forbidden, "this administrator account belongs to no alliance")
    return org.alliance_id


def _filters(request: web.Request) -> dict[str, Any]:
    """The session log's filters from the query string, checked."""
    q = request.query
    specialty = q.get("specialty") or None
    urgency = q.get("urgency") or None
    state = q.get("state") or None
    if specialty not in (None, *SPECIALTIES) or urgency not in (None, *(u.value for u in Urgency)) or \
            state not in (None, *(s.value for s in ConsultationState)):
        raise TelehealthError(ErrorCode.invalid_input, "unknown specialty, urgency or state in the filter")
    end_reason = q.get("end_reason") or None
    if end_reason not in (None, *(r.value for r in EndReason)):
        raise TelehealthError(ErrorCode.invalid_input, "unknown end reason in the filter")
    end = query_day(q.get("to"))
    return {"start": query_day(q.get("from")), "end": end + dt.timedelta(days=1) if end else None,
            "clinic_org_id": _int(q.get("clinic")), "specialist_id": _int(q.get("specialist")),
            "specialty": specialty, "urgency": urgency, "state": state,
            "hospital_org_id": _int(q.get("hospital")), "end_reason": end_reason}


def worst_sample(events: list[Event]) -> dict[str, float] | None:
    """The call's worst quality sample: the highest packet loss, then the longest round trip."""
    samples = [e.data for e in events if e.kind == "quality"]
    if not samples:
        return None
    worst = max(samples, key=lambda d: (float(d.get("loss_pct") or 0), float(d.get("rtt_ms") or 0)))
    return {k: float(worst[k]) for k in ("loss_pct", "rtt_ms", "bitrate_kbps") if isinstance(worst.get(k), (int, float))}


@page(Role.admin)
async def handle_session_log(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    alliance = await admin_scope(request, user)
    store = request.app[keys.STORE]
    q = request.query
    page_no = max(1, _int(q.get("page")) or 1)
    consultations, total = await store.search_consultations(
        alliance_id=alliance, limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE, **_filters(request))
    orgs = {o.id: o for o in await store.list_organisations(alliance)}
    rows: list[dict[str, Any]] = []
    for c in consultations:
        sessions = await store.list_call_sessions(c.id)
        events = await store.list_events(c.id)
        durations = derive_durations(events, sessions)
        rows.append({"c": c, "clinic": orgs.get(c.clinic_org_id), "durations": durations,
                     "end_reason": sessions[-1].end_reason if sessions else None, "worst": worst_sample(events)})
    await audit(request, "admin.session_log", "consultations", {"page": page_no, "results": len(rows)})
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    return render(request, "admin/sessions.html", {
        "rows": rows, "total": total, "page": page_no, "pages": pages, "filters": dict(q),
        "clinics": [o for o in orgs.values() if not o.level.is_hospital], "specialties": SPECIALTIES,
        "hospitals": [o for o in orgs.values() if o.level.is_hospital], "end_reasons": [r.value for r in EndReason],
        "urgencies": [u.value for u in Urgency], "states": [s.value for s in ConsultationState]})


@page(Role.admin)
async def handle_session_detail(request: web.Request) -> web.StreamResponse:
    consultation = await get_visible_consultation(request, path_id(request))
    store = request.app[keys.STORE]
    events = await store.list_events(consultation.id)
    sessions = await store.list_call_sessions(consultation.id)
    await audit(request, "admin.session_detail", f"consultation:{consultation.id}")
    quality = [e for e in events if e.kind == "quality"]
    return render(request, "admin/session.html", {
        "charts": quality_charts(quality, sessions),
        "consultation": consultation, "events": [e for e in events if e.kind != "quality"], "quality": quality,
        "sessions": sessions, "durations": derive_durations(events, sessions),
        "clinic": await store.get_organisation(consultation.clinic_org_id)})


QUALITY_METRICS = (("rtt_ms", "ms"), ("loss_pct", "%"), ("bitrate_kbps", "kbit/s"))


def quality_charts(quality: list[Event], sessions: list[CallSession]) -> dict[str, Any]:
    """RTT, loss and bitrate over the call, one line per side (as each side's browser measured what it
    received)."""
    if not quality:
        return {}
    start = quality[0].at
    clinic_ids = {s.clinic_user_id for s in sessions}
    charts: dict[str, Any] = {}
    for metric, unit in QUALITY_METRICS:
        series: dict[str, list[tuple[float, float]]] = {"clinic": [], "specialist": []}
        for e in quality:
            value = e.data.get(metric)
            if isinstance(value, (int, float)):
                side = "clinic" if e.actor_id in clinic_ids else "specialist"
                series[side].append(((e.at - start).total_seconds(), float(value)))
        charts[metric] = line_chart(series, unit=unit)
    return charts


CSV_COLUMNS = ("consultation", "created_at", "clinic", "specialty", "urgency", "state", "waiting_s", "talking_s",
               "sessions", "end_reason")


@page(Role.admin)
async def handle_session_log_csv(request: web.Request) -> web.StreamResponse:
    """The filtered log as CSV, streamed a batch at a time: 100,000 rows never sit in memory at once."""
    user = current_user(request)
    alliance = await admin_scope(request, user)
    filters = _filters(request)
    store = request.app[keys.STORE]
    orgs = {o.id: o.name for o in await store.list_organisations(alliance)}
    await audit(request, "admin.export_csv", "consultations", {k: str(v) for k, v in filters.items() if v})
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="telehealth-sessions.csv"'})
    response.enable_chunked_encoding()
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv_writer(buffer)
    writer.writerow(CSV_COLUMNS)
    async for batch in store.iter_consultation_pages(alliance_id=alliance, **filters):
        for c, sessions in batch:
            waiting = (c.accepted_at - c.queued_at).total_seconds() if c.accepted_at and c.queued_at else ""
            talking = sum((s.ended_at - s.connected_at).total_seconds() for s in sessions
                          if s.connected_at and s.ended_at)
            writer.writerow((c.id, c.created_at.isoformat(), orgs.get(c.clinic_org_id, ""), c.specialty,
                             c.urgency.value, c.state.value, waiting, round(talking, 1), len(sessions),
                             sessions[-1].end_reason or "" if sessions else ""))
        await response.write(buffer.getvalue().encode())
        buffer.seek(0)
        buffer.truncate()
    await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/consultations", handle_session_log)
    app.router.add_get("/admin/consultations.csv", handle_session_log_csv)
    app.router.add_get("/admin/consultations/{consultation_id}", handle_session_detail)
