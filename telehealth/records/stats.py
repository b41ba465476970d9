"""Policy statistics for administrators, computed from the records of a period (docs/statistics.md).

Everything here is a pure function of what the store hands over, so each figure can be checked by hand
on a small data set. Days are local days of the alliance's time zone; weeks are ISO weeks (Monday first).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from telehealth.domain import ConsultationState, OrgLevel, Title, Urgency
from telehealth.records import quota
from telehealth.records.durations import derive_durations
from telehealth.records.models import (
    Agreement,
    Alliance,
    Appointment,
    BedDay,
    CallSession,
    Consultation,
    DutyDay,
    Event,
    Organisation,
    SlotDay,
    User,
)

SENIOR_TARGET_DAYS = 3
WORKING_DAYS = 5  # Monday to Friday
STILL_WAITING = {ConsultationState.requested, ConsultationState.queued, ConsultationState.offered}
ABANDONED = {ConsultationState.cancelled, ConsultationState.expired}
# A booked consultation's call counts as punctual when it started at most this long after the booked time.
ON_TIME_S = 300.0


@dataclass
class StatsInput:
    start: dt.date  # first local day of the period
    end: dt.date  # the day after the last
    tz: ZoneInfo
    sla_s: dict[str, float]
    consultations: Sequence[Consultation]
    events: Sequence[Event]
    sessions: Sequence[CallSession]
    organisations: Sequence[Organisation]
    users: Sequence[User]
    agreements: Sequence[Agreement] = ()
    duty_days: Sequence[DutyDay] = ()
    presence_days: Sequence[tuple[int, dt.date]] = ()
    slot_days: Sequence[SlotDay] = ()
    bed_days: Sequence[BedDay] = ()
    # The institutions whose figures are wanted (an alliance's, or all).
    scope_org_ids: set[int] = field(default_factory=set)
    alliances: Sequence[Alliance] = ()
    share_policy: quota.SharePolicy = field(default_factory=quota.SharePolicy)
    # The booked consultations among `consultations` (a consultation has at most one).
    appointments: Sequence[Appointment] = ()


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least p % of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def iso_week(day: dt.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days)]


def compute(data: StatsInput) -> dict[str, Any]:
    events_of: dict[int, list[Event]] = defaultdict(list)
    for e in data.events:
        events_of[e.consultation_id].append(e)
    sessions_of: dict[int, list[CallSession]] = defaultdict(list)
    for s in data.sessions:
        sessions_of[s.consultation_id].append(s)
    orgs = {o.id: o for o in data.organisations}
    return {
        "period": {"from": data.start.isoformat(), "to": (data.end - dt.timedelta(days=1)).isoformat(),
                   "timezone": str(data.tz)},
        "volume": _volume(data, orgs),
        "waiting": _waiting(data, events_of, sessions_of),
        "abandoned": _abandoned(data.consultations),
        "calls": _calls(data.sessions),
        "refusals": _refusals(data.consultations, data.events),
        "reserved_slots": _reserved_slots(data, orgs),
        "reserved_beds": _reserved_beds(data, orgs),
        "senior_coverage": _senior_coverage(data, orgs),
        "booked": _booked(data, events_of, sessions_of),
    }


def _booked(data: StatsInput, events_of: dict[int, list[Event]],
            sessions_of: dict[int, list[CallSession]]) -> dict[str, Any]:
    """Booked consultations apart from on-demand ones: how far ahead they were booked (from the request to
    the time finally agreed), whether the call started on time, and the no-shows (each missed time counts,
    also of a consultation booked again afterwards)."""
    booked = {a.consultation_id: a for a in data.appointments}
    ids = {c.id for c in data.consultations}
    mine = [a for cid, a in booked.items() if cid in ids]
    lead = [(a.starts_at - a.created_at).total_seconds() for a in mine if a.starts_at is not None]
    offsets: list[float] = []
    for a in mine:
        calls = sessions_of.get(a.consultation_id, [])
        if a.starts_at is not None and calls and a.status == "held":
            offsets.append((min(s.started_at for s in calls) - a.starts_at).total_seconds())
    no_shows = sum(1 for a in mine for e in events_of.get(a.consultation_id, []) if e.kind == "no_show")
    held = sum(1 for a in mine if a.status == "held")
    on_time = sum(1 for v in offsets if v <= ON_TIME_S)
    p50, p90 = percentile(lead, 50), percentile(lead, 90)
    late50 = percentile(offsets, 50)
    return {
        "on_demand": len(ids) - len(mine), "booked": len(mine),
        "by_status": dict(sorted(Counter(a.status for a in mine).items())),
        "lead_time_p50_s": round(p50, 1) if p50 is not None else None,
        "lead_time_p90_s": round(p90, 1) if p90 is not None else None,
        "held": held, "started_on_time": on_time, "on_time_share": _share(on_time, len(offsets)),
        "start_offset_p50_s": round(late50, 1) if late50 is not None else None, "on_time_s": ON_TIME_S,
        "no_shows": no_shows, "no_show_share": _share(no_shows, held + no_shows),
    }


def _volume(data: StatsInput, orgs: dict[int, Organisation]) -> dict[str, Any]:
    per_day: Counter[dt.date] = Counter()
    weeks: dict[str, dict[str, Counter[str]]] = {}
    week_totals: Counter[str] = Counter()
    by_clinic: Counter[int] = Counter()
    by_specialty: Counter[str] = Counter()
    by_urgency: Counter[str] = Counter()
    for c in data.consultations:
        day = c.created_at.astimezone(data.tz).date()
        week = iso_week(day)
        per_day[day] += 1
        week_totals[week] += 1
        w = weeks.setdefault(week, {"by_clinic": Counter(), "by_specialty": Counter(), "by_urgency": Counter()})
        w["by_clinic"][str(c.clinic_org_id)] += 1
        w["by_specialty"][c.specialty] += 1
        w["by_urgency"][c.urgency.value] += 1
        by_clinic[c.clinic_org_id] += 1
        by_specialty[c.specialty] += 1
        by_urgency[c.urgency.value] += 1
    all_weeks = sorted({iso_week(d) for d in _days(data.start, data.end)})
    return {
        "total": len(data.consultations),
        "by_day": [{"date": d.isoformat(), "total": per_day[d]} for d in _days(data.start, data.end)],
        "by_week": [{"week": w, "total": week_totals[w],
                     **{k: dict(sorted(v.items())) for k, v in weeks.get(w, {
                         "by_clinic": Counter(), "by_specialty": Counter(), "by_urgency": Counter()}).items()}}
                    for w in all_weeks],
        "by_clinic": [{"org_id": oid, "name": orgs[oid].name if oid in orgs else str(oid),
                       "name_zh": orgs[oid].name_zh if oid in orgs else "", "count": n}
                      for oid, n in sorted(by_clinic.items(), key=lambda kv: (-kv[1], kv[0]))],
        "by_specialty": dict(sorted(by_specialty.items())),
        "by_urgency": {u.value: by_urgency[u.value] for u in Urgency},
    }


def _waiting(data: StatsInput, events_of: dict[int, list[Event]],
             sessions_of: dict[int, list[CallSession]]) -> dict[str, Any]:
    waits: dict[str, list[float]] = {u.value: [] for u in Urgency}
    expired: Counter[str] = Counter()
    for c in data.consultations:
        if c.state is ConsultationState.expired:
            expired[c.urgency.value] += 1
            continue
        durations = derive_durations(sorted(events_of.get(c.id, []), key=lambda e: (e.at, e.id)),
                                     sessions_of.get(c.id, []))
        if durations.waiting_s is not None:
            waits[c.urgency.value].append(durations.waiting_s)
    out: dict[str, Any] = {}
    for urgency, values in waits.items():
        sla = data.sla_s[urgency]
        within = sum(1 for v in values if v <= sla)
        p50, p90 = percentile(values, 50), percentile(values, 90)
        out[urgency] = {
            "answered": len(values), "expired": expired[urgency],
            "p50_s": round(p50, 1) if p50 is not None else None, "p90_s": round(p90, 1) if p90 is not None else None,
            "sla_s": sla, "within_sla": within, "sla_share": _share(within, len(values) + expired[urgency]),
        }
    return out


def _abandoned(consultations: Iterable[Consultation]) -> dict[str, Any]:
    finished = [c for c in consultations if c.state not in STILL_WAITING]
    cancelled = sum(1 for c in finished if c.state is ConsultationState.cancelled)
    expired = sum(1 for c in finished if c.state is ConsultationState.expired)
    return {"finished": len(finished), "cancelled": cancelled, "expired": expired,
            "share": _share(cancelled + expired, len(finished))}


def _calls(sessions: Sequence[CallSession]) -> dict[str, Any]:
    ended = [s for s in sessions if s.ended_at is not None]
    reasons = Counter(s.end_reason or "unknown" for s in ended)
    network = reasons.get("network", 0)
    return {"sessions": len(sessions), "ended": len(ended), "by_end_reason": dict(sorted(reasons.items())),
            "network_failures": network, "network_share": _share(network, len(ended)),
            "consultations_with_network_failure": len({s.consultation_id for s in ended if s.end_reason == "network"})}


def _refusals(consultations: Sequence[Consultation], events: Iterable[Event]) -> dict[str, Any]:
    specialty = {c.id: c.specialty for c in consultations}
    by_reason: Counter[str] = Counter()
    by_specialty: dict[str, Counter[str]] = defaultdict(Counter)
    timeouts = 0
    for e in events:
        if e.kind == "declined":
            reason = str(e.data.get("reason", "other"))
            by_reason[reason] += 1
            by_specialty[specialty.get(e.consultation_id, "?")][reason] += 1
        elif e.kind == "ring_timeout":
            timeouts += 1
    unserved = [c for c in consultations if c.state is ConsultationState.expired]
    return {"declined": sum(by_reason.values()), "by_reason": dict(sorted(by_reason.items())),
            "by_specialty": {k: dict(sorted(v.items())) for k, v in sorted(by_specialty.items())},
            "ring_timeouts": timeouts, "unserved": len(unserved)}


def _reserved_slots(data: StatsInput, orgs: dict[int, Organisation]) -> list[dict[str, Any]]:
    """Per hospital and department: what was published and reserved, against the hospital's floor (the
    policy's: 20 % for an alliance's lead, one third for a city medical group pilot's lead, none for the
    others unless `floor_for_every_hospital`) and against the share it is to reserve (its floor, or above it
    the administrator's setting or the alliance's rule)."""
    alliances = {a.id: a for a in data.alliances}
    totals: dict[tuple[int, str], list[int]] = {}
    for d in data.slot_days:
        t = totals.setdefault((d.hospital_org_id, d.department), [0, 0, 0, 0, 0])
        t[0] += d.total
        t[1] += d.reserved
        t[2] += d.booked
        t[3] += d.released
        t[4] += 1
    rows = []
    for (org_id, department), (total, reserved, booked, released, days) in sorted(totals.items()):
        org = orgs.get(org_id)
        if org is not None:
            share = quota.reserved_share(org, alliances.get(org.alliance_id or 0), data.share_policy)
        else:
            share = quota.Share(Fraction(0), quota.FloorBasis.none, Fraction(0), quota.ShareBasis.floor)
        rows.append({
            "hospital_org_id": org_id, "name": org.name if org else str(org_id), "name_zh": org.name_zh if org else "",
            "department": department, "days": days, "published": total, "reserved": reserved,
            "reserved_share": _share(reserved, total),
            "floor": round(float(share.floor), 4), "floor_basis": share.floor_basis.value,
            "meets_floor": Fraction(reserved) >= share.floor * total,
            "target": round(float(share.share), 4), "target_basis": share.share_basis.value,
            "meets_target": Fraction(reserved) >= share.share * total,
            "booked": booked, "released": released,
        })
    return rows


def _reserved_beds(data: StatsInput, orgs: dict[int, Organisation]) -> list[dict[str, Any]]:
    """Per hospital and ward: the beds published over the period's days and those reserved, against the floor
    (one quarter at a city medical group pilot's lead, none elsewhere), and their use: booked by referrals up
    from the grassroots, released unused at the cut-off, and the booked share of the reserved."""
    totals: dict[tuple[int, str], list[int]] = {}
    for d in data.bed_days:
        t = totals.setdefault((d.hospital_org_id, d.ward), [0, 0, 0, 0, 0])
        t[0] += d.total
        t[1] += d.reserved
        t[2] += d.booked
        t[3] += d.released
        t[4] += 1
    rows = []
    for (org_id, ward), (total, reserved, booked, released, days) in sorted(totals.items()):
        org = orgs.get(org_id)
        floor, basis = quota.bed_floor(org) if org is not None else (Fraction(0), quota.FloorBasis.none)
        rows.append({
            "hospital_org_id": org_id, "name": org.name if org else str(org_id), "name_zh": org.name_zh if org else "",
            "ward": ward, "days": days, "published": total, "reserved": reserved,
            "reserved_share": _share(reserved, total),
            "floor": round(float(floor), 4), "floor_basis": basis.value,
            "meets_floor": Fraction(reserved) >= floor * total,
            "booked": booked, "released": released, "booked_share": _share(booked, reserved),
        })
    return rows


def _senior_coverage(data: StatsInput, orgs: dict[int, Organisation]) -> dict[str, Any]:
    """Per township or community health centre and ISO week: the working days (Monday to Friday) on which a
    clinician of attending title or above was on outpatient duty at that centre (the duty roster). Target:
    3 days a week. Beside it, never counted in it: the working days on which remote consultation with a
    specialist of attending title or above was available to the centre (online at a hospital that had a
    valid agreement with it that day; alliance membership counts). Village clinics are not in this figure."""
    senior = {u.id: u for u in data.users if u.title is not None and u.title.rank >= Title.attending.rank}
    duty: dict[int, dict[dt.date, set[int]]] = defaultdict(lambda: defaultdict(set))
    for d in data.duty_days:
        if d.user_id in senior:
            duty[d.org_id][d.day].add(d.user_id)
    online_by_day: dict[dt.date, set[int]] = defaultdict(set)
    for user_id, day in data.presence_days:
        user = senior.get(user_id)
        if user is not None and user.organisation_id is not None:
            online_by_day[day].add(user_id)
    days = [d for d in _days(data.start, data.end) if d.weekday() < WORKING_DAYS]
    weeks = sorted({iso_week(d) for d in days})
    institutions = []
    centres = [o for o in orgs.values() if o.level is OrgLevel.township_centre
               and (not data.scope_org_ids or o.id in data.scope_org_ids)]
    for org in sorted(centres, key=lambda o: o.name):
        per_week: dict[str, dict[str, int]] = {w: {"days": 0, "working_days": 0, "remote_days": 0}
                                               for w in weeks}
        for day in days:
            w = per_week[iso_week(day)]
            w["working_days"] += 1
            w["days"] += bool(duty[org.id].get(day))
            partners = _partners_on(org, day, data, orgs)
            w["remote_days"] += any(senior[u].organisation_id in partners for u in online_by_day.get(day, ()))
        institutions.append({
            "org_id": org.id, "name": org.name, "name_zh": org.name_zh, "level": org.level.value,
            "weeks": [{"week": w, **v, "met": v["days"] >= SENIOR_TARGET_DAYS} for w, v in per_week.items()],
        })
    return {"target_days": SENIOR_TARGET_DAYS, "weeks": weeks, "institutions": institutions}
def _partners_on(clinic: Organisation, day: dt.date, data: StatsInput, orgs: dict[int, Organisation]) -> set[int]:
    """Hospitals with a valid agreement with `clinic` at local noon of `day` (its alliance's hospitals included)."""
    noon = dt.datetime.combine(day, dt.time(12), data.tz).astimezone(dt.UTC)
    partners = {o.id for o in orgs.values()
                if o.level.is_hospital and clinic.alliance_id is not None and o.alliance_id == clinic.alliance_id}
    partners |= {a.hospital_org_id for a in data.agreements if a.clinic_org_id == clinic.id and a.valid_at(noon)}
    return partners
