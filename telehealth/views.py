"""How records look on the wire: the JSON shapes of consultations, notes, slots and referrals, shared by the
WebSocket results and events and the JSON API."""

from __future__ import annotations

from typing import Any

from telehealth.matching.service import QueueStatus
from telehealth.records.models import (
    Addendum,
    Appointment,
    Bed,
    CallSession,
    Consultation,
    ConsultationHours,
    Event,
    Note,
    Organisation,
    Referral,
    Slot,
    User,
)
from telehealth.records.result_types import RESULT_TYPES
from telehealth.services.organisations import AgreementRow
from telehealth.services.results import JudgedResult, RecognisedList


def consultation_view(c: Consultation, status: QueueStatus | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": c.id, "state": c.state.value, "specialty": c.specialty, "urgency": c.urgency.value,
        "clinic_org_id": c.clinic_org_id, "assigned_specialist_id": c.assigned_specialist_id,
        "created_at": c.created_at.isoformat(), "consent_recorded": c.consent_at is not None,
    }
    if status is not None:
        view["position"] = status.position
        view["estimated_wait_s"] = status.estimated_wait_s
    return view


def session_view(s: CallSession) -> dict[str, Any]:
    return {"id": s.id, "started_at": s.started_at.isoformat(),
            "connected_at": s.connected_at.isoformat() if s.connected_at else None,
            "ended_at": s.ended_at.isoformat() if s.ended_at else None, "end_reason": s.end_reason}


def event_view(e: Event) -> dict[str, Any]:
    return {"id": e.id, "kind": e.kind, "at": e.at.isoformat(), "actor_id": e.actor_id,
            "session_id": e.session_id, "data": e.data}


def note_view(note: Note | None, addenda: list[Addendum] | None = None) -> dict[str, Any] | None:
    if note is None:
        return None
    return {
        "subjective": note.subjective, "objective": note.objective, "assessment": note.assessment,
        "diagnoses": [{"code": d.code, "description": d.description} for d in note.diagnoses],
        "plan": note.plan, "disposition": note.disposition, "store_and_forward": note.store_and_forward,
        "draft_saved_at": note.draft_saved_at.isoformat(),
        "signed_at": note.signed_at.isoformat() if note.signed_at else None, "signed_by": note.signed_by,
        "addenda": [{"text": a.text, "author_id": a.author_id, "signed_at": a.signed_at.isoformat()}
                    for a in addenda or []],
    }


def slot_view(slot: Slot, hospitals: dict[int, Organisation], tz: Any) -> dict[str, Any]:
    org = hospitals.get(slot.hospital_org_id)
    local = slot.starts_at.astimezone(tz)
    return {
        "id": slot.id, "hospital_org_id": slot.hospital_org_id,
        "hospital": org.name if org else "", "hospital_zh": org.name_zh if org else "",
        "department": slot.department, "starts_at": slot.starts_at.isoformat(),
        "local_time": local.strftime("%Y-%m-%d %H:%M"), "duration_min": slot.duration_min,
        "location": slot.location, "reserved": slot.reserved,
        "released": slot.released_at is not None, "booked": slot.booked_consultation_id is not None,
    }


def bed_view(bed: Bed, hospitals: dict[int, Organisation]) -> dict[str, Any]:
    org = hospitals.get(bed.hospital_org_id)
    return {
        "id": bed.id, "hospital_org_id": bed.hospital_org_id,
        "hospital": org.name if org else "", "hospital_zh": org.name_zh if org else "",
        "ward": bed.ward, "day": bed.day.isoformat(), "number": bed.number, "reserved": bed.reserved,
        "released": bed.released_at is not None, "booked": bed.booked_consultation_id is not None,
    }


def referral_view(r: Referral, orgs: dict[int, Organisation]) -> dict[str, Any]:
    def name(org_id: int) -> str:
        org = orgs.get(org_id)
        return org.name if org else ""

    return {
        "id": r.id, "consultation_id": r.consultation_id, "direction": r.direction,
        "from_org_id": r.from_org_id, "from": name(r.from_org_id), "to_org_id": r.to_org_id, "to": name(r.to_org_id),
        "department": r.department, "slot_id": r.slot_id, "bed_id": r.bed_id, "priority": r.priority, "care_plan": r.care_plan,
        "status": r.status, "outcome": r.outcome, "created_at": r.created_at.isoformat(),
        "closed_at": r.closed_at.isoformat() if r.closed_at else None,
        "tasks": [{"id": k.id, "text": k.text, "due_date": k.due_date.isoformat() if k.due_date else None,
                   "done_at": k.done_at.isoformat() if k.done_at else None} for k in r.tasks],
    }


def result_view(judged: JudgedResult) -> dict[str, Any]:
    """A test result as its viewer sees it: with the recognition their alliance gives it today."""
    r, kind, rec, source = judged.result, judged.type, judged.recognition, judged.source
    return {
        "id": r.id, "patient_id": r.patient_id, "type_code": r.type_code,
        "type": kind.name if kind else r.type_code, "type_zh": kind.name_zh if kind else "",
        "kind": kind.kind if kind else "", "value": r.value, "unit": r.unit, "text": r.text,
        "performed_on": r.performed_on.isoformat(), "source_org_id": r.source_org_id,
        "source": source.name if source else r.source_name, "source_zh": source.name_zh if source else "",
        "origin": r.origin, "consultation_id": r.consultation_id, "recorded_at": r.recorded_at.isoformat(),
        "recognised": rec.recognised, "recognition": rec.reason,
        "valid_until": rec.valid_until.isoformat() if rec.valid_until else None,
    }


def recognised_items_view(listed: RecognisedList) -> dict[str, Any]:
    days = {i.type_code: i.validity_days for i in listed.items}
    return {
        "alliance_id": listed.alliance_id,
        "items": [{"type_code": i.type_code, "validity_days": i.validity_days} for i in listed.items],
        "types": [{"code": k.code, "kind": k.kind, "name": k.name, "name_zh": k.name_zh, "unit": k.unit,
                   "recognised": k.code in days, "validity_days": days.get(k.code)} for k in RESULT_TYPES],
    }


def agreement_view(row: AgreementRow, people: dict[int, str]) -> dict[str, Any]:
    """A remote-care agreement as either side's administrator sees it: its state, each step with who took it
    and when (and why, for a decline or an end), and what the viewer may do now."""
    a = row.agreement

    def step(by: int | None, at: Any) -> dict[str, Any] | None:
        return None if at is None else {"by": by, "by_name": people.get(by or 0, ""), "at": at.isoformat()}

    return {
        "id": a.id, "clinic_org_id": a.clinic_org_id, "hospital_org_id": a.hospital_org_id,
        "clinic": row.clinic.name if row.clinic else "", "hospital": row.hospital.name if row.hospital else "",
        "state": a.state.value, "valid_now": row.valid, "expired": row.expired,
        "valid_from": a.valid_from.isoformat(), "valid_to": a.valid_to.isoformat() if a.valid_to else None,
        "proposed": step(a.created_by, a.created_at),
        "clinic_approved": step(a.clinic_approved_by, a.clinic_approved_at),
        "hospital_approved": step(a.hospital_approved_by, a.hospital_approved_at),
        "closed": None if a.closed_at is None else {**(step(a.closed_by, a.closed_at) or {}),
                                                    "reason": a.closed_reason},
        "your_sides": sorted(row.sides), "awaiting": sorted(row.awaiting),
        "may_approve": row.may_approve, "may_decline": row.may_decline, "may_end": row.may_end,
    }


def appointment_view(a: Appointment, tz: Any, people: dict[int, User] | None = None,
                     orgs: dict[int, Organisation] | None = None) -> dict[str, Any]:
    """A booked consultation; times also as local wall-clock time (24-hour)."""
    def local(at: Any) -> str | None:
        return at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if at else None

    specialist = (people or {}).get(a.specialist_id) if a.specialist_id else None
    hospital = (orgs or {}).get(a.hospital_org_id)
    clinic = (orgs or {}).get(a.clinic_org_id)
    return {
        "id": a.id, "consultation_id": a.consultation_id, "status": a.status, "department": a.department,
        "clinic_org_id": a.clinic_org_id, "clinic": clinic.name if clinic else "",
        "clinic_zh": clinic.name_zh if clinic else "",
        "hospital_org_id": a.hospital_org_id, "hospital": hospital.name if hospital else "",
        "hospital_zh": hospital.name_zh if hospital else "",
        "specialist_id": a.specialist_id, "specialist": specialist.display_name if specialist else None,
        "starts_at": a.starts_at.isoformat() if a.starts_at else None, "local_time": local(a.starts_at),
        "duration_min": a.duration_min,
        "window_start": a.window_start.isoformat() if a.window_start else None,
        "window_end": a.window_end.isoformat() if a.window_end else None,
        "window_local": f"{local(a.window_start)} – {local(a.window_end)}" if a.window_start else None,
        "reason": a.reason, "reschedules": a.reschedules,
        "booked_at": a.booked_at.isoformat() if a.booked_at else None,
        "started_at": a.started_at.isoformat() if a.started_at else None,
    }


def hours_view(h: ConsultationHours, tz: Any, people: dict[int, User] | None = None) -> dict[str, Any]:
    specialist = (people or {}).get(h.specialist_id)
    return {
        "id": h.id, "specialist_id": h.specialist_id, "specialist": specialist.display_name if specialist else None,
        "hospital_org_id": h.hospital_org_id, "department": h.department, "starts_at": h.starts_at.isoformat(),
        "ends_at": h.ends_at.isoformat(), "local_start": h.starts_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        "local_end": h.ends_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
    }
