"""Result rows into the value objects the store hands out."""

from __future__ import annotations

from typing import Any

from telehealth.domain import ConsultationState, OrgLevel, Role, Title, Urgency
from telehealth.records.models import (
    Alliance,
    Bed,
    CallSession,
    Consultation,
    Diagnosis,
    Note,
    Organisation,
    Slot,
    User,
)


def as_user(row: Any) -> User:
    return User(
        id=row.id, username=row.username, display_name=row.display_name, role=Role(row.role),
        organisation_id=row.organisation_id, title=Title(row.title) if row.title else None,
        specialties=tuple(s for s in row.specialties.split(",") if s), language=row.language,
        is_system_admin=row.is_system_admin, active=row.active, password_hash=row.password_hash)


def as_alliance(row: Any) -> Alliance:
    return Alliance(id=row.id, name=row.name, name_zh=row.name_zh, kind=row.kind, region=row.region,
                    member_share_pct=row.member_share_pct)


def as_organisation(row: Any) -> Organisation:
    return Organisation(
        id=row.id, name=row.name, name_zh=row.name_zh, level=OrgLevel(row.level), alliance_id=row.alliance_id,
        leads_alliance=row.leads_alliance, city_group_pilot=row.city_group_pilot,
        reserved_share_pct=row.reserved_share_pct, region=row.region)


def as_consultation(row: Any) -> Consultation:
    return Consultation(
        id=row.id, patient_id=row.patient_id, clinic_org_id=row.clinic_org_id,
        requesting_doctor_id=row.requesting_doctor_id, accompanying_doctor_id=row.accompanying_doctor_id,
        specialty=row.specialty, urgency=Urgency(row.urgency), complex_case=row.complex_case,
        requested_specialist_id=row.requested_specialist_id,
        min_title=Title(row.min_title) if row.min_title else None, title_fallback=row.title_fallback,
        state=ConsultationState(row.state), assigned_specialist_id=row.assigned_specialist_id,
        version=row.version, created_at=row.created_at, queued_at=row.queued_at, accepted_at=row.accepted_at,
        ended_at=row.ended_at, consent_at=row.consent_at, updated_at=row.updated_at, reason=row.reason,
        purpose=row.purpose, chief_complaint=row.chief_complaint, history=row.history,
        consent_by=row.consent_by, consent_name=row.consent_name, consent_relation=row.consent_relation,
        clinic_decision=row.clinic_decision, clinic_decision_note=row.clinic_decision_note,
        first_queued_at=row.first_queued_at)


def as_note(row: Any) -> Note:
    return Note(
        id=row.id, consultation_id=row.consultation_id, author_id=row.author_id, subjective=row.subjective,
        objective=row.objective, assessment=row.assessment,
        diagnoses=tuple(Diagnosis(d["code"], d["description"]) for d in (row.diagnoses or [])), plan=row.plan,
        disposition=dict(row.disposition or {}), store_and_forward=row.store_and_forward,
        draft_saved_at=row.draft_saved_at, signed_at=row.signed_at, signed_by=row.signed_by)


def as_bed(row: Any) -> Bed:
    return Bed(row.id, row.hospital_org_id, row.ward, row.day, row.number, row.reserved, row.released_at,
               row.booked_consultation_id, row.booked_at)


def as_slot(row: Any) -> Slot:
    return Slot(row.id, row.hospital_org_id, row.department, row.starts_at, row.duration_min, row.location,
                row.reserved, row.released_at, row.booked_consultation_id, row.booked_at)


def as_call_session(row: Any) -> CallSession:
    return CallSession(
        id=row.id, consultation_id=row.consultation_id, clinic_user_id=row.clinic_user_id,
        specialist_user_id=row.specialist_user_id, started_at=row.started_at, connected_at=row.connected_at,
        ended_at=row.ended_at, end_reason=row.end_reason)
