"""The referral record as a FHIR R4 Bundle (type `collection`), for hospital information systems.

ServiceRequest: the clinic's request. Encounter (class VR, virtual): each call session. Composition: the
specialist's note, one section per SOAP part, the disposition and each addendum; Condition: each ICD-10
diagnosis. Appointment (with the hospital department as a Location): a booked reserved slot. Observation
(a laboratory value) and DiagnosticReport (an imaging or ECG report): each test result in the patient's
record, with the institution that did it as its performer. Patient,
Practitioner and Organization carry who is who. Every resource is referenced by a `urn:uuid:` full URL,
derived from this server's ids, so exporting the same record twice gives the same references.
"""

from __future__ import annotations

import datetime as dt
import html
import uuid
from dataclasses import dataclass, field
from typing import Any

from telehealth.domain import ConsultationState, Urgency
from telehealth.records.models import (
    Addendum,
    Bed,
    CallSession,
    Consultation,
    Note,
    Organisation,
    Referral,
    Result,
    Slot,
    User,
)
from telehealth.records.result_types import DIAGNOSTIC_SERVICE, OBSERVATION_CATEGORY, result_type

ICD10 = "http://hl7.org/fhir/sid/icd-10"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
LOINC = "http://loinc.org"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
NAMESPACE = uuid.UUID("6f1c1f5e-6d1b-4f59-9a53-1f0d4b8e2a71")
PRIORITY = {Urgency.emergency: "stat", Urgency.urgent: "urgent", Urgency.routine: "routine"}
GENDER = {"female": "female", "male": "male", "other": "other"}


@dataclass
class RecordParts:
    consultation: Consultation
    patient: dict[str, Any]
    clinic: Organisation
    requester: User
    specialist: User | None
    sessions: list[CallSession]
    note: Note | None
    addenda: list[Addendum]
    booking: Slot | None = None
    booking_hospital: Organisation | None = None
    referrals: list[Referral] = field(default_factory=list)
    # The attachment (kind `consent`) holding the signature or the signed form.
    consent_document: dict[str, Any] | None = None
    base: str = "telehealth"
    # The patient's test results, and the institutions known here that did them.
    results: list[Result] = field(default_factory=list)
    result_sources: dict[int, Organisation] = field(default_factory=dict)
    # The reserved inpatient bed a referral up for admission booked (on the record page; not exported).
    bed: Bed | None = None


def _ref(kind: str, key: Any, base: str) -> str:
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, f'{base}/{kind}/{key}')}"


def _instant(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _narrative(text: str) -> dict[str, Any]:
    paragraphs = "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines() if line.strip()) or "<p>-</p>"
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{paragraphs}</div>'}


def export_bundle(parts: RecordParts, *, now: dt.datetime) -> dict[str, Any]:
    c, base = parts.consultation, parts.base
    refs = {
        "patient": _ref("Patient", c.patient_id, base),
        "request": _ref("ServiceRequest", c.id, base),
        "clinic": _ref("Organization", parts.clinic.id, base),
        "requester": _ref("Practitioner", parts.requester.id, base),
    }
    entries: list[tuple[str, dict[str, Any]]] = []
    p = parts.patient
    patient: dict[str, Any] = {"resourceType": "Patient", "name": [{"text": p.get("name", "")}],
                               "managingOrganization": {"reference": refs["clinic"]}}
    if p.get("sex") in GENDER:
        patient["gender"] = GENDER[p["sex"]]
    if p.get("birth_year"):
        patient["birthDate"] = f"{int(p['birth_year']):04d}"
    if p.get("local_id"):
        patient["identifier"] = [{"system": f"urn:telehealth:{base}:clinic:{parts.clinic.id}", "value": p["local_id"]}]
    entries.append((refs["patient"], patient))
    entries.append((refs["clinic"], _organisation(parts.clinic)))
    entries.append((refs["requester"], _practitioner(parts.requester)))
    specialist_ref = None
    if parts.specialist is not None:
        specialist_ref = _ref("Practitioner", parts.specialist.id, base)
        entries.append((specialist_ref, _practitioner(parts.specialist)))

    status = {ConsultationState.cancelled: "revoked", ConsultationState.expired: "revoked",
              ConsultationState.signed: "completed", ConsultationState.closed: "completed"}.get(c.state, "active")
    request: dict[str, Any] = {
        "resourceType": "ServiceRequest", "status": status, "intent": "order",
        "priority": PRIORITY[c.urgency],
        "code": {"text": f"Remote specialist consultation: {c.specialty}"},
        "subject": {"reference": refs["patient"]}, "authoredOn": _instant(c.created_at),
        "requester": {"reference": refs["requester"]},
        "reasonCode": [{"text": c.chief_complaint}] if c.chief_complaint else [],
        "identifier": [{"system": f"urn:telehealth:{base}:consultation", "value": str(c.id)}],
    }
    if specialist_ref:
        request["performer"] = [{"reference": specialist_ref}]
    if c.history:
        request["note"] = [{"text": c.history}]
    if not request["reasonCode"]:
        del request["reasonCode"]
    entries.append((refs["request"], request))

    if c.consent_by and c.consent_at:
        entries.extend(_consent(parts, refs))

    for s in parts.sessions:
        encounter: dict[str, Any] = {
            "resourceType": "Encounter", "status": "finished" if s.ended_at else "in-progress",
            "class": {"system": ACT_CODE, "code": "VR", "display": "virtual"},
            "subject": {"reference": refs["patient"]}, "basedOn": [{"reference": refs["request"]}],
            "period": {"start": _instant(s.started_at), **({"end": _instant(s.ended_at)} if s.ended_at else {})},
            "participant": [{"individual": {"reference": refs["requester"]}}],
        }
        if specialist_ref:
            encounter["participant"].append({"individual": {"reference": specialist_ref}})
        if s.end_reason:
            encounter["extension"] = [{"url": f"urn:telehealth:{base}:end-reason", "valueCode": s.end_reason}]
        entries.append((_ref("Encounter", s.id, base), encounter))

    note = parts.note
    if note is not None and note.signed:
        conditions = []
        for d in note.diagnoses:
            cref = _ref("Condition", f"{note.id}/{d.code}", base)
            conditions.append(cref)
            condition: dict[str, Any] = {
                "resourceType": "Condition",
                "code": {"coding": [{"system": ICD10, "code": d.code, "display": d.description}], "text": d.description},
                "subject": {"reference": refs["patient"]},
                "verificationStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "provisional"}]},
            }
            if specialist_ref:
                condition["recorder"] = {"reference": specialist_ref}
            entries.append((cref, condition))
        assert note.signed_at is not None
        sections = [
            {"title": "Subjective", "text": _narrative(note.subjective)},
            {"title": "Objective", "text": _narrative(note.objective)},
            {"title": "Assessment", "text": _narrative(note.assessment),
             **({"entry": [{"reference": r} for r in conditions]} if conditions else {})},
            {"title": "Plan", "text": _narrative(note.plan)},
            {"title": "Disposition", "text": _narrative(_disposition_text(note.disposition))},
        ]
        for a in parts.addenda:
            sections.append({"title": f"Addendum {_instant(a.signed_at)}", "text": _narrative(a.text)})
        composition: dict[str, Any] = {
            "resourceType": "Composition", "status": "final",
            "type": {"coding": [{"system": LOINC, "code": "11488-4", "display": "Consult note"}]},
            "subject": {"reference": refs["patient"]}, "date": _instant(note.signed_at),
            "author": [{"reference": specialist_ref or refs["requester"]}],
            "title": "Remote consultation opinion" + (" (answered in writing)" if note.store_and_forward else ""),
            "attester": [{"mode": "legal", "time": _instant(note.signed_at),
                          **({"party": {"reference": specialist_ref}} if specialist_ref else {})}],
            "section": sections,
        }
        entries.append((_ref("Composition", note.id, base), composition))

    if parts.booking is not None and parts.booking_hospital is not None:
        slot, hospital = parts.booking, parts.booking_hospital
        hospital_ref = _ref("Organization", hospital.id, base)
        location_ref = _ref("Location", f"{hospital.id}/{slot.department}", base)
        entries.append((hospital_ref, _organisation(hospital)))
        entries.append((location_ref, {
            "resourceType": "Location", "name": f"{hospital.name}: {slot.department}",
            **({"description": slot.location} if slot.location else {}),
            "managingOrganization": {"reference": hospital_ref}}))
        entries.append((_ref("Appointment", slot.id, base), {
            "resourceType": "Appointment", "status": "booked",
            "description": f"Outpatient visit ({slot.department}), referred from the grassroots: priority",
            "start": _instant(slot.starts_at), "end": _instant(slot.starts_at + dt.timedelta(minutes=slot.duration_min)),
            "minutesDuration": slot.duration_min, "basedOn": [{"reference": refs["request"]}],
            "participant": [{"actor": {"reference": refs["patient"]}, "status": "accepted"},
                            {"actor": {"reference": location_ref}, "status": "accepted"}],
        }))
    entries.extend(_results(parts, refs, {url for url, _ in entries}))
    return {
        "resourceType": "Bundle", "type": "collection", "timestamp": _instant(now),
        "identifier": {"system": f"urn:telehealth:{base}:record", "value": str(c.id)},
        "entry": [{"fullUrl": url, "resource": resource} for url, resource in entries],
    }


def _consent(parts: RecordParts, refs: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """The patient's written consent to the remote consultation: who consented (the patient, or a guardian
    or close relative as a RelatedPerson), when, and the signed document."""
    c, base = parts.consultation, parts.base
    assert c.consent_at is not None
    entries: list[tuple[str, dict[str, Any]]] = []
    performer = refs["patient"]
    if c.consent_by != "patient":
        performer = _ref("RelatedPerson", c.id, base)
        entries.append((performer, {
            "resourceType": "RelatedPerson", "patient": {"reference": refs["patient"]},
            "name": [{"text": c.consent_name or ""}],
            "relationship": [{"text": c.consent_relation or c.consent_by or ""}]}))
    consent: dict[str, Any] = {
        "resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "treatment", "display": "Treatment"}]},
        "category": [{"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]}],
        "patient": {"reference": refs["patient"]}, "dateTime": _instant(c.consent_at),
        "performer": [{"reference": performer}], "organization": [{"reference": refs["clinic"]}],
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}],
                       "text": "Written consent to remote consultation (remote medical service norms)"},
        "provision": {"type": "permit", "data": [{"meaning": "related", "reference": {"reference": refs["request"]}}]},
    }
    doc = parts.consent_document
    if doc is not None:
        consent["sourceAttachment"] = {
            "contentType": doc["content_type"], "size": int(doc["size"]),
            "url": f"/api/consultations/{c.id}/attachments/{doc['id']}",
            "title": "Signature" if doc["content_type"] == "image/png" and doc["filename"].startswith("consent-signature")
            else "Signed consent form",
            "creation": _instant(doc["created_at"])}
    entries.append((_ref("Consent", c.id, base), consent))
    return entries


UCUM = "http://unitsofmeasure.org"


def _results(parts: RecordParts, refs: dict[str, str], listed: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """Each test result: a laboratory value as an Observation, an imaging or ECG report as a DiagnosticReport;
    the institution that did the test is its performer (an Organization when known here, else its name)."""
    base = parts.base
    entries: list[tuple[str, dict[str, Any]]] = []
    for r in parts.results:
        kind = result_type(r.type_code)
        name = kind.name if kind else r.type_code
        performer: dict[str, Any] = {"display": r.source_name}
        source = parts.result_sources.get(r.source_org_id) if r.source_org_id is not None else None
        if source is not None:
            performer = {"reference": _ref("Organization", source.id, base), "display": source.name}
            if performer["reference"] not in listed:
                listed.add(performer["reference"])
                entries.append((performer["reference"], _organisation(source)))
        common: dict[str, Any] = {
            "identifier": [{"system": f"urn:telehealth:{base}:result", "value": str(r.id)}],
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": r.type_code, "display": name}],
                     "text": kind.name_zh if kind else name},
            "subject": {"reference": refs["patient"]},
            "effectiveDateTime": r.performed_on.isoformat(), "issued": _instant(r.recorded_at),
            "performer": [performer],
        }
        if kind is not None and kind.is_report:
            entries.append((_ref("DiagnosticReport", r.id, base), {
                "resourceType": "DiagnosticReport",
                "category": [{"coding": [{"system": DIAGNOSTIC_SERVICE, "code": kind.section}]}],
                **common, "conclusion": r.text or "-"}))
            continue
        observation: dict[str, Any] = {
            "resourceType": "Observation",
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory"}]}], **common}
        if r.value is not None:
            observation["valueQuantity"] = {"value": r.value, "unit": r.unit,
                                            **({"system": UCUM, "code": r.unit} if r.unit else {})}
        if r.text:
            observation["note"] = [{"text": r.text}]
        entries.append((_ref("Observation", r.id, base), observation))
    return entries


def _organisation(org: Organisation) -> dict[str, Any]:
    return {"resourceType": "Organization", "name": org.name,
            **({"alias": [org.name_zh]} if org.name_zh else {})}


def _practitioner(user: User) -> dict[str, Any]:
    return {"resourceType": "Practitioner", "name": [{"text": user.display_name}]}


def _disposition_text(disposition: dict[str, Any]) -> str:
    kind = str(disposition.get("kind", ""))
    lines = [{"manage_locally": "Manage at the clinic", "follow_up": "Manage at the clinic with a follow-up",
              "refer_up": "Refer up to a hospital", "refer_down": "Refer down to a member unit"}.get(kind, kind)]
    if disposition.get("details"):
        lines.append(str(disposition["details"]))
    if disposition.get("follow_up_date"):
        lines.append(f"Follow-up: {disposition['follow_up_date']}")
    for task in disposition.get("tasks", []):
        lines.append(f"Task: {task.get('text', '')}" + (f" (by {task['due_date']})" if task.get("due_date") else ""))
    return "\n".join(lines)
