"""Administrators: the session log, filtered and paginated, and one consultation's timeline."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from aiohttp import web

from telehealth.domain import SPECIALTIES, ConsultationState, EndReason, Role, Urgency
from telehealth.records.durations import derive_durations
from telehealth.records.models import CallSession, Consultation, Event
from telehealth.schema import from_query
from telehealth.server import keys
from telehealth.server.api import path_id
from telehealth.server.auth import actor_of, page
from telehealth.server.charts import line_chart
from telehealth.server.exports import csv_writer
from telehealth.server.pages import render
from telehealth.services.oversight import SessionLogQuery

# The session log's query parameters, where they differ from the filter's fields.
LOG_PARAMS = {"start": "from", "end": "to", "clinic_org_id": "clinic", "hospital_org_id": "hospital",
              "specialist_id": "specialist"}


def log_query(request: web.Request) -> SessionLogQuery:
    return from_query(SessionLogQuery, request.query, LOG_PARAMS)


def worst_sample(events: list[Event]) -> dict[str, float] | None:
    """The call's worst quality sample: the highest packet loss, then the longest round trip."""
    samples = [e.data for e in events if e.kind == "quality"]
    if not samples:
        return None
    worst = max(samples, key=lambda d: (float(d.get("loss_pct") or 0), float(d.get("rtt_ms") or 0)))
    return {k: float(worst[k]) for k in ("loss_pct", "rtt_ms", "bitrate_kbps") if isinstance(worst.get(k), (int, float))}


@page(Role.admin)
async def handle_session_log(request: web.Request) -> web.StreamResponse:
    query = log_query(request)
    log = await request.app[keys.SERVICES].oversight.session_log(actor_of(request), query)
    rows: list[dict[str, Any]] = []
    for row in log.rows:
        sessions, events = row.sessions, row.events
        rows.append({"c": row.consultation, "clinic": row.clinic, "durations": derive_durations(events, sessions),
                     "end_reason": sessions[-1].end_reason if sessions else None, "worst": worst_sample(events)})
    orgs = log.organisations
    return render(request, "admin/sessions.html", {
        "rows": rows, "total": log.total, "page": log.page, "pages": log.pages, "filters": dict(request.query),
        "clinics": [o for o in orgs.values() if not o.level.is_hospital], "specialties": SPECIALTIES,
        "hospitals": [o for o in orgs.values() if o.level.is_hospital], "end_reasons": [r.value for r in EndReason],
        "urgencies": [u.value for u in Urgency], "states": [s.value for s in ConsultationState]})


@page(Role.admin)
async def handle_session_detail(request: web.Request) -> web.StreamResponse:
    timeline = await request.app[keys.SERVICES].oversight.timeline(actor_of(request), path_id(request))
    events, sessions = timeline.events, timeline.sessions
    quality = [e for e in events if e.kind == "quality"]
    return render(request, "admin/session.html", {
        "charts": quality_charts(quality, sessions),
        "consultation": timeline.consultation, "events": [e for e in events if e.kind != "quality"],
        "sides": event_sides(timeline.consultation, events, sessions),
        # "Call 2" is the consultation's second call, whatever the session's number in the database.
        "call_numbers": {s.id: n for n, s in enumerate(sorted(sessions, key=lambda s: s.started_at), start=1)},
        "quality": quality, "sessions": sessions, "durations": derive_durations(events, sessions),
        "clinic": timeline.clinic})


def event_sides(consultation: Consultation, events: list[Event], sessions: list[CallSession]) -> dict[int, str]:
    """Which side did each event, so the timeline can say who: the clinic's doctors, else the specialist for
    any other person (the one who took it, or one who was rung), else the server (no actor)."""
    clinic = {consultation.requesting_doctor_id, consultation.accompanying_doctor_id,
              *(s.clinic_user_id for s in sessions)}
    return {e.id: "" if e.actor_id is None else "clinic" if e.actor_id in clinic else "specialist" for e in events}


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


def local_stamp(moment: dt.datetime, tz: dt.tzinfo) -> str:
    """A moment as a spreadsheet reads a date and time: the alliance's local time, 24-hour, no offset."""
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


# created_at is the alliance's local time (the time zone of [slots] tz), as on the pages.
CSV_COLUMNS = ("consultation", "created_at", "clinic", "specialty", "urgency", "state", "waiting_s", "talking_s",
               "sessions", "end_reason")


@page(Role.admin)
async def handle_session_log_csv(request: web.Request) -> web.StreamResponse:
    """The filtered log as CSV, streamed a batch at a time: 100,000 rows never sit in memory at once."""
    # The filters are checked before the first byte: a bad one answers 400, not a broken download.
    orgs, pages = await request.app[keys.SERVICES].oversight.export(actor_of(request), log_query(request))
    tz = request.app[keys.SETTINGS].slots.tz
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="telehealth-sessions.csv"'})
    response.enable_chunked_encoding()
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv_writer(buffer)
    writer.writerow(CSV_COLUMNS)
    async for batch in pages:
        for c, sessions in batch:
            waiting = (c.accepted_at - c.queued_at).total_seconds() if c.accepted_at and c.queued_at else ""
            talking = sum((s.ended_at - s.connected_at).total_seconds() for s in sessions
                          if s.connected_at and s.ended_at)
            writer.writerow((c.id, local_stamp(c.created_at, tz), orgs.get(c.clinic_org_id, ""), c.specialty,
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
