"""The project's vocabulary: roles, titles, urgency, consultation states and their legal transitions."""

from __future__ import annotations

import enum

from telehealth.errors import ErrorCode, TelehealthError


class Role(enum.StrEnum):
    clinic_doctor = "clinic_doctor"
    specialist = "specialist"
    admin = "admin"


class Title(enum.StrEnum):
    """Professional titles in rising seniority (医师, 主治医师, 副主任医师, 主任医师)."""

    resident = "resident"
    attending = "attending"
    associate_chief = "associate_chief"
    chief = "chief"

    @property
    def rank(self) -> int:
        return _TITLE_RANK[self]


_TITLE_RANK = {Title.resident: 0, Title.attending: 1, Title.associate_chief: 2, Title.chief: 3}


class OrgLevel(enum.StrEnum):
    village_clinic = "village_clinic"
    township_centre = "township_centre"
    county_hospital = "county_hospital"
    city_hospital = "city_hospital"

    @property
    def is_hospital(self) -> bool:
        return self in (OrgLevel.county_hospital, OrgLevel.city_hospital)

    @property
    def is_grassroots(self) -> bool:
        """Village clinics and township (or community) health centres: the institutions reserved slots are for."""
        return self in (OrgLevel.village_clinic, OrgLevel.township_centre)


class Urgency(enum.StrEnum):
    emergency = "emergency"
    urgent = "urgent"
    routine = "routine"

    @property
    def rank(self) -> int:
        """0 is the most urgent."""
        return _URGENCY_RANK[self]


_URGENCY_RANK = {Urgency.emergency: 0, Urgency.urgent: 1, Urgency.routine: 2}


SPECIALTIES: tuple[str, ...] = (
    "cardiology",
    "paediatrics",
    "neurology",
    "internal_medicine",
    "dermatology",
    "obstetrics",
    "general_surgery",
)


class Presence(enum.StrEnum):
    available = "available"
    busy = "busy"
    away = "away"


class ConsultationState(enum.StrEnum):
    requested = "requested"
    queued = "queued"
    offered = "offered"
    accepted = "accepted"
    in_call = "in_call"
    ended = "ended"
    signed = "signed"
    closed = "closed"
    cancelled = "cancelled"
    expired = "expired"

    @property
    def is_waiting(self) -> bool:
        return self in (ConsultationState.queued, ConsultationState.offered)

    @property
    def is_final(self) -> bool:
        return self in (ConsultationState.closed, ConsultationState.cancelled)


S = ConsultationState

# Every legal move of a consultation. Anything else is an error naming what was expected.
TRANSITIONS: dict[ConsultationState, frozenset[ConsultationState]] = {
    # requested -> accepted: a booked consultation's time has come, with the specialist it was booked with.
    S.requested: frozenset({S.queued, S.accepted, S.cancelled}),
    # queued -> accepted: a specialist took it from the queue (pull) without a ring.
    S.queued: frozenset({S.offered, S.accepted, S.cancelled, S.expired}),
    # offered -> queued: every ring was declined or timed out.
    S.offered: frozenset({S.queued, S.accepted, S.cancelled, S.expired}),
    # accepted -> queued: the specialist gave it back; accepted -> ended: answered in writing
    # without a call (store-and-forward).
    # accepted -> requested: nobody came to a booked consultation; it waits to be booked again or queued.
    S.accepted: frozenset({S.in_call, S.queued, S.ended, S.requested, S.cancelled}),
    # in_call -> accepted: the call dropped and nobody came back within the grace period; the
    # two can join a new session, or the specialist can give it back to the queue.
    S.in_call: frozenset({S.ended, S.accepted}),
    S.ended: frozenset({S.signed, S.in_call}),
    S.signed: frozenset({S.closed}),
    S.closed: frozenset(),
    S.cancelled: frozenset(),
    # expired -> queued: the clinic re-queued it.
    S.expired: frozenset({S.queued, S.cancelled}),
}


def check_transition(current: ConsultationState, target: ConsultationState) -> None:
    """Raise unless a consultation in `current` may move to `target`."""
    allowed = TRANSITIONS[current]
    if target not in allowed:
        if not allowed:
            raise TelehealthError(ErrorCode.invalid_transition,
                                  "a consultation in state {current} cannot become {target}: {current} is final",
                                  current=current, target=target)
        raise TelehealthError(
            ErrorCode.invalid_transition,
            "a consultation in state {current} cannot become {target}; from {current} it may become: {allowed}",
            current=current, target=target, allowed=", ".join(sorted(allowed)),
        )


class EndReason(enum.StrEnum):
    hangup = "hangup"
    network = "network"
    timeout = "timeout"
    server_shutdown = "server_shutdown"


class DeclineReason(enum.StrEnum):
    outside_specialty = "outside_specialty"
    busy_with_patient = "busy_with_patient"
    needs_senior = "needs_senior"
    other = "other"


class AgreementState(enum.StrEnum):
    """A remote-care agreement with a hospital outside the clinic's alliance is an invitation: it is in effect
    only once the administrators of both sides have approved it (docs/records.md)."""

    proposed = "proposed"                    # neither side has approved yet
    clinic_approved = "clinic_approved"      # the clinic's side (the inviting, data-owning party) approved
    hospital_approved = "hospital_approved"  # the hospital's side approved
    in_effect = "in_effect"
    declined = "declined"
    ended = "ended"

    @property
    def is_pending(self) -> bool:
        return self in (AgreementState.proposed, AgreementState.clinic_approved, AgreementState.hospital_approved)


class AgreementSide(enum.StrEnum):
    clinic = "clinic"
    hospital = "hospital"


A = AgreementState

# Every legal move of an agreement. Either side may decline a pending invitation, or end one in effect.
AGREEMENT_TRANSITIONS: dict[AgreementState, frozenset[AgreementState]] = {
    A.proposed: frozenset({A.clinic_approved, A.hospital_approved, A.declined}),
    A.clinic_approved: frozenset({A.in_effect, A.declined}),
    A.hospital_approved: frozenset({A.in_effect, A.declined}),
    A.in_effect: frozenset({A.ended}),
    A.declined: frozenset(),
    A.ended: frozenset(),
}


def approved_state(current: AgreementState, side: AgreementSide) -> AgreementState:
    """The state after `side` approves an agreement in `current` (unchanged if that side had approved)."""
    if current is A.proposed:
        return A.clinic_approved if side is AgreementSide.clinic else A.hospital_approved
    if current is A.clinic_approved:
        return current if side is AgreementSide.clinic else A.in_effect
    if current is A.hospital_approved:
        return current if side is AgreementSide.hospital else A.in_effect
    return current


def check_agreement_transition(current: AgreementState, target: AgreementState) -> None:
    """Raise unless an agreement in `current` may move to `target`."""
    if target not in AGREEMENT_TRANSITIONS[current]:
        raise TelehealthError(ErrorCode.invalid_transition,
                              "an agreement in state {current} cannot become {target}",
                              current=current, target=target)
