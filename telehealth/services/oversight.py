"""Oversight: what administrators read of the record (the session log, one consultation's timeline, the CSV
export, the policy statistics, the audit trail) and the senior doctors' duty roster that the coverage figure
counts. Every read is audited; an administrator sees their own alliance only."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from telehealth.domain import SPECIALTIES, ConsultationState, EndReason, OrgLevel, Role, Title, Urgency
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import quota, stats
from telehealth.records.anchor import AuditVerdict, verify_audit
from telehealth.records.models import CallSession, Consultation, DutyDay, Event, Organisation, User
from telehealth.records.store import audit_anchor
from telehealth.schema import Items, Range, Text, require, shown

if TYPE_CHECKING:
    from telehealth.services.context import Actor, Services

PAGE_SIZE = 50
DEFAULT_DAYS = 28
MAX_DAYS = 366
MAX_DUTY_DAYS = 92
# Dates a filter may name: wide enough for any record, narrow enough that a day after it still exists.
FIRST_YEAR, LAST_YEAR = 1900, 2999
Id = Annotated[int, Range(1)]
Day = Annotated[str, Text(0, 10)]
PageNo = Annotated[int, Range(1, 2**31 - 1)]


def parse_day(value: str, field_name: str) -> dt.date | None:
    """A date such as 2026-11-02 (None when empty), within the years a record can have."""
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value) if len(value) <= 10 else None
    except ValueError:
        day = None
    first, last = dt.date(FIRST_YEAR, 1, 1), dt.date(LAST_YEAR, 12, 31)
    require(day is not None and first <= day <= last,
            "{value} is not a date from {first} to {last}, such as 2026-11-02", field=field_name,
            value=shown(value), first=first.isoformat(), last=last.isoformat())
    return day


def _day_start(day: dt.date | None) -> dt.datetime | None:
    return dt.datetime.combine(day, dt.time(), dt.UTC) if day else None


@dataclass(frozen=True)
class SessionLogQuery:
    """The session log's filters; days are inclusive."""

    start: Day = ""
    end: Day = ""
    clinic_org_id: Id | None = None
    hospital_org_id: Id | None = None
    specialist_id: Id | None = None
    specialty: Annotated[str, Text(0, 100)] | None = None
    urgency: Urgency | None = None
    state: ConsultationState | None = None
    end_reason: EndReason | None = None
    page: PageNo = 1

    def validate(self) -> None:
        require(self.specialty is None or self.specialty in SPECIALTIES, "{field}: no such specialty",
                field="specialty")
        first, last = parse_day(self.start, "from"), parse_day(self.end, "to")
        require(first is None or last is None or first <= last, "`to` comes before `from`", field="to")

    def filters(self) -> dict[str, Any]:
        last = parse_day(self.end, "to")
        return {"start": _day_start(parse_day(self.start, "from")),
                "end": _day_start(last + dt.timedelta(days=1)) if last else None,
                "clinic_org_id": self.clinic_org_id, "specialist_id": self.specialist_id,
                "specialty": self.specialty, "urgency": self.urgency.value if self.urgency else None,
                "state": self.state.value if self.state else None, "hospital_org_id": self.hospital_org_id,
                "end_reason": self.end_reason.value if self.end_reason else None}


@dataclass(frozen=True)
class LogRow:
    consultation: Consultation
    clinic: Organisation | None
    sessions: list[CallSession]
    events: list[Event]


@dataclass(frozen=True)
class SessionLogPage:
    rows: list[LogRow]
    total: int
    page: int
    pages: int
    organisations: dict[int, Organisation]


@dataclass(frozen=True)
class Timeline:
    consultation: Consultation
    clinic: Organisation | None
    events: list[Event]
    sessions: list[CallSession]


@dataclass(frozen=True)
class PeriodQuery:
    """A period of local days, inclusive; the last four weeks by default."""

    start: Day = ""
    end: Day = ""

    def validate(self) -> None:
        first, last = parse_day(self.start, "from"), parse_day(self.end, "to")
        if first and last:
            require(first <= last, "`to` comes before `from`", field="to")
            require((last - first).days < MAX_DAYS, "a period is at most {max} days", field="to", max=MAX_DAYS)

    def days(self, today: dt.date) -> tuple[dt.date, dt.date]:
        """[first, end) in local days."""
        last = parse_day(self.end, "to") or today
        first = parse_day(self.start, "from") or last - dt.timedelta(days=DEFAULT_DAYS - 1)
        require(first <= last, "`to` comes before `from`", field="to")
        require((last - first).days < MAX_DAYS, "a period is at most {max} days", field="to", max=MAX_DAYS)
        return first, last + dt.timedelta(days=1)


@dataclass(frozen=True)
class DutyInput:
    """Duty days of a senior clinician at a grassroots institution: every day from first to last (inclusive)
    on the given weekdays (0 = Monday; none given: every day)."""

    user_id: Id
    org_id: Id
    first: Day
    last: Day = ""
    weekdays: Annotated[list[Annotated[int, Range(0, 6)]], Items(7)] = field(default_factory=list)

    def days(self) -> list[dt.date]:
        first = parse_day(self.first, "first")
        last = parse_day(self.last, "last") or first
        ok = first is not None and last is not None and first <= last and (last - first).days < MAX_DUTY_DAYS
        require(ok, "give a first and a last date (at most {max} days apart) and the weekdays of duty",
                field="first", max=MAX_DUTY_DAYS)
        assert first is not None and last is not None
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        days = [d for d in days if not self.weekdays or d.weekday() in self.weekdays]
        require(bool(days), "give a first and a last date (at most {max} days apart) and the weekdays of duty",
                field="first", max=MAX_DUTY_DAYS)
        return days


@dataclass(frozen=True)
class Roster:
    grassroots: dict[int, Organisation]
    people: list[User]
    duty: list[DutyDay]


@dataclass(frozen=True)
class AuditQuery:
    actor: Annotated[str, Text(0, 80)] = ""
    action: Annotated[str, Text(0, 100)] = ""
    target: Annotated[str, Text(0, 200)] = ""
    start: Day = ""
    end: Day = ""
    page: PageNo = 1

    def validate(self) -> None:
        parse_day(self.start, "from")
        parse_day(self.end, "to")


@dataclass(frozen=True)
class AuditPage:
    rows: list[dict[str, Any]]
    names: dict[int, str]
    total: int
    page: int
    pages: int
    actions: list[str]


class Oversight:
    def __init__(self, services: Services) -> None:
        self._s = services

    # -- the session log -----------------------------------------------------------------------------

    async def session_log(self, actor: Actor, query: SessionLogQuery) -> SessionLogPage:
        alliance = await self._s.access.admin_alliance(actor)
        store = self._s.store
        consultations, total = await store.search_consultations(
            alliance_id=alliance, limit=PAGE_SIZE, offset=(query.page - 1) * PAGE_SIZE, **query.filters())
        orgs = {o.id: o for o in await store.list_organisations(alliance)}
        rows = [LogRow(c, orgs.get(c.clinic_org_id), await store.list_call_sessions(c.id),
                       await store.list_events(c.id)) for c in consultations]
        await self._s.audit(actor, "admin.session_log", "consultations", {"page": query.page, "results": len(rows)})
        return SessionLogPage(rows, total, query.page, max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE), orgs)

    async def timeline(self, actor: Actor, consultation_id: int) -> Timeline:
        consultation = await self._s.access.consultation(actor, consultation_id)
        store = self._s.store
        events = await store.list_events(consultation.id)
        sessions = await store.list_call_sessions(consultation.id)
        await self._s.audit(actor, "admin.session_detail", f"consultation:{consultation.id}")
        return Timeline(consultation, await store.get_organisation(consultation.clinic_org_id), events, sessions)

    async def export(self, actor: Actor, query: SessionLogQuery) -> tuple[
            dict[int, str], AsyncIterator[list[tuple[Consultation, list[CallSession]]]]]:
        """Institution names and the filtered log a batch at a time (an export never holds it all)."""
        alliance = await self._s.access.admin_alliance(actor)
        filters = query.filters()
        orgs = {o.id: o.name for o in await self._s.store.list_organisations(alliance)}
        await self._s.audit(actor, "admin.export_csv", "consultations", {k: str(v) for k, v in filters.items() if v})
        return orgs, self._s.store.iter_consultation_pages(alliance_id=alliance, **filters)

    # -- statistics and the duty roster --------------------------------------------------------------

    async def statistics(self, actor: Actor, period: PeriodQuery, *, shown_as: str) -> dict[str, Any]:
        alliance = await self._s.access.admin_alliance(actor)
        store = self._s.store
        settings = self._s.settings
        tz = settings.slots.tz
        start, end = period.days(self._s.now().astimezone(tz).date())
        start_at, _ = quota.day_bounds(start, tz)
        end_at, _ = quota.day_bounds(end, tz)
        consultations, events, sessions = await store.get_statistics_rows(alliance_id=alliance, start=start_at,
                                                                      end=end_at)
        everyone = await store.list_organisations()
        scope = {o.id for o in everyone if alliance is None or o.alliance_id == alliance}
        hospitals = [o.id for o in everyone if o.id in scope and o.level.is_hospital]
        data = stats.StatsInput(
            start=start, end=end, tz=tz, sla_s={u.value: settings.matching.sla(u.value) for u in Urgency},
            consultations=consultations, events=events, sessions=sessions, organisations=everyone,
            users=await store.list_all_users(), agreements=await store.list_agreements(None),
            duty_days=await store.list_duty_days(org_ids=scope, start=start, end=end),
            presence_days=await store.list_presence_days(start, end),
            slot_days=await store.list_slot_days(hospital_org_ids=hospitals, start=start_at, end=end_at, tz=tz),
            bed_days=await store.list_bed_days(hospital_org_ids=hospitals, start=start, end=end),
            scope_org_ids=scope, alliances=await store.list_alliances(), share_policy=settings.slots.share_policy,
            appointments=await store.list_appointments_of(c.id for c in consultations))
        figures = stats.compute(data)
        await self._s.audit(actor, "admin.statistics", "statistics", {
            "from": figures["period"]["from"], "to": figures["period"]["to"], "format": shown_as})
        return figures

    async def roster(self, actor: Actor, start: dt.date, end: dt.date) -> Roster:
        """The township and community health centres the administrator manages (the institutions the coverage
        figure counts; a village clinic is not one), the clinicians of attending title or above in their reach
        (the centres' own staff and the hospitals' specialists), and the duty days in [start, end)."""
        alliance = await self._s.access.admin_alliance(actor)
        store = self._s.store
        orgs = {o.id: o for o in await store.list_organisations(alliance)}
        people = [u for u in await store.list_users(organisation_ids=list(orgs))
                  if u.role is not Role.admin and u.title is not None and u.title.rank >= Title.attending.rank]
        grassroots = {i: o for i, o in orgs.items() if o.level is OrgLevel.township_centre}
        duty = await store.list_duty_days(org_ids=list(grassroots), start=start, end=end)
        return Roster(grassroots, people, duty)

    async def add_duty(self, actor: Actor, body: DutyInput) -> int:
        today = self._s.now().date()
        roster = await self.roster(actor, today, today)
        require(body.user_id in {u.id for u in roster.people}, "choose a clinician of attending title or above",
                field="user_id")
        require(body.org_id in roster.grassroots, "choose a township or community health centre of your alliance",
                field="org_id")
        days = body.days()
        async with self._s.unit(actor) as unit:
            added = await self._s.store.insert_duty_days(body.user_id, body.org_id, days, created_by=actor.id,
                                                         now=unit.now)
            unit.audit("duty.add", f"organisation:{body.org_id}", {"user": body.user_id, "days": added})
        return added

    async def delete_duty(self, actor: Actor, duty_id: int) -> None:
        today = self._s.now().date()
        roster = await self.roster(actor, today, today)
        async with self._s.unit(actor) as unit:
            if not await self._s.store.delete_duty_day(duty_id, list(roster.grassroots)):
                raise TelehealthError(ErrorCode.not_found, "no such duty day in your alliance")
            unit.audit("duty.delete", f"duty:{duty_id}")

    # -- the audit trail ----------------------------------------------------------------------------

    async def audit_log(self, actor: Actor, query: AuditQuery) -> AuditPage:
        alliance = await self._s.access.admin_alliance(actor)
        store = self._s.store
        orgs = await store.list_organisations(alliance)
        people = await store.list_all_users(organisation_ids=None if alliance is None else [o.id for o in orgs],
                                            include_system_admins=alliance is None)
        names = {u.id: u.display_name for u in people}
        actor_ids: list[int] | None = None if alliance is None else list(names)
        if query.actor:
            # An unknown or out-of-reach username matches nothing.
            actor_ids = [u.id for u in people if u.username == query.actor.strip().lower()]
        last = parse_day(query.end, "to")
        rows, total = await store.search_audit(
            actor_ids=actor_ids, action=query.action or None, target=query.target.strip() or None,
            start=_day_start(parse_day(query.start, "from")),
            end=_day_start(last + dt.timedelta(days=1)) if last else None, limit=PAGE_SIZE,
            offset=(query.page - 1) * PAGE_SIZE)
        await self._s.audit(actor, "admin.audit_view", "audit_log", {"page": query.page, "results": len(rows)})
        return AuditPage(rows, names, total, query.page, max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE),
                         await store.list_audit_actions())

    async def verify_audit(self, actor: Actor) -> AuditVerdict:
        """The keyed chain checked and compared with this node's anchor, as `telehealth audit verify` does."""
        await self._s.access.admin_alliance(actor)
        store = self._s.store
        verdict = await verify_audit(store, store.audit_anchor or audit_anchor(self._s.settings))
        await self._s.audit(actor, "admin.audit_verify", "audit_log", {
            "checked": verdict.check.checked, "broken": verdict.check.broken_id, "ok": verdict.ok})
        return verdict
