"""The access policy: who may see or act on a consultation, its record, its referrals and the test results in
the patient's record, and which side of a remote-care agreement an administrator speaks for. Every edge asks
here, through the service operations; nothing else decides."""

from __future__ import annotations

from typing import TYPE_CHECKING

from telehealth.domain import AgreementSide, Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.models import Agreement, Consultation, Organisation, Patient, Referral, User

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
