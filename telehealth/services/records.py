"""The referral record as a whole: the printable record, its FHIR export, and the attachments (test results,
photos, the consent form) that belong to it. Every read of the record is audited."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from telehealth.domain import ConsultationState, Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.durations import Durations, derive_durations
from telehealth.records.fhir import RecordParts, export_bundle
from telehealth.records.models import Consultation, Organisation, User
from telehealth.services.results import PatientResults

if TYPE_CHECKING:
    from telehealth.services.context import Actor, Services

CLOSED = (ConsultationState.closed, ConsultationState.cancelled)


def clean_filename(name: str | None) -> str:
    """A file name safe to keep and to send back: no path, no control characters, at most 200 characters."""
    base = re.sub(r"[\x00-\x1f/\\]+", "_", (name or "attachment").rsplit("/", 1)[-1]).strip() or "attachment"
    return base[:200]


@dataclass(frozen=True)
class Handover:
    at: Any
    from_name: str
    to_name: str


@dataclass(frozen=True)
class RecordPage:
    parts: RecordParts
    accompanying: User | None
    handovers: list[Handover]
    durations: Durations
    organisations: dict[int, Organisation]
    attachments: list[dict[str, Any]]
    results: PatientResults


@dataclass(frozen=True)
class Download:
    path: Path
    filename: str
    content_type: str


class Records:
    def __init__(self, services: Services) -> None:
        self._s = services

    async def _parts(self, consultation: Consultation) -> RecordParts:
        store = self._s.store
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
        consent_document = next((a for a in await store.list_attachments(consultation.id)
                                 if a.get("kind") == "consent"), None)
        results, sources = await self._s.results.list_results(consultation)
        return RecordParts(
            consultation=consultation, patient=await store.get_patient_summary(consultation.patient_id) or {},
            clinic=clinic, requester=requester, specialist=specialist,
            sessions=await store.list_call_sessions(consultation.id), note=note,
            addenda=await store.list_addenda(note.id) if note else [],
            booking=booking,
            booking_hospital=await store.get_organisation(booking.hospital_org_id) if booking else None,
            referrals=await store.list_referrals(consultation_id=consultation.id),
            consent_document=consent_document,
            base=self._s.node.split(":")[0] or "telehealth",
            results=results, result_sources=sources, bed=await store.get_bed_booking(consultation.id),
        )

    async def page(self, actor: Actor, consultation_id: int) -> RecordPage:
        consultation = await self._s.access.record(actor, consultation_id)
        await self._s.audit(actor, "record.view", f"consultation:{consultation.id}")
        store = self._s.store
        parts = await self._parts(consultation)
        events = await store.list_events(consultation.id)
        names: dict[int, str] = {}

        async def name(user_id: Any) -> str:
            if isinstance(user_id, int) and user_id not in names:
                user = await store.get_user(user_id)
                names[user_id] = user.display_name if user else "?"
            return names.get(user_id, "?") if isinstance(user_id, int) else "?"

        handovers = [Handover(e.at, await name(e.data.get("from_doctor")), await name(e.data.get("to_doctor")))
                     for e in events if e.kind == "handover"]
        accompanying = await store.get_user(consultation.accompanying_doctor_id)
        return RecordPage(parts, accompanying, handovers, derive_durations(events, parts.sessions),
                          {o.id: o for o in await store.list_organisations()},
                          await store.list_attachments(consultation.id),
                          await self._s.results.for_consultation(actor, consultation))

    async def fhir(self, actor: Actor, consultation_id: int) -> dict[str, Any]:
        consultation = await self._s.access.record(actor, consultation_id)
        await self._s.audit(actor, "record.export_fhir", f"consultation:{consultation.id}")
        return export_bundle(await self._parts(consultation), now=self._s.now())

    # -- attachments --------------------------------------------------------------------------------

    async def authorize_upload(self, actor: Actor, consultation_id: int) -> Consultation:
        """The consultation a clinic doctor may add a file to: their clinic's, and still open."""
        if actor.user.role is not Role.clinic_doctor:
            raise TelehealthError(ErrorCode.forbidden, "your role may not do this")
        consultation = await self._s.access.consultation(actor, consultation_id)
        if consultation.state in CLOSED:
            raise TelehealthError(ErrorCode.invalid_transition, "the consultation is {state}",
                                  state=consultation.state.value)
        return consultation

    async def add_attachment(self, actor: Actor, consultation_id: int, chunks: AsyncIterator[bytes],
                             filename: str | None) -> dict[str, Any]:
        """Keep an uploaded file (its type checked from its content) and tell whoever has the consultation
        open, once the record of it has committed."""
        consultation = await self.authorize_upload(actor, consultation_id)
        stored = await self._s.files.save(chunks, self._s.settings.uploads.max_bytes)
        async with self._s.unit(actor) as unit:
            row = await self._s.store.insert_attachment(
                consultation.id, stored.sha256, stored.content_type, stored.size, clean_filename(filename),
                actor.id, now=unit.now)
            unit.audit("attachment.add", f"consultation:{consultation.id}")
            # A snapshot taken during the call arrives on both screens.
            people = {consultation.requesting_doctor_id, consultation.accompanying_doctor_id}
            if consultation.assigned_specialist_id is not None:
                people.add(consultation.assigned_specialist_id)
            for uid in people:
                unit.outbox.to_user(uid, "attachment_added", {
                    "consultation_id": consultation.id, "attachment_id": row["id"],
                    "content_type": row["content_type"]})
        return row

    async def attachments(self, actor: Actor, consultation_id: int) -> list[dict[str, Any]]:
        consultation = await self._s.access.consultation(actor, consultation_id)
        return await self._s.store.list_attachments(consultation.id)

    async def open_attachment(self, actor: Actor, consultation_id: int, attachment_id: int) -> Download:
        consultation = await self._s.access.consultation(actor, consultation_id)
        row = await self._s.store.get_attachment(consultation.id, attachment_id)
        if row is None:
            raise TelehealthError(ErrorCode.not_found, "no such attachment")
        await self._s.audit(actor, "attachment.view", f"consultation:{consultation.id}", {"attachment": row["id"]})
        return Download(self._s.files.path_for(row["sha256"]), row["filename"], row["content_type"])
