"""The referral record: one printable page per consultation, and its FHIR R4 export. Every view is audited."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from aiohttp import web

from telehealth.domain import Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.durations import derive_durations
from telehealth.records.fhir import RecordParts, export_bundle
from telehealth.records.models import Consultation
from telehealth.server import keys
from telehealth.server.api import audit, get_visible_consultation, path_id
from telehealth.server.auth import allow, page
from telehealth.server.pages import render
from telehealth.views import referral_view, slot_view


async def _parts(request: web.Request, consultation: Consultation) -> RecordParts:
    store = request.app[keys.STORE]
    clinic = await store.get_organisation(consultation.clinic_org_id)
    requester = await store.get_user(consultation.requesting_doctor_id)
    if clinic is None or requester is None:
        raise TelehealthError(ErrorCode.internal_error, "the record refers to a missing institution or user")
    specialist = (await store.get_user(consultation.assigned_specialist_id)
                  if consultation.assigned_specialist_id else None)
    note = await store.get_note(consultation.id)
    if note is not None and not note.signed:
        note = None  # a draft is not part of the record
    booking = await store.get_booking(consultation.id)
    consent_document = next((a for a in await store.list_attachments(consultation.id) if a.get("kind") == "consent"),
                            None)
    return RecordParts(
        consultation=consultation, patient=await store.get_patient_summary(consultation.patient_id) or {},
        clinic=clinic, requester=requester, specialist=specialist,
        sessions=await store.list_call_sessions(consultation.id), note=note,
        addenda=await store.list_addenda(note.id) if note else [],
        booking=booking,
        booking_hospital=await store.get_organisation(booking.hospital_org_id) if booking else None,
        referrals=await store.list_referrals(consultation_id=consultation.id),
        consent_document=consent_document,
        base=request.app[keys.NODE].split(":")[0] or "telehealth",
    )


@page(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_record_page(request: web.Request) -> web.StreamResponse:
    consultation = await get_visible_consultation(request, path_id(request))
    await audit(request, "record.view", f"consultation:{consultation.id}")
    parts = await _parts(request, consultation)
    store = request.app[keys.STORE]
    orgs = {o.id: o for o in await store.list_organisations()}
    tz = request.app[keys.SETTINGS].slots.tz
    events = await store.list_events(consultation.id)
    durations = derive_durations(events, parts.sessions)
    names: dict[int, str] = {}

    async def name(user_id: Any) -> str:
        if isinstance(user_id, int) and user_id not in names:
            user = await store.get_user(user_id)
            names[user_id] = user.display_name if user else "?"
        return names.get(user_id, "?") if isinstance(user_id, int) else "?"

    handovers = [{"at": e.at, "from_name": await name(e.data.get("from_doctor")),
                  "to_name": await name(e.data.get("to_doctor"))} for e in events if e.kind == "handover"]
    context: dict[str, Any] = {
        "accompanying": await store.get_user(consultation.accompanying_doctor_id), "handovers": handovers,
        "consent_document": parts.consent_document,
        "consultation": consultation, "patient": parts.patient, "clinic": parts.clinic,
        "requester": parts.requester, "specialist": parts.specialist, "sessions": parts.sessions,
        "durations": durations, "note": parts.note, "addenda": parts.addenda,
        "booking": slot_view(parts.booking, orgs, tz) if parts.booking else None,
        "referrals": [referral_view(r, orgs) for r in parts.referrals],
        "attachments": await store.list_attachments(consultation.id),
    }
    return render(request, "record_page.html", context)


@allow(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_fhir_export(request: web.Request) -> web.StreamResponse:
    consultation = await get_visible_consultation(request, path_id(request))
    await audit(request, "record.export_fhir", f"consultation:{consultation.id}")
    bundle = export_bundle(await _parts(request, consultation), now=dt.datetime.now(dt.UTC))
    return web.Response(text=json.dumps(bundle, ensure_ascii=False), content_type="application/fhir+json",
                        headers={"Content-Disposition": f'attachment; filename="consultation-{consultation.id}.json"'})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/records/{consultation_id}", handle_record_page)
    app.router.add_get("/api/consultations/{consultation_id}/fhir", handle_fhir_export)
