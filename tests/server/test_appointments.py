"""Booked consultations over HTTP and WebSocket: hours, booking with a named specialist or a department (the
on-demand eligibility rules), the desk's answer to a requested window, reschedule and cancel with reasons
(audited), reminders and the start under a controlled clock, the call joined as any other, and no-shows booked
again or turned into on-demand requests. On SQLite, and on PostgreSQL when configured."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestServer

from telehealth.domain import ConsultationState
from telehealth.records.db import create_engine, migrate
from telehealth.records.store import Store
from telehealth.server import keys
from telehealth.services import Services
from tests.conftest import make_settings
from tests.records.test_notes import CREATE, api
from tests.support.wsclient import Node, serve

TZ = ZoneInfo("Asia/Shanghai")
CITY = "Qingshan First People's Hospital"
CARDIO = {**CREATE, "specialty": "cardiology", "chief_complaint": "chest pain on exertion"}


@pytest.fixture
async def node(tmp_path: Path, database_url: str) -> AsyncIterator[Node]:
    if database_url.startswith("postgresql"):
        # The server migrates only its embedded database by itself.
        engine = create_engine(database_url)
        await migrate(engine)
        await engine.dispose()
    async with serve(make_settings(tmp_path, database_url=database_url)) as n:
        yield n


def services_of(node: Node) -> Services:
    assert isinstance(node.server, TestServer)
    services: Services = node.server.app[keys.SERVICES]
    return services


def store_of(node: Node) -> Store:
    return services_of(node).store


def day_after_tomorrow(hour: int, minute: int = 0) -> dt.datetime:
    """A local time two days from now: far enough that the server's own sweep leaves it alone."""
    day = dt.datetime.now(TZ).date() + dt.timedelta(days=2)
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ)


def local(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M")


async def hours(node: Node, user: str, start: dt.datetime, end: dt.datetime, department: str = "cardiology",
                **extra: Any) -> dict[str, Any]:
    status, body = await api(node, "POST", "/api/consultation-hours", user,
                             {"starts_at": local(start), "ends_at": local(end), "department": department, **extra})
    assert status == 201, body
    return body["hours"]  # type: ignore[no-any-return]


async def book(node: Node, user: str = "village1", request: dict[str, Any] | None = None,
               **fields: Any) -> tuple[int, Any]:
    return await api(node, "POST", "/api/appointments", user, {"request": request or CARDIO, **fields})


async def user_id(node: Node, username: str) -> int:
    user = await store_of(node).get_user_by_username(username)
    assert user is not None
    return user.id


async def test_a_named_booking_is_reminded_started_and_joined_like_an_on_demand_call(node: Node) -> None:
    chief = await user_id(node, "cardio.chief")
    nine, noon = day_after_tomorrow(9), day_after_tomorrow(12)
    published = await hours(node, "cardio.chief", nine, noon)
    assert published["local_start"] == nine.strftime("%Y-%m-%d 09:00")
    # The clinic sees the hours at its partner hospitals.
    status, body = await api(node, "GET", "/api/consultation-hours?department=cardiology", "village1")
    assert status == 200 and [h["id"] for h in body["hours"]] == [published["id"]]
    # Outside the hours, and without the patient's consent, nothing is booked.
    status, body = await book(node, specialist_id=chief, starts_at=local(day_after_tomorrow(13)))
    assert status == 409 and body["error"]["code"] == "time_taken"
    no_consent = {k: v for k, v in CARDIO.items() if k != "consent"}
    status, body = await book(node, request=no_consent, specialist_id=chief, starts_at=local(day_after_tomorrow(10)))
    assert status == 400 and "consent" in body["error"]["message_en"]
    # The on-demand rules: the specialty, the title, the agreement.
    status, body = await book(node, request={**CARDIO, "specialty": "neurology"}, specialist_id=chief,
                              starts_at=local(day_after_tomorrow(10)))
    assert status == 403 and body["error"]["code"] == "not_eligible"
    med = await user_id(node, "med.assoc")
    await hours(node, "med.assoc", nine, noon)
    status, body = await book(node, request={**CARDIO, "min_title": "chief"}, specialist_id=med,
                              starts_at=local(day_after_tomorrow(10)))
    assert status == 403 and body["error"]["code"] == "not_eligible"
    status, body = await book(node, "songxi.village", specialist_id=chief, starts_at=local(day_after_tomorrow(10)))
    assert status == 403 and body["error"]["code"] == "not_eligible"

    clinic = await node.connect("village1")
    specialist = await node.connect("cardio.chief")
    ten = day_after_tomorrow(10)
    status, body = await book(node, specialist_id=chief, starts_at=local(ten))
    assert status == 201, body
    booked = body["appointment"]
    assert (booked["status"], booked["specialist_id"], booked["local_time"]) == ("booked", chief,
                                                                                ten.strftime("%Y-%m-%d 10:00"))
    await clinic.event("appointment", appointment_id=booked["id"], status="booked")
    await specialist.event("appointment", appointment_id=booked["id"], status="booked")
    # The specialist's time is taken: a booking overlapping it is refused.
    status, body = await book(node, specialist_id=chief, starts_at=local(day_after_tomorrow(10, 15)))
    assert status == 409 and body["error"]["code"] == "time_taken"
    cid = booked["consultation_id"]
    status, body = await api(node, "GET", f"/api/consultations/{cid}", "village1")
    assert body["consultation"]["state"] == "requested"

    sweep = services_of(node).appointments.sweep
    start = ten.astimezone(dt.UTC)
    # Two days before, nothing is due; a day before, both sides are reminded once.
    assert (await sweep(start - dt.timedelta(days=2))).reminded == []
    outcome = await sweep(start - dt.timedelta(hours=24))
    assert [(r.appointment.id, r.kind) for r in outcome.reminded] == [(booked["id"], "day_before")]
    assert (await clinic.event("appointment_reminder", appointment_id=booked["id"]))["kind"] == "day_before"
    assert (await specialist.event("appointment_reminder", appointment_id=booked["id"]))["kind"] == "day_before"
    assert (await sweep(start - dt.timedelta(hours=23))).reminded == []
    # The joining error before the time: there is no call yet.
    assert await clinic.error("session.join", consultation_id=cid) == "invalid_transition"
    # Ten minutes before: the second reminder, and the consultation is accepted with its specialist.
    outcome = await sweep(start - dt.timedelta(minutes=10))
    assert [r.kind for r in outcome.reminded] == ["soon"] and outcome.started == [booked["id"]]
    await clinic.event("appointment_reminder", appointment_id=booked["id"], kind="soon")
    await clinic.event("consultation_state", consultation_id=cid, state="accepted")
    status, body = await api(node, "GET", f"/api/consultations/{cid}", "village1")
    assert body["consultation"]["state"] == "accepted"
    # Both join from their pages as they would an on-demand consultation.
    joined = await specialist.ok("session.join", consultation_id=cid)
    await clinic.ok("session.join", consultation_id=cid)
    await specialist.ok("session.hangup", session_id=joined["session_id"])
    # After the grace period the appointment counts as held, not as a no-show.
    outcome = await sweep(start + dt.timedelta(minutes=16))
    assert outcome.held == [booked["id"]] and outcome.no_shows == []
    status, body = await api(node, "GET", "/api/appointments", "village1")
    assert [(a["id"], a["status"]) for a in body["appointments"]] == [(booked["id"], "held")]


async def test_a_department_booking_goes_to_an_eligible_specialist_with_the_time_free(node: Node) -> None:
    city = await store_of(node).get_organisation_by_name(CITY)
    assert city is not None
    chief, med = await user_id(node, "cardio.chief"), await user_id(node, "med.assoc")
    nine, noon = day_after_tomorrow(9), day_after_tomorrow(12)
    await hours(node, "cardio.chief", nine, noon)
    await hours(node, "med.assoc", nine, noon)
    ten = local(day_after_tomorrow(10))
    status, body = await book(node, request={**CARDIO, "min_title": "chief"}, hospital_org_id=city.id, starts_at=ten)
    assert status == 201 and body["appointment"]["specialist_id"] == chief
    # The chief is taken at ten and the associate chief is below the title asked for.
    status, body = await book(node, request={**CARDIO, "min_title": "chief"}, hospital_org_id=city.id, starts_at=ten)
    assert status == 409 and body["error"]["code"] == "time_taken"
    status, body = await book(node, hospital_org_id=city.id, starts_at=ten)
    assert status == 201 and body["appointment"]["specialist_id"] == med
    # Withdrawn hours take no new bookings (the booked one stays).
    status, body = await api(node, "GET", "/api/consultation-hours", "med.assoc")
    (own,) = body["hours"]
    status, _ = await api(node, "DELETE", f"/api/consultation-hours/{own['id']}", "cardio.chief")
    assert status == 403
    status, _ = await api(node, "DELETE", f"/api/consultation-hours/{own['id']}", "med.assoc")
    assert status == 200
    status, body = await book(node, hospital_org_id=city.id, starts_at=local(day_after_tomorrow(11)))
    assert status == 201 and body["appointment"]["specialist_id"] == chief
    status, body = await book(node, specialist_id=med, starts_at=local(day_after_tomorrow(11)))
    assert status == 409 and body["error"]["code"] == "time_taken"
    status, body = await api(node, "GET", "/api/appointments", "med.assoc")
    assert [a["local_time"] for a in body["appointments"]] == [day_after_tomorrow(10).strftime("%Y-%m-%d 10:00")]


async def test_the_desk_confirms_a_requested_window_or_proposes_another_time(node: Node) -> None:
    city = await store_of(node).get_organisation_by_name(CITY)
    assert city is not None
    chief, desk = await user_id(node, "cardio.chief"), await user_id(node, "paeds.assoc")
    status, body = await api(node, "PUT", "/api/admin/desks", "alliance.admin",
                             {"user_id": desk, "department": "cardiology"})
    assert status == 200 and body["granted"] is True
    # The desk publishes hours for a specialist of the department; others may not.
    await hours(node, "paeds.assoc", day_after_tomorrow(14), day_after_tomorrow(17), specialist_id=chief)
    status, body = await api(node, "POST", "/api/consultation-hours", "neuro.chief", {
        "starts_at": local(day_after_tomorrow(14)), "ends_at": local(day_after_tomorrow(15)),
        "department": "cardiology", "specialist_id": chief})
    assert status == 403
    clinic = await node.connect("village1")
    desk_ws = await node.connect("paeds.assoc")
    window = {"hospital_org_id": city.id, "window_start": local(day_after_tomorrow(8)),
              "window_end": local(day_after_tomorrow(12))}
    status, body = await book(node, **window)
    assert status == 201 and body["appointment"]["status"] == "requested"
    first = body["appointment"]["id"]
    await desk_ws.event("appointment", appointment_id=first, status="requested")
    # Someone neither the desk nor of the department may not answer.
    status, body = await api(node, "POST", f"/api/appointments/{first}/answer", "neuro.chief",
                             {"starts_at": local(day_after_tomorrow(9)), "specialist_id": chief})
    assert status == 403
    status, body = await api(node, "POST", f"/api/appointments/{first}/answer", "paeds.assoc",
                             {"starts_at": local(day_after_tomorrow(9)), "specialist_id": chief})
    assert status == 200 and body["appointment"]["status"] == "booked"
    assert body["appointment"]["specialist_id"] == chief
    await clinic.event("appointment", appointment_id=first, status="booked")

    status, body = await book(node, **window)
    second = body["appointment"]["id"]
    # A time outside the window needs its reason; with it, it is a proposal the clinic accepts.
    status, body = await api(node, "POST", f"/api/appointments/{second}/answer", "paeds.assoc",
                             {"starts_at": local(day_after_tomorrow(15)), "specialist_id": chief})
    assert status == 400 and "reason" in body["error"]["message_en"]
    status, body = await api(node, "POST", f"/api/appointments/{second}/answer", "paeds.assoc",
                             {"starts_at": local(day_after_tomorrow(15)), "specialist_id": chief,
                              "reason": "The morning clinic is full"})
    assert status == 200 and body["appointment"]["status"] == "proposed"
    proposal = await clinic.event("appointment", appointment_id=second, status="proposed")
    assert proposal["reason"] == "The morning clinic is full"
    assert proposal["local_time"] == day_after_tomorrow(15).strftime("%Y-%m-%d 15:00")
    status, body = await api(node, "POST", f"/api/appointments/{second}/accept", "village2")
    assert status == 403
    status, body = await api(node, "POST", f"/api/appointments/{second}/accept", "village1")
    assert status == 200 and body["appointment"]["status"] == "booked"
    status, body = await api(node, "POST", f"/api/appointments/{second}/accept", "village1")
    assert status == 409 and body["error"]["code"] == "invalid_transition"
    # The desk sees both; the specialist sees their own.
    status, body = await api(node, "GET", "/api/appointments", "paeds.assoc")
    assert sorted(a["id"] for a in body["appointments"]) == [first, second]
    status, body = await api(node, "GET", "/api/appointments", "cardio.chief")
    assert sorted(a["id"] for a in body["appointments"]) == [first, second]
    status, body = await api(node, "GET", "/api/appointments", "neuro.chief")
    assert body["appointments"] == []
    # A specialist of the department answers a window for themselves; the desk, once revoked, no more.
    status, body = await book(node, **window)
    third = body["appointment"]["id"]
    status, body = await api(node, "POST", "/api/admin/desks/revoke", "alliance.admin",
                             {"user_id": desk, "department": "cardiology"})
    assert status == 200 and body["revoked"] is True
    status, body = await api(node, "POST", f"/api/appointments/{third}/answer", "paeds.assoc",
                             {"starts_at": local(day_after_tomorrow(10)), "specialist_id": chief})
    assert status == 403
    status, body = await api(node, "POST", f"/api/appointments/{third}/answer", "med.assoc",
                             {"starts_at": local(day_after_tomorrow(10))})
    assert status == 200 and body["appointment"]["specialist_id"] == await user_id(node, "med.assoc")
    audit, _ = await store_of(node).search_audit(action="appointment.", target=f"user:{desk}")
    assert [e["action"] for e in reversed(audit)] == ["appointment.desk_grant", "appointment.desk_revoke"]


async def test_reschedule_and_cancel_take_reasons_on_both_sides_and_are_audited(node: Node) -> None:
    chief = await user_id(node, "cardio.chief")
    await hours(node, "cardio.chief", day_after_tomorrow(9), day_after_tomorrow(12))
    status, body = await book(node, specialist_id=chief, starts_at=local(day_after_tomorrow(10)))
    aid, cid = body["appointment"]["id"], body["appointment"]["consultation_id"]
    specialist = await node.connect("cardio.chief")
    # The clinic moves it inside the specialist's hours, with a reason.
    status, body = await api(node, "POST", f"/api/appointments/{aid}/reschedule", "village1",
                             {"starts_at": local(day_after_tomorrow(13)), "reason": "The patient's bus is late"})
    assert status == 409 and body["error"]["code"] == "time_taken"
    status, body = await api(node, "POST", f"/api/appointments/{aid}/reschedule", "village1",
                             {"starts_at": local(day_after_tomorrow(11)), "reason": ""})
    assert status == 400
    status, body = await api(node, "POST", f"/api/appointments/{aid}/reschedule", "village1",
                             {"starts_at": local(day_after_tomorrow(11)), "reason": "The patient's bus is late"})
    assert status == 200
    moved = body["appointment"]
    assert (moved["status"], moved["reschedules"], moved["reason"]) == ("booked", 1, "The patient's bus is late")
    assert moved["local_time"] == day_after_tomorrow(11).strftime("%Y-%m-%d 11:00")
    await specialist.event("appointment", appointment_id=aid, reason="The patient's bus is late")
    # Another clinic may not touch it; the specialist moves it outside their hours (their own call).
    status, body = await api(node, "POST", f"/api/appointments/{aid}/reschedule", "village2",
                             {"starts_at": local(day_after_tomorrow(11)), "reason": "x"})
    assert status == 403
    status, body = await api(node, "POST", f"/api/appointments/{aid}/reschedule", "cardio.chief",
                             {"starts_at": local(day_after_tomorrow(16)), "reason": "Ward round moved"})
    assert status == 200 and body["appointment"]["reschedules"] == 2
    status, body = await api(node, "POST", f"/api/appointments/{aid}/cancel", "cardio.chief", {"reason": " "})
    assert status == 400
    status, body = await api(node, "POST", f"/api/appointments/{aid}/cancel", "cardio.chief",
                             {"reason": "Called to an emergency operation"})
    assert status == 200 and body["appointment"]["status"] == "cancelled"
    status, body = await api(node, "GET", f"/api/consultations/{cid}", "village1")
    assert body["consultation"]["state"] == "cancelled"
    status, body = await api(node, "POST", f"/api/appointments/{aid}/cancel", "village1", {"reason": "again"})
    assert status == 409
    audit, _ = await store_of(node).search_audit(target=f"appointment:{aid}")
    actions = [(e["action"], (e["detail"] or {}).get("reason")) for e in reversed(audit)]
    # The other clinic's attempt is recorded as a refusal.
    assert actions == [("appointment.book", ""), ("appointment.reschedule", "The patient's bus is late"),
                       ("appointment.view_denied", None), ("appointment.reschedule", "Ward round moved"),
                       ("appointment.cancel", "Called to an emergency operation")]
    status, body = await api(node, "GET", f"/api/consultations/{cid}/events", "village1")
    kinds = [e["kind"] for e in body["events"]]
    assert kinds == ["requested", "appointment_booked", "appointment_booked", "appointment_booked", "cancelled",
                     "appointment_cancelled"]


async def test_a_no_show_is_recorded_then_booked_again_or_turned_into_an_on_demand_request(node: Node) -> None:
    chief = await user_id(node, "cardio.chief")
    await hours(node, "cardio.chief", day_after_tomorrow(9), day_after_tomorrow(12))
    status, body = await book(node, specialist_id=chief, starts_at=local(day_after_tomorrow(10)))
    aid, cid = body["appointment"]["id"], body["appointment"]["consultation_id"]
    clinic = await node.connect("village1")
    sweep = services_of(node).appointments.sweep
    start = day_after_tomorrow(10).astimezone(dt.UTC)
    outcome = await sweep(start - dt.timedelta(minutes=5))
    # First looked at five minutes before: only the soon reminder goes out, then it starts.
    assert [r.kind for r in outcome.reminded] == ["soon"] and outcome.started == [aid]
    # Within the grace period nothing is recorded; after it, nobody having joined, the no-show.
    outcome = await sweep(start + dt.timedelta(minutes=14))
    assert outcome.no_shows == [] and outcome.held == []
    outcome = await sweep(start + dt.timedelta(minutes=15))
    assert outcome.no_shows == [aid]
    await clinic.event("appointment", appointment_id=aid, status="no_show")
    status, body = await api(node, "GET", f"/api/consultations/{cid}", "village1")
    assert body["consultation"]["state"] == "requested"
    assert await clinic.error("session.join", consultation_id=cid) == "invalid_transition"
    # Only the clinic books a missed one again, inside the specialist's hours.
    status, body = await api(node, "POST", f"/api/appointments/{aid}/reschedule", "cardio.chief",
                             {"starts_at": local(day_after_tomorrow(11)), "reason": "again"})
    assert status == 403
    status, body = await api(node, "POST", f"/api/appointments/{aid}/reschedule", "village1",
                             {"starts_at": local(day_after_tomorrow(11)), "reason": "The patient missed the bus"})
    assert status == 200 and body["appointment"]["status"] == "booked"
    # Neither the consent nor the on-demand cancel or re-queue changes a booked consultation by the back door.
    assert await clinic.error("consultation.requeue", consultation_id=cid) == "invalid_transition"
    assert await clinic.error("consultation.cancel", consultation_id=cid) == "invalid_transition"
    status, body = await api(node, "POST", f"/api/consultations/{cid}/consent", "village1", {
        "by": "patient", "name": "Hu Jun", "signature": CREATE["consent"]["signature"]})
    assert status == 409
    eleven = day_after_tomorrow(11).astimezone(dt.UTC)
    assert (await sweep(eleven - dt.timedelta(minutes=1))).started == [aid]
    assert (await sweep(eleven + dt.timedelta(minutes=20))).no_shows == [aid]
    # Turned into an on-demand request: the same consultation goes into the queue.
    status, body = await api(node, "POST", f"/api/appointments/{aid}/on-demand", "village1")
    assert status == 200 and body["appointment"]["status"] == "on_demand"
    status, body = await api(node, "GET", f"/api/consultations/{cid}", "village1")
    assert body["consultation"]["state"] in ("queued", "offered")
    audit, _ = await store_of(node).search_audit(target=f"appointment:{aid}")
    assert [e["action"] for e in reversed(audit)] == [
        "appointment.book", "appointment.start", "appointment.no_show", "appointment.reschedule",
        "appointment.start", "appointment.no_show", "appointment.on_demand"]


async def page(node: Node, path: str, user: str) -> tuple[int, str]:
    token = await node.token(user)
    async with node.http.get(node.url(path), headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.text()


async def test_the_pages_show_the_bookings_and_reminders_in_chinese(node: Node) -> None:
    chief = await user_id(node, "cardio.chief")
    await hours(node, "cardio.chief", day_after_tomorrow(9), day_after_tomorrow(12))
    status, body = await book(node, specialist_id=chief, starts_at=local(day_after_tomorrow(10)))
    aid = body["appointment"]["id"]
    status, html = await page(node, "/clinic/appointments", "village1")
    assert status == 200
    assert "预约会诊" in html and "可预约的会诊时间" in html and "Prof. Chen Guoqiang" in html
    assert f'data-appointment="{aid}" data-status="booked"' in html and "改期" in html
    assert day_after_tomorrow(10).strftime("%Y-%m-%d 10:00") in html
    status, html = await page(node, "/specialist/appointments", "cardio.chief")
    assert status == 200 and f'data-appointment="{aid}"' in html and "发布会诊时间" in html
    # The consultation's own page names the booking and asks for no consent again.
    cid = body["appointment"]["consultation_id"]
    status, html = await page(node, f"/clinic/consultations/{cid}", "village1")
    assert status == 200 and f'data-booked="{aid}"' in html and "预约会诊" in html
    assert 'id="signature-pad"' not in html
    status, html = await page(node, "/specialist/appointments", "neuro.chief")
    assert status == 200 and f'data-appointment="{aid}"' not in html
    # A day before, the reminder is on the page too.
    services_of(node).clock = lambda: (day_after_tomorrow(10) - dt.timedelta(hours=20)).timestamp()
    status, html = await page(node, "/clinic/appointments", "village1")
    assert f"预约会诊 #{aid}，时间 {day_after_tomorrow(10).strftime('%Y-%m-%d 10:00')}" in html


async def test_the_statistics_count_booked_consultations_apart(node: Node) -> None:
    chief = await user_id(node, "cardio.chief")
    await hours(node, "cardio.chief", day_after_tomorrow(9), day_after_tomorrow(12))
    status, body = await book(node, specialist_id=chief, starts_at=local(day_after_tomorrow(10)))
    aid = body["appointment"]["id"]
    clinic = await node.connect("village1")
    await clinic.ok("consultation.create", **CARDIO)  # one on demand
    sweep = services_of(node).appointments.sweep
    start = day_after_tomorrow(10).astimezone(dt.UTC)
    await sweep(start - dt.timedelta(minutes=5))
    assert (await sweep(start + dt.timedelta(minutes=15))).no_shows == [aid]
    status, body = await api(node, "GET", "/api/admin/statistics", "alliance.admin")
    assert status == 200
    booked = body["booked"]
    assert (booked["on_demand"], booked["booked"], booked["by_status"], booked["no_shows"], booked["held"],
            booked["no_show_share"]) == (1, 1, {"no_show": 1}, 1, 0, 1.0)


async def test_of_two_bookings_racing_for_one_time_exactly_one_wins(node: Node) -> None:
    chief = await user_id(node, "cardio.chief")
    await hours(node, "cardio.chief", day_after_tomorrow(9), day_after_tomorrow(12))
    ten = local(day_after_tomorrow(10))
    results = await asyncio.gather(book(node, specialist_id=chief, starts_at=ten),
                                   book(node, "village2", specialist_id=chief, starts_at=ten))
    assert sorted(status for status, _ in results) == [201, 409]
    assert [body["error"]["code"] for status, body in results if status == 409] == ["time_taken"]
    status, listing = await api(node, "GET", "/api/appointments", "cardio.chief")
    assert status == 200 and len(listing["appointments"]) == 1


async def test_a_booking_whose_consultation_was_closed_otherwise_ends_at_its_time(node: Node) -> None:
    chief = await user_id(node, "cardio.chief")
    await hours(node, "cardio.chief", day_after_tomorrow(9), day_after_tomorrow(12))
    status, body = await book(node, specialist_id=chief, starts_at=local(day_after_tomorrow(10)))
    assert status == 201
    aid, cid = body["appointment"]["id"], body["appointment"]["consultation_id"]
    store = store_of(node)
    now = dt.datetime.now(dt.UTC)
    await store.transition_consultation(cid, ConsultationState.cancelled, actor_id=None, now=now)
    start = day_after_tomorrow(10).astimezone(dt.UTC)
    outcome = await services_of(node).appointments.sweep(start - dt.timedelta(minutes=5))
    assert outcome.started == []
    appointment = await store.get_appointment(aid)
    assert appointment is not None and appointment.status == "cancelled"
    assert (await services_of(node).appointments.sweep(start)).started == []
