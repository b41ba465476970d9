"""The access policy: who may see or act on a consultation, its record and its referrals. Every edge asks
here, through the service operations; nothing else decides."""

from __future__ import annotations

from typing import TYPE_CHECKING

from telehealth.domain import Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.models import Consultation, Referral, User

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
