"""Consultations: a clinic's request (with the patient's consent), cancel, requeue, reading one, the clinic's
decision that closes the record."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from telehealth.domain import SPECIALTIES, ConsultationState, Role, Title, Urgency
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.matching.service import QueueStatus
from telehealth.records.consent import MAX_SIGNATURE_CHARS, store_signature
from telehealth.records.durations import derive_durations
from telehealth.records.models import (
    Addendum,
    Appointment,
    Bed,
    CallSession,
    ConsentDocument,
    Consultation,
    Event,
    NewConsultation,
    Note,
    Organisation,
    Referral,
    Slot,
    User,
)
from telehealth.schema import Doc, Range, Text, require

if TYPE_CHECKING:
    from telehealth.services.context import Actor, Services

# Free-text fields of a request.
MAX_TEXT = 4000
# A drawn signature, as a data URL.
MAX_SIGNATURE = MAX_SIGNATURE_CHARS
S = ConsultationState
# The statuses of a booking still to be held (services/appointments.py).
OPEN_BOOKING = ("requested", "proposed", "booked", "started", "no_show")


@dataclass(frozen=True)
class PatientInput:
    name: Annotated[str, Text(1, 200)]
    sex: Literal["female", "male", "other"]
    birth_year: Annotated[int, Range(1900, 2100)]
    local_id: Annotated[str, Text(0, 100)] = ""

    def validate(self) -> None:
        require(self.birth_year <= dt.date.today().year, "{field} is not a plausible year",
                field="patient.birth_year")


@dataclass(frozen=True)
class ConsentInput:
    """Who gave written consent; their on-screen signature, or (on the form) a photo of the signed paper."""

    by: Literal["patient", "guardian", "relative"]
    name: Annotated[str, Text(1, 200)]
    relation: Annotated[str, Text(0, 100)] | None = None
    signature: Annotated[str, Text(0, MAX_SIGNATURE), Doc("data:image/png;base64,... of the drawn signature")] = ""

    def validate(self) -> None:
        require(self.by == "patient" or bool(self.relation and self.relation.strip()),
                "consent by a guardian or relative needs their relation to the patient", field="consent.relation")


@dataclass(frozen=True)
class CreateConsultation:
    """A clinic's request for a remote consultation."""

    patient: PatientInput
    specialty: Annotated[str, Doc("one of the specialties of docs/matching.md")]
    urgency: Urgency
    chief_complaint: Annotated[str, Text(1, 1000)]
    history: Annotated[str, Text(0, MAX_TEXT)] = ""
    reason: Annotated[str, Text(0, MAX_TEXT)] = ""
    purpose: Annotated[str, Text(0, MAX_TEXT)] = ""
    complex_case: bool = False
    requested_specialist_id: Annotated[int, Range(1)] | None = None
    min_title: Title | None = None
    title_fallback: bool = False
    consent: ConsentInput | None = None

    def validate(self) -> None:
        require(self.specialty in SPECIALTIES, "{field} must be one of: {allowed}", field="specialty",
                allowed=", ".join(SPECIALTIES))

    def to_request(self, consent_document: ConsentDocument | None) -> NewConsultation:
        consent = self.consent
        return NewConsultation(
            patient_name=self.patient.name.strip(), patient_sex=self.patient.sex,
            patient_birth_year=self.patient.birth_year, patient_local_id=self.patient.local_id.strip(),
            specialty=self.specialty, urgency=self.urgency, chief_complaint=self.chief_complaint.strip(),
            history=self.history, reason=self.reason, purpose=self.purpose, complex_case=self.complex_case,
            requested_specialist_id=self.requested_specialist_id, min_title=self.min_title,
            title_fallback=self.title_fallback, consent_by=consent.by if consent else None,
            consent_name=consent.name.strip() if consent else None,
            consent_relation=(consent.relation or "").strip() or None if consent else None,
            consent_document=consent_document)


@dataclass(frozen=True)
class ConsultationRef:
    consultation_id: Annotated[int, Range(1)]


@dataclass(frozen=True)
class Decision:
    """The clinic doctor's decision on the signed opinion, which closes the consultation."""

    decision: Literal["accept_advice", "adapt_advice", "refer_as_suggested"]
    note: Annotated[str, Text(0, 8000)] = ""

    def validate(self) -> None:
        require(self.decision != "adapt_advice" or bool(self.note.strip()),
                "say how the advice was adapted in {field}", field="note")


@dataclass(frozen=True)
class ConsultationDetail:
    consultation: Consultation
    status: QueueStatus
    patient: dict[str, Any] | None
    sessions: list[CallSession]
    durations: dict[str, Any]


@dataclass(frozen=True)
class ConsultationPage:
    """What a participant's consultation page shows: the request, the people, the note, the booking."""

    consultation: Consultation
    status: QueueStatus
    patient: dict[str, Any] | None
    clinic: Organisation | None
    specialist: User | None
    note: Note | None
    addenda: list[Addendum]
    booking: Slot | None
    organisations: dict[int, Organisation]
    # The reserved inpatient bed a referral up for admission booked.
    bed: Bed | None = None
    # The booking, for a booked consultation (docs/scheduling.md).
    appointment: Appointment | None = None


@dataclass(frozen=True)
class Home:
    """A doctor's home page: their recent consultations, those waiting on them, and open referrals."""

    recent: list[Consultation]
    to_decide: list[Consultation]
    referrals: list[Referral]
    # Referrals up to the specialist's hospital: the patients it receives, with their record and results.
    received: list[Referral] = field(default_factory=list)


class Consultations:
    def __init__(self, services: Services) -> None:
        self._s = services

    async def create(self, actor: Actor, body: CreateConsultation, *,
                     consent_document: ConsentDocument | None = None) -> tuple[Consultation, QueueStatus]:
        """Record a clinic's request with its signed consent and queue it; without consent it waits as
        `requested`. `consent_document` is a form's photo of the signed paper, instead of a drawn signature."""
        s = self._s
        request, _ = await self.prepare(actor, body, consent_document=consent_document)
        queue = request.consent_by is not None
        # The request is one statement by itself (patient, consultation, consent and first events), and the
        # ring follows at once; its audit entry comes right after the ring, in a transaction of its own, so
        # that the serialised audit chain is not on the path from a clinic's request to a specialist's ring.
        clinic_org_id = actor.user.organisation_id
        assert clinic_org_id is not None  # `prepare` refuses a doctor of no institution
        consultation = await s.store.insert_consultation(
            request, clinic_org_id=clinic_org_id, doctor_id=actor.id, now=s.now(), queue=queue)
        if queue:
            consultation = await s.matcher.queue_live(consultation)
        await s.audit(actor, "consultation.create", f"consultation:{consultation.id}")
        return consultation, await s.matcher.status(consultation)

    async def prepare(self, actor: Actor, body: CreateConsultation, *,
                      consent_document: ConsentDocument | None = None) -> tuple[NewConsultation, set[int]]:
        """A clinic's request checked as every request is (the role, a hospital to consult, a named specialist
        who may take it) with its consent signature stored: the request to insert, and the hospitals it may go
        to. Used for an on-demand request and for a booked one alike."""
        doctor = actor.user
        if doctor.role is not Role.clinic_doctor or doctor.organisation_id is None:
            raise TelehealthError(ErrorCode.forbidden, "only a clinic doctor of an institution can ask for a "
                                                       "consultation")
        partners = await self.require_hospital(doctor.organisation_id)
        if body.consent is not None and consent_document is None:
            require(bool(body.consent.signature), "{field} is required: the signature of whoever consented, as "
                    "a data:image/png;base64 URL", field="consent.signature")
            consent_document = await store_signature(self._s.files, body.consent.signature)
        if body.requested_specialist_id is not None:
            await self.require_eligible_named(body.requested_specialist_id, body.specialty, body.min_title,
                                              partners)
        return body.to_request(consent_document), partners

    async def require_hospital(self, clinic_org_id: int) -> set[int]:
        """The hospitals this clinic's requests may go to (its alliance's and those of valid agreements).
        With none, a request could only wait for its time limit: it is refused at once instead."""
        _, partners = await self._s.store.get_partner_hospitals(clinic_org_id, self._s.now())
        if not partners:
            raise TelehealthError(ErrorCode.no_agreement, "your institution has no hospital to consult: ask the "
                                  "administrator of your alliance to add a hospital to the alliance or to sign a "
                                  "remote-care agreement with one")
        return partners

    async def require_eligible_named(self, specialist_id: int, specialty: str, min_title: Title | None,
                                     partners: set[int]) -> User:
        """A named specialist is rung first, not let past a rule: they must meet the agreement, the specialty
        and the title like anyone else, or the name could not be honoured and the clinic is told why now."""
        named = await self._s.store.get_user(specialist_id)
        if named is None or named.role is not Role.specialist or not named.active:
            raise TelehealthError(ErrorCode.invalid_input,
                                  "`requested_specialist_id` does not name an active specialist")
        if specialty not in named.specialties:
            raise TelehealthError(ErrorCode.not_eligible, "the specialist you named does not practise {specialty}",
                                  specialty=specialty)
        if named.organisation_id not in partners:
            raise TelehealthError(ErrorCode.not_eligible, "the specialist you named works at a hospital your "
                                                          "institution has no valid agreement with")
        if min_title is not None and (named.title is None or named.title.rank < min_title.rank):
            raise TelehealthError(ErrorCode.not_eligible, "the specialist you named is below the minimum title "
                                                          "you asked for")
        return named

    async def authorize_consent(self, actor: Actor, consultation_id: int) -> Consultation:
        consultation = await self._s.access.participant_consultation(actor, consultation_id)
        if actor.user.role is not Role.clinic_doctor:
            raise TelehealthError(ErrorCode.forbidden, "only the requesting clinic records the patient's consent")
        if consultation.state is not S.requested:
            raise TelehealthError(ErrorCode.invalid_transition, "the consultation is {state}: consent is recorded "
                                  "only for a request waiting for it", state=consultation.state.value)
        if consultation.consent_at is not None:
            # A booked consultation waits as `requested` with its consent: its time, not a consent, starts it.
            raise TelehealthError(ErrorCode.invalid_transition, "the patient's consent is already recorded")
        return consultation

    async def record_consent(self, actor: Actor, consultation_id: int, body: ConsentInput, *,
                             consent_document: ConsentDocument | None = None) -> tuple[Consultation, QueueStatus]:
        """Consent given after the request (a drawn signature, or on the form a photo of the signed paper):
        kept with the consultation, which then goes into the queue."""
        s = self._s
        consultation = await self.authorize_consent(actor, consultation_id)
        await self.require_hospital(consultation.clinic_org_id)
        if consent_document is None:
            require(bool(body.signature), "{field} is required: the signature of whoever consented, as a "
                    "data:image/png;base64 URL", field="signature")
            consent_document = await store_signature(s.files, body.signature)
        consent = (body.by, body.name.strip(), (body.relation or "").strip() or None)
        async with s.unit(actor) as unit:
            consultation = await s.store.record_consent(consultation.id, consent_document, consent,
                                                        doctor_id=actor.id, now=unit.now)
            unit.audit("consultation.consent", f"consultation:{consultation.id}", {"by": body.by})
        consultation = await s.matcher.queue_live(consultation)
        return consultation, await s.matcher.status(consultation)

    async def _require_not_booked(self, consultation_id: int) -> None:
        """A booked consultation waiting for (or at) its time changes through its booking, which keeps the two
        in step and takes a reason: not by the on-demand cancel or re-queue."""
        appointment = await self._s.store.get_appointment_of(consultation_id)
        if appointment is not None and appointment.status in OPEN_BOOKING:
            raise TelehealthError(ErrorCode.invalid_transition, "this consultation is booked: reschedule or cancel "
                                  "it with its reason on the booked consultations page")

    async def cancel(self, actor: Actor, consultation_id: int) -> Consultation:
        await self._s.access.participant_consultation(actor, consultation_id)
        await self._require_not_booked(consultation_id)
        consultation = await self._s.matcher.cancel(consultation_id, actor.user)
        await self._s.audit(actor, "consultation.cancel", f"consultation:{consultation_id}")
        return consultation

    async def requeue(self, actor: Actor, consultation_id: int) -> tuple[Consultation, QueueStatus]:
        """A clinic queues an expired request again; a specialist gives an accepted one back."""
        consultation = await self._s.access.participant_consultation(actor, consultation_id)
        await self._require_not_booked(consultation.id)
        if actor.user.role is Role.specialist:
            consultation = await self._s.matcher.give_back(consultation.id, actor.user)
        else:
            consultation = await self._s.matcher.enqueue(consultation, actor_id=actor.id)
        return consultation, await self._s.matcher.status(consultation)

    async def queue_summaries(self, actor: Actor, consultation_ids: list[int]) -> dict[int, tuple[str, Organisation | None]]:
        """What a specialist sees of requests in the queue they may take: the complaint and the clinic."""
        if actor.user.role is not Role.specialist:
            raise TelehealthError(ErrorCode.forbidden, "your role may not do this")
        store = self._s.store
        out: dict[int, tuple[str, Organisation | None]] = {}
        for cid in consultation_ids:
            c = await store.get_consultation(cid)
            if c is not None:
                out[cid] = (c.chief_complaint, await store.get_organisation(c.clinic_org_id))
        return out

    async def watched(self, actor: Actor, consultation_id: int) -> tuple[Consultation, QueueStatus]:
        """A participant's own consultation with its place in the queue (no record content: not audited)."""
        consultation = await self._s.access.participant_consultation(actor, consultation_id)
        return consultation, await self._s.matcher.status(consultation)

    async def open_record(self, actor: Actor, consultation_id: int) -> Consultation:
        """A consultation the actor may see, its reading audited."""
        consultation = await self._s.access.consultation(actor, consultation_id)
        await self._s.audit(actor, "consultation.view", f"consultation:{consultation.id}")
        return consultation

    async def detail(self, actor: Actor, consultation_id: int) -> ConsultationDetail:
        consultation = await self.open_record(actor, consultation_id)
        store = self._s.store
        sessions = await store.list_call_sessions(consultation.id)
        durations = derive_durations(await store.list_events(consultation.id), sessions).as_dict()
        return ConsultationDetail(consultation, await self._s.matcher.status(consultation),
                                  await store.get_patient_summary(consultation.patient_id), sessions, durations)

    async def page(self, actor: Actor, consultation_id: int) -> ConsultationPage:
        consultation = await self.open_record(actor, consultation_id)
        store = self._s.store
        note = await store.get_note(consultation.id)
        orgs = {o.id: o for o in await store.list_organisations()}
        return ConsultationPage(
            consultation, await self._s.matcher.status(consultation),
            await store.get_patient_summary(consultation.patient_id), orgs.get(consultation.clinic_org_id),
            await store.get_user(consultation.assigned_specialist_id) if consultation.assigned_specialist_id
            else None, note, await store.list_addenda(note.id) if note else [],
            await store.get_booking(consultation.id), orgs, await store.get_bed_booking(consultation.id),
            await store.get_appointment_of(consultation.id))

    async def events(self, actor: Actor, consultation_id: int) -> list[Event]:
        consultation = await self._s.access.consultation(actor, consultation_id)
        await self._s.audit(actor, "consultation.view_events", f"consultation:{consultation.id}")
        return await self._s.store.list_events(consultation.id)

    async def list_own(self, actor: Actor, limit: int = 100) -> list[Consultation]:
        """A clinic doctor's institution's consultations, or those a specialist took."""
        user = actor.user
        if user.role is Role.clinic_doctor:
            return await self._s.store.list_consultations(clinic_org_id=user.organisation_id, limit=limit)
        if user.role is Role.specialist:
            return await self._s.store.list_consultations(specialist_id=user.id, limit=limit)
        raise TelehealthError(ErrorCode.forbidden, "your role may not do this")

    async def clinic_home(self, actor: Actor) -> Home:
        """The clinic's consultations, the signed opinions awaiting its decision, and referrals down to it."""
        org_id = actor.user.organisation_id
        if actor.user.role is not Role.clinic_doctor or org_id is None:
            raise TelehealthError(ErrorCode.forbidden, "your role may not do this")
        store = self._s.store
        return Home(await store.list_consultations(clinic_org_id=org_id, limit=50),
                    await store.list_consultations(clinic_org_id=org_id, states=[S.signed], limit=200),
                    await store.list_referrals(to_org_id=org_id, direction="down", open_only=True))

    async def specialist_home(self, actor: Actor) -> Home:
        """The consultations a specialist took and has not signed yet, and the referrals they wrote."""
        if actor.user.role is not Role.specialist:
            raise TelehealthError(ErrorCode.forbidden, "your role may not do this")
        store = self._s.store
        active = await store.list_consultations(specialist_id=actor.id, states=[S.accepted, S.in_call, S.ended],
                                                limit=50)
        received = await store.list_referrals(to_org_id=actor.user.organisation_id, direction="up", open_only=True,
                                              limit=20) if actor.user.organisation_id is not None else []
        return Home(active, [], await store.list_referrals(created_by=actor.id, limit=20), received)

    async def authorize_decision(self, actor: Actor, consultation_id: int) -> Consultation:
        consultation = await self._s.access.participant_consultation(actor, consultation_id)
        if actor.user.role is not Role.clinic_doctor:
            raise TelehealthError(ErrorCode.forbidden, "only the requesting clinic records its decision")
        return consultation

    async def decide(self, actor: Actor, consultation_id: int, body: Decision) -> Consultation:
        """The clinic doctor, who stays responsible for the patient, records their decision and closes the
        record."""
        consultation = await self.authorize_decision(actor, consultation_id)
        async with self._s.unit(actor) as unit:
            closed = await self._s.store.close_with_decision(consultation.id, actor.id, body.decision,
                                                             body.note.strip(), now=unit.now)
            unit.audit("consultation.decision", f"consultation:{consultation.id}")
            if closed.assigned_specialist_id:
                unit.outbox.to_user(closed.assigned_specialist_id, "consultation_state", {
                    "consultation_id": closed.id, "state": closed.state.value, "decision": body.decision})
        return closed

