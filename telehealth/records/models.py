"""Value objects the store hands out: plain frozen dataclasses, no database types."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from telehealth.domain import AgreementState, ConsultationState, OrgLevel, Role, Title, Urgency


@dataclass(frozen=True)
class Alliance:
    id: int
    name: str
    name_zh: str
    kind: str
    region: str
    # The alliance's own rule: the share of outpatient slots its hospitals that do not lead it reserve, in
    # percent, unless the administrator sets one for the hospital. None: no rule (they reserve none).
    member_share_pct: int | None = None


@dataclass(frozen=True)
class Organisation:
    id: int
    name: str
    name_zh: str
    level: OrgLevel
    alliance_id: int | None
    leads_alliance: bool
    city_group_pilot: bool
    reserved_share_pct: int | None
    region: str


@dataclass(frozen=True)
class Agreement:
    """A remote-care cooperation agreement between a grassroots institution and a hospital: an invitation
    until both sides' administrators approved it, then in effect until it is ended or its period is over."""

    id: int
    clinic_org_id: int
    hospital_org_id: int
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    created_by: int | None
    state: AgreementState = AgreementState.in_effect
    created_at: dt.datetime | None = None
    clinic_approved_by: int | None = None
    clinic_approved_at: dt.datetime | None = None
    hospital_approved_by: int | None = None
    hospital_approved_at: dt.datetime | None = None
    closed_by: int | None = None
    closed_at: dt.datetime | None = None
    closed_reason: str = ""

    @property
    def in_effect_since(self) -> dt.datetime | None:
        """When the second approval came (None for one recorded before agreements needed both sides)."""
        if self.clinic_approved_at is None or self.hospital_approved_at is None:
            return None
        return max(self.clinic_approved_at, self.hospital_approved_at)

    def valid_at(self, now: dt.datetime) -> bool:
        """Did it let the clinic consult the hospital at `now`? Only once in effect, within its period."""
        if self.state not in (AgreementState.in_effect, AgreementState.ended):
            return False
        since = self.in_effect_since
        return (self.valid_from <= now and (since is None or since <= now)
                and (self.valid_to is None or self.valid_to > now))


@dataclass(frozen=True)
class DutyDay:
    """A clinician on outpatient duty at a (grassroots) institution on a local day."""

    id: int
    user_id: int
    org_id: int
    day: dt.date


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: Role
    organisation_id: int | None
    title: Title | None
    specialties: tuple[str, ...]
    language: str
    is_system_admin: bool
    active: bool
    password_hash: str = field(repr=False, default="")


@dataclass(frozen=True)
class WebSession:
    user_id: int
    csrf_token: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class SecondFactor:
    """An account's authenticator app: its secret (the server computes codes from it) and whether a first code
    has confirmed it."""

    user_id: int
    secret: str
    created_at: dt.datetime
    enrolled_at: dt.datetime | None
    last_step: int | None
    recovery_codes_left: int = 0

    @property
    def enrolled(self) -> bool:
        return self.enrolled_at is not None


@dataclass(frozen=True)
class ApiToken:
    """An API token as its owner and administrators see it (never the token itself)."""

    id: int
    user_id: int
    label: str
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None

    def live_at(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


@dataclass(frozen=True)
class Patient:
    id: int
    organisation_id: int
    name: str = field(repr=False)
    sex: str = field(repr=False)
    birth_year: int = field(repr=False)
    local_id: str = field(repr=False)


@dataclass(frozen=True)
class ConsentDocument:
    """The stored file that proves written consent (kept as an attachment of kind `consent`)."""

    sha256: str
    content_type: str
    size: int
    filename: str


@dataclass(frozen=True)
class NewConsultation:
    """What a clinic doctor submits; checked here so that every entry point refuses the same things."""

    patient_name: str
    patient_sex: str
    patient_birth_year: int
    patient_local_id: str
    specialty: str
    urgency: Urgency
    chief_complaint: str
    history: str = ""
    reason: str = ""
    purpose: str = ""
    complex_case: bool = False
    requested_specialist_id: int | None = None
    min_title: Title | None = None
    title_fallback: bool = False
    consent_by: str | None = None
    consent_name: str | None = None
    consent_relation: str | None = None
    # The signed consent: an on-screen signature or a photo/scan of the signed form, already stored.
    consent_document: ConsentDocument | None = None

    def __repr__(self) -> str:  # never print patient data
        return f"NewConsultation(specialty={self.specialty!r}, urgency={self.urgency!r})"


@dataclass(frozen=True)
class Consultation:
    id: int
    patient_id: int
    clinic_org_id: int
    requesting_doctor_id: int
    accompanying_doctor_id: int
    specialty: str
    urgency: Urgency
    complex_case: bool
    requested_specialist_id: int | None
    min_title: Title | None
    title_fallback: bool
    state: ConsultationState
    assigned_specialist_id: int | None
    version: int
    created_at: dt.datetime
    queued_at: dt.datetime | None
    accepted_at: dt.datetime | None
    ended_at: dt.datetime | None
    consent_at: dt.datetime | None
    updated_at: dt.datetime
    reason: str = field(repr=False, default="")
    purpose: str = field(repr=False, default="")
    chief_complaint: str = field(repr=False, default="")
    history: str = field(repr=False, default="")
    consent_by: str | None = field(repr=False, default=None)
    consent_name: str | None = field(repr=False, default=None)
    consent_relation: str | None = field(repr=False, default=None)
    clinic_decision: str | None = None
    clinic_decision_note: str = field(repr=False, default="")
    # When it first entered the queue (never reset): its place in the queue is by this time.
    first_queued_at: dt.datetime | None = None


@dataclass(frozen=True)
class CallSession:
    id: int
    consultation_id: int
    clinic_user_id: int
    specialist_user_id: int
    started_at: dt.datetime
    connected_at: dt.datetime | None
    ended_at: dt.datetime | None
    end_reason: str | None

    def participants(self) -> tuple[int, int]:
        return (self.clinic_user_id, self.specialist_user_id)

    def peer_of(self, user_id: int) -> int:
        return self.specialist_user_id if user_id == self.clinic_user_id else self.clinic_user_id


@dataclass(frozen=True)
class Event:
    id: int
    consultation_id: int
    session_id: int | None
    kind: str
    actor_id: int | None
    at: dt.datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class Diagnosis:
    code: str
    description: str


@dataclass(frozen=True)
class Note:
    """The specialist's opinion report in SOAP form, with ICD-10 diagnoses and the disposition."""

    id: int
    consultation_id: int
    author_id: int
    subjective: str
    objective: str
    assessment: str
    diagnoses: tuple[Diagnosis, ...]
    plan: str
    disposition: dict[str, Any]
    store_and_forward: bool
    draft_saved_at: dt.datetime
    signed_at: dt.datetime | None
    signed_by: int | None

    @property
    def signed(self) -> bool:
        return self.signed_at is not None


@dataclass(frozen=True)
class Addendum:
    id: int
    note_id: int
    author_id: int
    text: str
    signed_at: dt.datetime


@dataclass(frozen=True)
class Slot:
    """One outpatient appointment a hospital department publishes; reserved ones are for grassroots referrals."""

    id: int
    hospital_org_id: int
    department: str
    starts_at: dt.datetime
    duration_min: int
    location: str
    reserved: bool
    released_at: dt.datetime | None
    booked_consultation_id: int | None
    booked_at: dt.datetime | None


@dataclass(frozen=True)
class SlotDay:
    """A department's day of slots, counted: what the reserved-slot figures are made of."""

    hospital_org_id: int
    department: str
    day: dt.date
    total: int
    reserved: int
    booked: int
    released: int


@dataclass(frozen=True)
class Bed:
    """One inpatient bed a hospital ward makes available on a local day; reserved ones are for patients referred
    up from grassroots institutions."""

    id: int
    hospital_org_id: int
    ward: str
    day: dt.date
    number: int
    reserved: bool
    released_at: dt.datetime | None
    booked_consultation_id: int | None
    booked_at: dt.datetime | None


@dataclass(frozen=True)
class BedDay:
    """A ward's day of beds, counted: what the reserved-bed figures are made of."""

    hospital_org_id: int
    ward: str
    day: dt.date
    total: int
    reserved: int
    booked: int
    released: int


@dataclass(frozen=True)
class ReferralTask:
    id: int
    referral_id: int
    text: str
    due_date: dt.date | None
    done_at: dt.datetime | None
    done_by: int | None


@dataclass(frozen=True)
class Referral:
    """Where the disposition sends the patient: up to a hospital (with a booked slot) or down to a member unit
    (with a care plan and follow-up tasks, closed by the clinic's outcome)."""

    id: int
    consultation_id: int
    direction: str
    from_org_id: int
    to_org_id: int
    department: str
    slot_id: int | None
    priority: bool
    care_plan: str
    status: str
    outcome: str
    created_by: int
    created_at: dt.datetime
    closed_at: dt.datetime | None
    tasks: tuple[ReferralTask, ...] = ()
    # A referral up for admission: the reserved inpatient bed it booked.
    bed_id: int | None = None


@dataclass(frozen=True)
class NewReferral:
    direction: str  # "up" or "down"
    from_org_id: int
    to_org_id: int
    department: str = ""
    slot_id: int | None = None
    priority: bool = False
    care_plan: str = ""
    tasks: tuple[tuple[str, dt.date | None], ...] = ()
    bed_id: int | None = None


@dataclass(frozen=True)
class NewResult:
    """A test result about to enter a patient's record (checked by the service before it gets here)."""

    type_code: str
    performed_on: dt.date
    value: float | None
    unit: str
    text: str
    source_org_id: int | None
    source_name: str
    consultation_id: int | None = None
    origin: str = "recorded"


@dataclass(frozen=True)
class Result:
    """A test result in a patient's record: a laboratory value, or an imaging or ECG report."""

    id: int
    patient_id: int
    type_code: str
    value: float | None = field(repr=False)
    unit: str
    text: str = field(repr=False)
    performed_on: dt.date
    source_org_id: int | None
    source_name: str
    consultation_id: int | None
    origin: str
    recorded_by: int
    recorded_at: dt.datetime


@dataclass(frozen=True)
class RecognisedItem:
    """A test type an alliance's member units recognise from one another, for `validity_days` after the test."""

    alliance_id: int
    type_code: str
    validity_days: int
    updated_at: dt.datetime


@dataclass(frozen=True)
class ConsultationHours:
    """A span of time a specialist gives to booked consultations."""

    id: int
    specialist_id: int
    hospital_org_id: int
    department: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    created_by: int
    created_at: dt.datetime
    withdrawn_at: dt.datetime | None


@dataclass(frozen=True)
class Desk:
    """An account that keeps a hospital department's remote-consultation desk."""

    user_id: int
    hospital_org_id: int
    department: str
    granted_by: int | None
    granted_at: dt.datetime


@dataclass(frozen=True)
class Appointment:
    """A booked consultation: when, at which hospital department, with which specialist."""

    id: int
    consultation_id: int
    clinic_org_id: int
    hospital_org_id: int
    department: str
    specialist_id: int | None
    starts_at: dt.datetime | None
    duration_min: int
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    status: str
    reason: str
    booked_at: dt.datetime | None
    reminded_day_at: dt.datetime | None
    reminded_soon_at: dt.datetime | None
    started_at: dt.datetime | None
    closed_at: dt.datetime | None
    reschedules: int
    created_by: int
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int

    @property
    def ends_at(self) -> dt.datetime | None:
        return self.starts_at + dt.timedelta(minutes=self.duration_min) if self.starts_at else None
