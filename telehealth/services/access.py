"""The access policy: who may see or act on a consultation, its record, its referrals and the test results in
the patient's record, which side of a remote-care agreement an administrator speaks for, and booked
consultations. Every edge asks here, through the service operations; nothing else decides."""

from __future__ import annotations

from typing import TYPE_CHECKING

from telehealth.domain import AgreementSide, Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.models import (
    Agreement,
    Appointment,
    Consultation,
    Organisation,
    Patient,
    Referral,
    User,
)

if TYPE_CHECKING:
    from telehealth.services.context import Actor, Services


def is_participant(user: User, consultation: Consultation) -> bool:
    """A doctor of the requesting clinic, or the specialist who took the consultation."""
    if user.role is Role.clinic_doctor:
        return user.organisation_id is not None and consultation.clinic_org_id == user.organisation_id
    if user.role is Role.specialist:
        return consultation.assigned_specialist_id == user.id
    return False


def require_assigned_specialist(user: User, consultation: Consultation, message: str) -> None:
    if user.role is not Role.specialist or consultation.assigned_specialist_id != user.id:
        raise TelehealthError(ErrorCode.forbidden, message)


class AccessPolicy:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def may_see(self, user: User, consultation: Consultation) -> bool:
        """Participants; a system administrator; an administrator of the clinic's alliance."""
        if is_participant(user, consultation):
            return True
        if user.role is not Role.admin:
            return False
        if user.is_system_admin:
            return True
        store = self._services.store
        mine = await store.get_organisation(user.organisation_id) if user.organisation_id else None
        clinic = await store.get_organisation(consultation.clinic_org_id)
        return (mine is not None and clinic is not None and mine.alliance_id is not None
                and mine.alliance_id == clinic.alliance_id)

    async def admin_alliance(self, actor: Actor) -> int | None:
        """The alliance an administrator sees and manages; None for a system administrator (every alliance)."""
        user = actor.user
        if user.role is not Role.admin:
            raise TelehealthError(ErrorCode.forbidden, "your role may not do this")
        if user.is_system_admin:
            return None
        store = self._services.store
        org = await store.get_organisation(user.organisation_id) if user.organisation_id else None
        if org is None or org.alliance_id is None:
            raise TelehealthError(ErrorCode.forbidden, "this administrator account belongs to no alliance")
        return org.alliance_id

    async def agreement_sides(self, actor: Actor, clinic: Organisation,
                              hospital: Organisation) -> frozenset[AgreementSide]:
        """The sides of an agreement this administrator speaks for: a side's institution is represented by the
        administrator of its alliance; one in no alliance, which has none, by a system administrator. A system
        administrator does not speak for an alliance: each alliance approves what touches its data itself."""
        alliance = await self.admin_alliance(actor)
        return frozenset(side for side, org in ((AgreementSide.clinic, clinic), (AgreementSide.hospital, hospital))
                         if org.alliance_id == alliance)

    async def agreement(self, actor: Actor,
                        agreement_id: int) -> tuple[Agreement, Organisation, Organisation, frozenset[AgreementSide]]:
        """An agreement the administrator may see (one side is theirs, or they administer every alliance), its
        two institutions and the sides the administrator speaks for; `not_found` otherwise."""
        store = self._services.store
        alliance = await self.admin_alliance(actor)
        agreement = await store.get_agreement(agreement_id)
        clinic = await store.get_organisation(agreement.clinic_org_id) if agreement else None
        hospital = await store.get_organisation(agreement.hospital_org_id) if agreement else None
        if agreement is None or clinic is None or hospital is None:
            raise TelehealthError(ErrorCode.not_found, "no such agreement")
        sides = await self.agreement_sides(actor, clinic, hospital)
        if not sides and alliance is not None:
            raise TelehealthError(ErrorCode.not_found, "no such agreement")
        return agreement, clinic, hospital, sides

    async def consultation(self, actor: Actor, consultation_id: int) -> Consultation:
        """A consultation the actor may see; otherwise `not_found` or `forbidden` (the refusal is audited)."""
        consultation = await self._services.store.get_consultation(consultation_id)
        if consultation is None:
            raise TelehealthError(ErrorCode.not_found, "consultation {id} does not exist", id=consultation_id)
        if not await self.may_see(actor.user, consultation):
            await self._services.audit(actor, "consultation.view_denied", f"consultation:{consultation_id}")
            raise TelehealthError(ErrorCode.forbidden, "this consultation belongs to another institution")
        return consultation

    async def participant_consultation(self, actor: Actor, consultation_id: int) -> Consultation:
        """A consultation the actor takes part in (an administrator who may see it still may not act on it)."""
        consultation = await self.consultation(actor, consultation_id)
        if not is_participant(actor.user, consultation):
            raise TelehealthError(ErrorCode.forbidden, "this consultation is not yours")
        return consultation

    async def receiving_referral(self, actor: Actor, referral_id: int) -> Referral:
        """A referral down addressed to the actor's own institution."""
        referral = await self._services.store.get_referral(referral_id)
        if referral is None:
            raise TelehealthError(ErrorCode.not_found, "no such referral")
        user = actor.user
        if (user.role is not Role.clinic_doctor or referral.direction != "down"
                or referral.to_org_id != user.organisation_id):
            await self._services.audit(actor, "referral.view_denied", f"referral:{referral.id}")
            raise TelehealthError(ErrorCode.forbidden, "this referral is addressed to another institution")
        return referral

    async def _receives(self, user: User, consultation: Consultation) -> bool:
        """A clinician of an institution one of the consultation's referrals went to (up or down)."""
        if user.role not in (Role.clinic_doctor, Role.specialist) or user.organisation_id is None:
            return False
        referrals = await self._services.store.list_referrals(consultation_id=consultation.id)
        return any(r.to_org_id == user.organisation_id for r in referrals)

    async def record(self, actor: Actor, consultation_id: int) -> Consultation:
        """The record page: whoever may see the consultation, and the institution its referral went to, which
        receives the patient with the record (and its results)."""
        consultation = await self._services.store.get_consultation(consultation_id)
        if consultation is not None and await self._receives(actor.user, consultation):
            return consultation
        return await self.consultation(actor, consultation_id)

    async def patient_results(self, actor: Actor, patient_id: int, *, write: bool) -> Patient:
        """The test results in a patient's record. Seen by those who may see one of the patient's consultations
        and by clinicians of an institution the patient was referred to; recorded by clinicians only: the
        patient's own clinic, the specialist of one of the patient's consultations, the receiving institution."""
        store = self._services.store
        patient = await store.get_patient(patient_id)
        if patient is None:
            raise TelehealthError(ErrorCode.not_found, "no such patient")
        user = actor.user
        clinician = user.role in (Role.clinic_doctor, Role.specialist)
        if write and not clinician:
            raise TelehealthError(ErrorCode.forbidden, "your role may not do this")
        if user.role is Role.clinic_doctor and user.organisation_id == patient.organisation_id:
            return patient
        for consultation in await store.list_patient_consultations(patient.id):
            if is_participant(user, consultation) or (not write and await self.may_see(user, consultation)):
                return patient
        if clinician and user.organisation_id in await store.list_patient_referral_orgs(patient.id):
            return patient
        await self._services.audit(actor, "result.view_denied", f"patient:{patient.id}")
        raise TelehealthError(ErrorCode.forbidden, "this patient's record is not shared with your institution")

    # Booked consultations (services/appointments.py)

    async def keeps_desk(self, user: User, hospital_org_id: int, department: str) -> bool:
        """Whether the account keeps this hospital department's remote-consultation desk."""
        if user.role is not Role.specialist or not user.active:
            return False
        return bool(await self._services.store.list_desks(user_id=user.id, hospital_org_id=hospital_org_id,
                                                          department=department))

    async def hours_keeper(self, actor: Actor, specialist_id: int | None, department: str) -> User:
        """Whose consultation hours the actor publishes: their own, or (as the department's desk) those of a
        specialist of the department."""
        user = actor.user
        if user.role is not Role.specialist or user.organisation_id is None:
            raise TelehealthError(ErrorCode.forbidden, "only a specialist or their department's desk publishes "
                                                       "consultation hours")
        specialist = user
        if specialist_id is not None and specialist_id != user.id:
            if not await self.keeps_desk(user, user.organisation_id, department):
                raise TelehealthError(ErrorCode.forbidden, "only the department's desk publishes hours for "
                                                           "another specialist")
            other = await self._services.store.get_user(specialist_id)
            if other is None or other.role is not Role.specialist or not other.active \
                    or other.organisation_id != user.organisation_id:
                raise TelehealthError(ErrorCode.invalid_input, "`specialist_id` does not name an active specialist "
                                      "of your hospital")
            specialist = other
        if department not in specialist.specialties:
            raise TelehealthError(ErrorCode.invalid_input, "the specialist does not practise {department}",
                                  department=department)
        return specialist

    async def _appointment(self, appointment_id: int) -> tuple[Appointment, Consultation]:
        store = self._services.store
        appointment = await store.get_appointment(appointment_id)
        consultation = await store.get_consultation(appointment.consultation_id) if appointment else None
        if appointment is None or consultation is None:
            raise TelehealthError(ErrorCode.not_found, "no such booked consultation")
        return appointment, consultation

    async def _is_hospital_side(self, user: User, appointment: Appointment) -> bool:
        """The specialist it is booked with; the department's desk; while a window waits for its answer, a
        specialist of the department."""
        if user.role is not Role.specialist:
            return False
        if appointment.specialist_id == user.id:
            return True
        if appointment.status == "requested" and user.organisation_id == appointment.hospital_org_id \
                and appointment.department in user.specialties:
            return True
        return await self.keeps_desk(user, appointment.hospital_org_id, appointment.department)

    async def _deny(self, actor: Actor, appointment: Appointment) -> None:
        await self._services.audit(actor, "appointment.view_denied", f"appointment:{appointment.id}")
        raise TelehealthError(ErrorCode.forbidden, "this booked consultation is not yours")

    async def appointment_clinic(self, actor: Actor, appointment_id: int) -> tuple[Appointment, Consultation]:
        """A booked consultation of the actor's own clinic."""
        appointment, consultation = await self._appointment(appointment_id)
        user = actor.user
        if user.role is not Role.clinic_doctor or user.organisation_id != appointment.clinic_org_id:
            await self._deny(actor, appointment)
        return appointment, consultation

    async def appointment_hospital(self, actor: Actor, appointment_id: int) -> tuple[Appointment, Consultation]:
        """A booked consultation the actor answers for at the hospital."""
        appointment, consultation = await self._appointment(appointment_id)
        if not await self._is_hospital_side(actor.user, appointment):
            await self._deny(actor, appointment)
        return appointment, consultation

    async def appointment_party(self, actor: Actor, appointment_id: int) -> tuple[Appointment, Consultation]:
        """The clinic's side or the hospital's."""
        appointment, consultation = await self._appointment(appointment_id)
        user = actor.user
        clinic = user.role is Role.clinic_doctor and user.organisation_id == appointment.clinic_org_id
        if not clinic and not await self._is_hospital_side(user, appointment):
            await self._deny(actor, appointment)
        return appointment, consultation
