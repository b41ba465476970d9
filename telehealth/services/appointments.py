"""Booked consultations (预约会诊): specialists (or their department's desk) publish consultation hours; a clinic
books a time with a named specialist or a department, or asks for a window the desk confirms or answers with
another time. Both sides reschedule and cancel with a reason. Reminders go to both sides before the time; at
the time the booked consultation becomes an accepted consultation with its specialist, joined from the pages
like any call; nobody there after the grace period is a no-show, which the clinic books again or turns into an
on-demand request."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from telehealth.domain import SPECIALTIES, ConsultationState, Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.models import Appointment, Consultation, ConsultationHours, Desk, Organisation, User
from telehealth.schema import Doc, Range, Text, require
from telehealth.services.consultations import CreateConsultation

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from telehealth.services.context import Actor, Services, Unit

S = ConsultationState
# The longest span of hours published at once, and how far ahead a consultation is booked.
MAX_HOURS_SPAN = dt.timedelta(hours=12)
MAX_AHEAD = dt.timedelta(days=90)
TIME_DOC = Doc("local time (Asia/Shanghai), 24-hour: 2026-12-05T09:30")


class Status(enum.StrEnum):
    requested = "requested"  # a window asked for; the desk answers
    proposed = "proposed"  # the desk answered with another time; the clinic accepts or cancels
    booked = "booked"
    started = "started"  # its time came: an accepted consultation both sides join
    held = "held"  # a call took place
    no_show = "no_show"
    on_demand = "on_demand"  # a no-show the clinic turned into an on-demand request
    cancelled = "cancelled"


# Every legal move of an appointment; anything else is refused naming what was expected.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.requested: frozenset({Status.booked, Status.proposed, Status.cancelled}),
    Status.proposed: frozenset({Status.booked, Status.proposed, Status.cancelled}),
    # booked -> booked: rescheduled.
    Status.booked: frozenset({Status.booked, Status.started, Status.cancelled}),
    Status.started: frozenset({Status.held, Status.no_show, Status.cancelled}),
    # no_show -> booked: booked again.
    Status.no_show: frozenset({Status.booked, Status.on_demand, Status.cancelled}),
    Status.held: frozenset(),
    Status.on_demand: frozenset(),
    Status.cancelled: frozenset(),
}


def sources(target: Status) -> list[str]:
    """The statuses an appointment may move to `target` from."""
    return sorted(s.value for s, targets in TRANSITIONS.items() if target in targets)


def local_time(text: str, tz: ZoneInfo, field: str) -> dt.datetime:
    """A local wall-clock time as the pages send it (an explicit offset is honoured), in UTC."""
    try:
        at = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        require(False, "{field} must be a local time such as 2026-12-05T09:30", field=field)
        raise
    if at.tzinfo is None:
        at = at.replace(tzinfo=tz)
    return at.astimezone(dt.UTC)


@dataclass(frozen=True)
class HoursInput:
    """A span of time a specialist gives to booked consultations (published by them or their desk)."""

    starts_at: Annotated[str, Text(1, 40), TIME_DOC]
    ends_at: Annotated[str, Text(1, 40), TIME_DOC]
    department: Annotated[str, Doc("one of the specialties of docs/matching.md")]
    specialist_id: Annotated[int, Range(1), Doc("the desk names the specialist; a specialist's own by default")] \
        | None = None

    def validate(self) -> None:
        require(self.department in SPECIALTIES, "{field} must be one of: {allowed}", field="department",
                allowed=", ".join(SPECIALTIES))


@dataclass(frozen=True)
class BookInput:
    """A clinic's booked consultation: the request (with the patient's consent) and either a time, with a
    named specialist or a hospital department (the request's specialty), or a window for the desk to answer."""

    request: CreateConsultation
    specialist_id: Annotated[int, Range(1)] | None = None
    hospital_org_id: Annotated[int, Range(1)] | None = None
    starts_at: Annotated[str, Text(1, 40), TIME_DOC] | None = None
    window_start: Annotated[str, Text(1, 40), TIME_DOC] | None = None
    window_end: Annotated[str, Text(1, 40), TIME_DOC] | None = None

    def validate(self) -> None:
        window = self.window_start is not None or self.window_end is not None
        require(self.request.consent is not None, "a booked consultation needs the patient's written consent",
                field="request.consent")
        require((self.starts_at is not None) != window, "give either a time or a window", field="starts_at")
        require(not window or (self.window_start is not None and self.window_end is not None),
                "a window needs its start and its end", field="window_end")
        require(self.specialist_id is not None or self.hospital_org_id is not None,
                "name a specialist or a hospital", field="hospital_org_id")


@dataclass(frozen=True)
class AnswerInput:
    """The desk's answer to a requested window: a time with a specialist, and a reason when it is not a time
    inside the window (it is then a proposal the clinic accepts)."""

    starts_at: Annotated[str, Text(1, 40), TIME_DOC]
    specialist_id: Annotated[int, Range(1)] | None = None
    reason: Annotated[str, Text(0, 1000)] = ""


@dataclass(frozen=True)
class RescheduleInput:
    """A new time (and, from the hospital's side, perhaps another specialist), with the reason."""

    starts_at: Annotated[str, Text(1, 40), TIME_DOC]
    reason: Annotated[str, Text(1, 1000)]
    specialist_id: Annotated[int, Range(1)] | None = None

    def validate(self) -> None:
        require(bool(self.reason.strip()), "{field} is required", field="reason")


@dataclass(frozen=True)
class CancelInput:
    reason: Annotated[str, Text(1, 1000)]

    def validate(self) -> None:
        require(bool(self.reason.strip()), "{field} is required", field="reason")


@dataclass(frozen=True)
class DeskInput:
    """An administrator names an account of one of their hospitals to a department's desk."""

    user_id: Annotated[int, Range(1)]
    department: str

    def validate(self) -> None:
        require(self.department in SPECIALTIES, "{field} must be one of: {allowed}", field="department",
                allowed=", ".join(SPECIALTIES))


@dataclass(frozen=True)
class Reminder:
    appointment: Appointment
    kind: str  # day_before | soon


@dataclass(frozen=True)
class SweepOutcome:
    """What one pass over the due appointments did (for logs and tests)."""

    reminded: list[Reminder]
    started: list[int]
    no_shows: list[int]
    held: list[int]


@dataclass(frozen=True)
class Schedule:
    """What a page shows: the appointments, the consultations they book, the people and places named."""

    appointments: list[Appointment]
    consultations: dict[int, Consultation]
    people: dict[int, User]
    organisations: dict[int, Organisation]
    hours: list[ConsultationHours]
    desks: list[Desk]


class Appointments:
    def __init__(self, services: Services) -> None:
        self._s = services

    @property
    def _tz(self) -> ZoneInfo:
        return self._s.settings.slots.tz

    def _time(self, text: str, field: str, now: dt.datetime) -> dt.datetime:
        at = local_time(text, self._tz, field)
        require(at > now, "{field} must lie in the future", field=field)
        require(at < now + MAX_AHEAD, "{field} lies too far ahead (at most {days} days)", field=field,
                days=MAX_AHEAD.days)
        return at

    # Hours

    async def publish_hours(self, actor: Actor, body: HoursInput) -> ConsultationHours:
        """A specialist's own hours, or a desk's for a specialist of its department."""
        s, now = self._s, self._s.now()
        specialist = await s.access.hours_keeper(actor, body.specialist_id, body.department)
        starts, ends = self._time(body.starts_at, "starts_at", now), self._time(body.ends_at, "ends_at", now)
        require(ends > starts, "{field} must come after the start", field="ends_at")
        require(ends - starts <= MAX_HOURS_SPAN, "{field}: publish at most {hours} hours at once", field="ends_at",
                hours=int(MAX_HOURS_SPAN.total_seconds() // 3600))
        assert specialist.organisation_id is not None
        async with s.unit(actor, now) as unit:
            hours = await s.store.insert_consultation_hours(
                specialist_id=specialist.id, hospital_org_id=specialist.organisation_id,
                department=body.department, starts_at=starts, ends_at=ends, created_by=actor.id, now=now)
            unit.audit("appointment.hours", f"user:{specialist.id}",
                       {"hours": hours.id, "department": body.department, "starts_at": starts.isoformat(),
                        "ends_at": ends.isoformat()})
        return hours

    async def withdraw_hours(self, actor: Actor, hours_id: int) -> None:
        s = self._s
        hours = await s.store.get_consultation_hours(hours_id)
        if hours is None:
            raise TelehealthError(ErrorCode.not_found, "no such consultation hours")
        await s.access.hours_keeper(actor, hours.specialist_id, hours.department)
        async with s.unit(actor) as unit:
            await s.store.withdraw_consultation_hours(hours.id, now=unit.now)
            unit.audit("appointment.hours_withdraw", f"user:{hours.specialist_id}", {"hours": hours.id})

    async def open_hours(self, actor: Actor, department: str | None = None) -> list[ConsultationHours]:
        """Hours from now on at the hospitals a clinic may consult (for a specialist: their own)."""
        s, now = self._s, self._s.now()
        user = actor.user
        if user.role is Role.clinic_doctor and user.organisation_id is not None:
            partners = await s.consultations.require_hospital(user.organisation_id)
            return await s.store.list_consultation_hours(hospital_org_ids=partners, department=department or None,
                                                         start=now, end=now + MAX_AHEAD)
        if user.role is Role.specialist:
            return await s.store.list_consultation_hours(specialist_ids=[user.id], start=now, end=now + MAX_AHEAD)
        raise TelehealthError(ErrorCode.forbidden, "your role may not do this")

    async def _within_hours(self, specialist_id: int, department: str, starts: dt.datetime, minutes: int) -> bool:
        ends = starts + dt.timedelta(minutes=minutes)
        spans = await self._s.store.list_consultation_hours(specialist_ids=[specialist_id], department=department,
                                                            start=starts, end=ends)
        return any(h.starts_at <= starts and ends <= h.ends_at for h in spans)

    # Booking

    async def authorize_book(self, actor: Actor) -> None:
        if actor.user.role is not Role.clinic_doctor or actor.user.organisation_id is None:
            raise TelehealthError(ErrorCode.forbidden, "only a clinic doctor of an institution can book a "
                                                       "consultation")

    async def book(self, actor: Actor, body: BookInput) -> Appointment:
        """Book a time with a named specialist (inside their hours), or with a department (the first eligible
        specialist whose hours hold the time), or ask a department for a window."""
        s, now = self._s, self._s.now()
        await self.authorize_book(actor)
        req = body.request
        minutes = s.settings.appointments.duration_min
        # The same checks as an on-demand request: the role, a hospital to consult, the named specialist's
        # agreement, specialty and title; and the consent signature is stored.
        named = body.specialist_id or req.requested_specialist_id
        if named is not None and req.requested_specialist_id != named:
            req = dataclasses.replace(req, requested_specialist_id=named)
        request, partners = await s.consultations.prepare(actor, req)
        specialist: User | None = None
        hospital = body.hospital_org_id
        window: tuple[dt.datetime, dt.datetime] | None = None
        starts: dt.datetime | None = None
        if named is not None:
            specialist = await s.store.get_user(named)
            assert specialist is not None and specialist.organisation_id is not None  # checked by `prepare`
            require(hospital in (None, specialist.organisation_id), "the specialist you named works at another "
                    "hospital", field="hospital_org_id")
            hospital = specialist.organisation_id
        assert hospital is not None  # the schema asks for a specialist or a hospital
        if hospital not in partners:
            raise TelehealthError(ErrorCode.not_eligible, "your institution has no valid agreement with this "
                                                          "hospital")
        if body.starts_at is not None:
            starts = self._time(body.starts_at, "starts_at", now)
            if specialist is not None:
                if not await self._within_hours(specialist.id, req.specialty, starts, minutes):
                    raise TelehealthError(ErrorCode.time_taken, "the specialist has no consultation hours at this "
                                                                "time: choose a time inside their hours")
            else:
                specialist = await self._free_specialist(hospital, req, starts, minutes, partners)
        else:
            assert body.window_start is not None and body.window_end is not None
            window = (self._time(body.window_start, "window_start", now),
                      self._time(body.window_end, "window_end", now))
            require(window[1] > window[0], "{field} must come after the start", field="window_end")
        clinic_org_id = actor.user.organisation_id
        assert clinic_org_id is not None
        status = Status.booked if starts is not None else Status.requested
        async with s.unit(actor, now) as unit:
            consultation = await s.store.insert_consultation(request, clinic_org_id=clinic_org_id,
                                                             doctor_id=actor.id, now=now)
            appointment = await s.store.insert_appointment(
                consultation_id=consultation.id, clinic_org_id=clinic_org_id, hospital_org_id=hospital,
                department=req.specialty, specialist_id=specialist.id if specialist else None, starts_at=starts,
                duration_min=minutes, window=window, status=status.value, created_by=actor.id, now=now)
            await s.store.insert_event(consultation.id, "appointment_" + status.value, actor_id=actor.id, now=now,
                                       data=self._event_data(appointment))
            unit.audit("consultation.create", f"consultation:{consultation.id}", {"booked": True})
            unit.audit("appointment.book" if starts else "appointment.request", f"appointment:{appointment.id}",
                       self._event_data(appointment))
            await self._tell(unit, appointment, consultation)
        return appointment

    async def _free_specialist(self, hospital: int, req: CreateConsultation, starts: dt.datetime, minutes: int,
                               partners: set[int]) -> User:
        """The first specialist of the department whose hours hold the time, who may take the request (the
        same rules as a named one) and has the time free."""
        ends = starts + dt.timedelta(minutes=minutes)
        spans = await self._s.store.list_consultation_hours(hospital_org_ids=[hospital], department=req.specialty,
                                                            start=starts, end=ends)
        holding = {a.specialist_id for a in await self._s.store.list_appointments(
            departments=[(hospital, req.specialty)], statuses=["proposed", "booked", "started"],
            starts_before=ends) if a.ends_at and a.ends_at > starts}
        for specialist_id in sorted({h.specialist_id for h in spans if h.starts_at <= starts and ends <= h.ends_at}):
            if specialist_id in holding:
                continue
            try:
                return await self._s.consultations.require_eligible_named(specialist_id, req.specialty, req.min_title,
                                                                          partners)
            except TelehealthError:
                continue
        raise TelehealthError(ErrorCode.time_taken, "no specialist of this department who may take the request has "
                                                    "consultation hours free at this time: choose another time")

    # The hospital's side

    async def answer(self, actor: Actor, appointment_id: int, body: AnswerInput) -> Appointment:
        """The desk (or a specialist of the department) answers a requested window: a time inside it books the
        consultation; another time, with its reason, is a proposal the clinic accepts."""
        s, now = self._s, self._s.now()
        appointment, consultation = await s.access.appointment_hospital(actor, appointment_id)
        starts = self._time(body.starts_at, "starts_at", now)
        specialist = await self._answering_specialist(actor, appointment, consultation, body.specialist_id)
        inside = (appointment.window_start is not None and appointment.window_end is not None
                  and appointment.window_start <= starts < appointment.window_end)
        require(inside or bool(body.reason.strip()), "a time outside the requested window needs a reason",
                field="reason")
        target = Status.booked if inside and appointment.status == Status.requested else Status.proposed
        return await self._move(actor, appointment, consultation, target, now=now, check_time=True,
                                action="appointment.confirm" if target is Status.booked else "appointment.propose",
                                specialist_id=specialist.id, starts_at=starts, reason=body.reason.strip(),
                                booked_at=now if target is Status.booked else None)

    async def _answering_specialist(self, actor: Actor, appointment: Appointment, consultation: Consultation,
                                    specialist_id: int | None) -> User:
        chosen = specialist_id or appointment.specialist_id or (
            actor.id if actor.user.role is Role.specialist else None)
        require(chosen is not None, "name the specialist", field="specialist_id")
        assert chosen is not None
        partners = await self._s.consultations.require_hospital(consultation.clinic_org_id)
        specialist = await self._s.consultations.require_eligible_named(chosen, consultation.specialty,
                                                                        consultation.min_title, partners)
        if specialist.organisation_id != appointment.hospital_org_id:
            raise TelehealthError(ErrorCode.not_eligible, "the specialist works at another hospital")
        return specialist

    async def accept_proposal(self, actor: Actor, appointment_id: int) -> Appointment:
        """The clinic takes the time the desk proposed."""
        s, now = self._s, self._s.now()
        appointment, consultation = await s.access.appointment_clinic(actor, appointment_id)
        if appointment.status != Status.proposed:
            raise TelehealthError(ErrorCode.invalid_transition, "there is no proposed time to accept")
        if appointment.starts_at is None or appointment.starts_at <= now:
            raise TelehealthError(ErrorCode.invalid_transition, "the proposed time has passed: ask for another")
        return await self._move(actor, appointment, consultation, Status.booked, now=now, check_time=True,
                                action="appointment.accept", booked_at=now)

    # Both sides

    async def reschedule(self, actor: Actor, appointment_id: int, body: RescheduleInput) -> Appointment:
        """A new time, with a reason. From the clinic it must lie inside the specialist's hours (and books a
        no-show again); the hospital's side may also hand it to another specialist of the department."""
        s, now = self._s, self._s.now()
        appointment, consultation = await s.access.appointment_party(actor, appointment_id)
        starts = self._time(body.starts_at, "starts_at", now)
        clinic = actor.user.role is Role.clinic_doctor
        if appointment.status not in (Status.booked, Status.no_show):
            raise TelehealthError(ErrorCode.invalid_transition, "the booked consultation is {status}: only a booked "
                                  "one or a missed one is given a new time", status=appointment.status)
        if clinic:
            require(body.specialist_id in (None, appointment.specialist_id), "ask the hospital to change the "
                    "specialist", field="specialist_id")
            assert appointment.specialist_id is not None
            if not await self._within_hours(appointment.specialist_id, appointment.department, starts,
                                            appointment.duration_min):
                raise TelehealthError(ErrorCode.time_taken, "the specialist has no consultation hours at this "
                                                            "time: choose a time inside their hours")
            specialist_id = appointment.specialist_id
        else:
            if appointment.status == Status.no_show:
                raise TelehealthError(ErrorCode.forbidden, "the clinic books a missed consultation again")
            specialist_id = (await self._answering_specialist(actor, appointment, consultation,
                                                              body.specialist_id)).id
        return await self._move(actor, appointment, consultation, Status.booked, now=now, check_time=True,
                                action="appointment.reschedule", specialist_id=specialist_id, starts_at=starts,
                                reason=body.reason.strip(), booked_at=now, reminded_day_at=None,
                                reminded_soon_at=None, reschedules=appointment.reschedules + 1,
                                extra={"from": appointment.starts_at.isoformat() if appointment.starts_at else None})

    async def cancel(self, actor: Actor, appointment_id: int, body: CancelInput) -> Appointment:
        """Either side cancels, with a reason: the consultation it booked is cancelled too."""
        s, now = self._s, self._s.now()
        appointment, consultation = await s.access.appointment_party(actor, appointment_id)
        self._check(appointment, Status.cancelled)
        async with s.unit(actor, now) as unit:
            if consultation.state in (S.requested, S.accepted):
                consultation = await s.store.transition_consultation(
                    consultation.id, S.cancelled, actor_id=actor.id, now=now, expected=[S.requested, S.accepted],
                    event_kind="cancelled", event_data={"reason": body.reason.strip()})
            elif not consultation.state.is_final:
                raise TelehealthError(ErrorCode.invalid_transition, "the consultation is {state}: it can no longer "
                                      "be cancelled", state=consultation.state.value)
            moved = await self._write(unit, actor, appointment, consultation, Status.cancelled,
                                      action="appointment.cancel", reason=body.reason.strip(), closed_at=now)
        return moved

    async def on_demand(self, actor: Actor, appointment_id: int) -> Appointment:
        """A missed consultation goes into the on-demand queue instead, with the same request."""
        s, now = self._s, self._s.now()
        appointment, consultation = await s.access.appointment_clinic(actor, appointment_id)
        moved = await self._move(actor, appointment, consultation, Status.on_demand, now=now,
                                 action="appointment.on_demand", closed_at=now)
        await s.matcher.enqueue(consultation, actor_id=actor.id)
        return moved

    # Reading

    async def schedule(self, actor: Actor) -> Schedule:
        """The clinic's booked consultations; or a specialist's, with those of the desks they keep."""
        s, user = self._s, actor.user
        desks: list[Desk] = []
        if user.role is Role.clinic_doctor and user.organisation_id is not None:
            items = await s.store.list_appointments(clinic_org_id=user.organisation_id)
            try:
                hours = await self.open_hours(actor)
            except TelehealthError as exc:
                if exc.code is not ErrorCode.no_agreement:
                    raise
                hours = []  # no hospital to consult: the page says so when the clinic tries to book
        elif user.role is Role.specialist:
            desks = await s.store.list_desks(user_id=user.id)
            kept = {(d.hospital_org_id, d.department) for d in desks}
            own = {(user.organisation_id, sp) for sp in user.specialties} if user.organisation_id else set()
            # Theirs; every one of the desks they keep; and the windows of their own department still waiting
            # for an answer (a specialist may answer one for themselves).
            items = [a for a in await s.store.list_appointments(specialist_id=user.id, departments=kept | own)
                     if a.specialist_id == user.id or (a.hospital_org_id, a.department) in kept
                     or a.status == Status.requested]
            now = s.now()
            hours = await s.store.list_consultation_hours(
                specialist_ids=None if kept else [user.id],
                hospital_org_ids=sorted({org for org, _ in kept}) if kept else None, start=now, end=now + MAX_AHEAD)
            if kept:
                hours = [h for h in hours if h.specialist_id == user.id or (h.hospital_org_id, h.department) in kept]
        else:
            raise TelehealthError(ErrorCode.forbidden, "your role may not do this")
        consultations: dict[int, Consultation] = {}
        people: dict[int, User] = {}
        for a in items:
            c = await s.store.get_consultation(a.consultation_id)
            if c is not None:
                consultations[c.id] = c
        for uid in {a.specialist_id for a in items} | {h.specialist_id for h in hours} | \
                {c.requesting_doctor_id for c in consultations.values()}:
            if uid is not None and (u := await s.store.get_user(uid)) is not None:
                people[uid] = u
        orgs = {o.id: o for o in await s.store.list_organisations()}
        return Schedule(items, consultations, people, orgs, hours, desks)

    # Desks

    async def grant_desk(self, actor: Actor, body: DeskInput) -> bool:
        """An administrator names an account of a hospital they manage to a department's desk."""
        s = self._s
        alliance = await s.access.admin_alliance(actor)
        user = await s.store.get_user(body.user_id)
        org = await s.store.get_organisation(user.organisation_id) if user and user.organisation_id else None
        if user is None or org is None or (alliance is not None and org.alliance_id != alliance):
            raise TelehealthError(ErrorCode.not_found, "no such account in your alliance")
        if user.role is not Role.specialist or not org.level.is_hospital:
            raise TelehealthError(ErrorCode.invalid_input, "a desk is kept by an account of a hospital")
        async with s.unit(actor) as unit:
            added = await s.store.insert_desk(user.id, org.id, body.department, granted_by=actor.id, now=unit.now)
            unit.audit("appointment.desk_grant", f"user:{user.id}", {"department": body.department,
                                                                      "hospital": org.id})
        return added

    async def revoke_desk(self, actor: Actor, body: DeskInput) -> bool:
        s = self._s
        alliance = await s.access.admin_alliance(actor)
        user = await s.store.get_user(body.user_id)
        org = await s.store.get_organisation(user.organisation_id) if user and user.organisation_id else None
        if user is None or org is None or (alliance is not None and org.alliance_id != alliance):
            raise TelehealthError(ErrorCode.not_found, "no such account in your alliance")
        async with s.unit(actor) as unit:
            removed = await s.store.delete_desk(user.id, org.id, body.department)
            unit.audit("appointment.desk_revoke", f"user:{user.id}", {"department": body.department,
                                                                       "hospital": org.id})
        return removed

    # Time

    async def sweep(self, now: dt.datetime | None = None) -> SweepOutcome:
        """Send the reminders due, start the consultations whose time has come and record the no-shows. Every
        node may run it: each change is one guarded write, and a node that loses the race skips it."""
        s = self._s
        now = now or s.now()
        cfg = s.settings.appointments
        out = SweepOutcome([], [], [], [])
        # The store's bound is exclusive, and a reminder is due at its very second.
        horizon = now + dt.timedelta(seconds=max(cfg.remind_day_before_s, cfg.remind_soon_s, cfg.join_before_s) + 1)
        for a in await s.store.list_appointments(statuses=[Status.booked, Status.started], starts_before=horizon,
                                                 limit=1000):
            assert a.starts_at is not None
            until = (a.starts_at - now).total_seconds()
            try:
                if a.status == Status.started:
                    if until <= -cfg.no_show_grace_s:
                        await self._settle(a, now, out)
                    continue
                if a.reminded_soon_at is None and until <= cfg.remind_soon_s:
                    # The day-before reminder is not sent once the soon one is due.
                    a = await self._remind(a, now, "soon", out, reminded_soon_at=now,
                                           reminded_day_at=a.reminded_day_at or now)
                elif a.reminded_day_at is None and until <= cfg.remind_day_before_s:
                    a = await self._remind(a, now, "day_before", out, reminded_day_at=now)
                if until <= cfg.join_before_s and await self._start(a, now):
                    out.started.append(a.id)
            except TelehealthError as exc:
                if exc.code not in (ErrorCode.conflict, ErrorCode.invalid_transition):
                    raise
        return out

    async def _remind(self, a: Appointment, now: dt.datetime, kind: str, out: SweepOutcome,
                      **stamps: Any) -> Appointment:
        s = self._s
        consultation = await s.store.get_consultation(a.consultation_id)
        assert consultation is not None
        async with s.unit(None, now) as unit:
            moved = await s.store.update_appointment(a.id, expected=[Status.booked], now=now, **stamps)
            data = {**self._event_data(moved), "kind": kind}
            for uid in await self._recipients(moved, consultation):
                unit.outbox.to_user(uid, "appointment_reminder", data)
        out.reminded.append(Reminder(moved, kind))
        return moved

    async def _start(self, a: Appointment, now: dt.datetime) -> bool:
        """The time has come: the consultation is accepted by the specialist it was booked with, so that both
        sides join the call from their pages as they would an on-demand one."""
        s = self._s
        current = await s.store.get_consultation(a.consultation_id)
        if current is not None and current.state.is_final:
            # Closed some other way (an administrator's correction): the booking is over too, and is not
            # looked at again on every pass.
            async with s.unit(None, now) as unit:
                await s.store.update_appointment(a.id, expected=[Status.booked], now=now,
                                                 status=Status.cancelled.value, closed_at=now)
                unit.audit("appointment.cancel", f"appointment:{a.id}", {"reason": "consultation " + current.state})
            return False
        async with s.unit(None, now) as unit:
            moved = await s.store.update_appointment(a.id, expected=[Status.booked], now=now,
                                                     status=Status.started.value, started_at=now)
            consultation = await s.store.transition_consultation(
                a.consultation_id, S.accepted, actor_id=None, now=now, expected=[S.requested],
                assigned_specialist_id=a.specialist_id, event_kind="accepted", event_data={"via": "appointment"})
            unit.audit("appointment.start", f"appointment:{a.id}", {"consultation": a.consultation_id})
            await self._tell(unit, moved, consultation)
            specialist = await s.store.get_user(a.specialist_id) if a.specialist_id else None
            unit.outbox.to_user(consultation.requesting_doctor_id, "consultation_state", {
                "consultation_id": consultation.id, "state": S.accepted.value,
                "specialist": {"id": specialist.id, "name": specialist.display_name,
                               "title": specialist.title.value if specialist.title else None} if specialist else None})
        return True

    async def _settle(self, a: Appointment, now: dt.datetime, out: SweepOutcome) -> None:
        """After the grace period: a call took place (held), or nobody came (a no-show: the consultation waits
        to be booked again or queued)."""
        s = self._s
        sessions = await s.store.list_call_sessions(a.consultation_id)
        async with s.unit(None, now) as unit:
            consultation = await s.store.get_consultation(a.consultation_id)
            assert consultation is not None
            if sessions or consultation.state is not S.accepted:
                moved = await s.store.update_appointment(a.id, expected=[Status.started], now=now,
                                                         status=Status.held.value, closed_at=now)
                out.held.append(a.id)
                return
            moved = await s.store.update_appointment(a.id, expected=[Status.started], now=now,
                                                     status=Status.no_show.value)
            consultation = await s.store.transition_consultation(
                a.consultation_id, S.requested, actor_id=None, now=now, expected=[S.accepted],
                assigned_specialist_id=None, event_kind="no_show", event_data={"appointment": a.id})
            unit.audit("appointment.no_show", f"appointment:{a.id}", {"consultation": a.consultation_id})
            await self._tell(unit, moved, consultation)
        out.no_shows.append(a.id)

    # Writes

    def _check(self, appointment: Appointment, target: Status) -> None:
        current = Status(appointment.status)
        if target not in TRANSITIONS[current]:
            raise TelehealthError(ErrorCode.invalid_transition, "the booked consultation is {status}: this is "
                                  "possible only when it is {allowed}", status=current.value,
                                  allowed=", ".join(sources(target)))

    async def _move(self, actor: Actor, appointment: Appointment, consultation: Consultation, target: Status, *,
                    now: dt.datetime, action: str, check_time: bool = False, extra: dict[str, Any] | None = None,
                    **changes: Any) -> Appointment:
        self._check(appointment, target)
        async with self._s.unit(actor, now) as unit:
            return await self._write(unit, actor, appointment, consultation, target, action=action,
                                     check_time=check_time, extra=extra, **changes)

    async def _write(self, unit: Unit, actor: Actor, appointment: Appointment, consultation: Consultation,
                     target: Status, *, action: str, check_time: bool = False, extra: dict[str, Any] | None = None,
                     **changes: Any) -> Appointment:
        moved = await self._s.store.update_appointment(appointment.id, expected=sources(target), now=unit.now,
                                                       check_time=check_time, status=target.value, **changes)
        data = {**self._event_data(moved), **(extra or {})}
        await self._s.store.insert_event(consultation.id, "appointment_" + target.value, actor_id=actor.id,
                                         now=unit.now, data=data)
        unit.audit(action, f"appointment:{moved.id}", data)
        await self._tell(unit, moved, consultation)
        return moved

    def _event_data(self, a: Appointment) -> dict[str, Any]:
        return {"appointment_id": a.id, "consultation_id": a.consultation_id, "status": a.status,
                "specialist_id": a.specialist_id, "hospital_org_id": a.hospital_org_id, "department": a.department,
                "starts_at": a.starts_at.isoformat() if a.starts_at else None,
                "local_time": a.starts_at.astimezone(self._tz).strftime("%Y-%m-%d %H:%M") if a.starts_at else None,
                "reason": a.reason}

    async def _recipients(self, a: Appointment, consultation: Consultation) -> set[int]:
        """The clinic doctor who asked, the specialist, and the department's desk."""
        users = {consultation.requesting_doctor_id}
        if a.specialist_id is not None:
            users.add(a.specialist_id)
        users |= {d.user_id for d in await self._s.store.list_desks(hospital_org_id=a.hospital_org_id,
                                                                   department=a.department)}
        return users

    async def _tell(self, unit: Unit, a: Appointment, consultation: Consultation) -> None:
        data = self._event_data(a)
        for uid in await self._recipients(a, consultation):
            unit.outbox.to_user(uid, "appointment", data)
