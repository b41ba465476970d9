"""Referrals: booking a reserved outpatient slot for a referral up, the reserved inpatient beds offered to a
referral up for admission, and the refer-down follow-up tasks and outcome at the receiving clinic."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from telehealth.domain import ConsultationState, Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import quota
from telehealth.records.models import Bed, Consultation, Referral, Slot
from telehealth.schema import Range, Text
from telehealth.services.access import require_assigned_specialist

if TYPE_CHECKING:
    from telehealth.services.context import Actor, Services

# How far ahead a specialist is offered reserved slots.
BOOKING_HORIZON = dt.timedelta(days=28)
BOOKABLE_STATES = (ConsultationState.accepted, ConsultationState.in_call, ConsultationState.ended)


@dataclass(frozen=True)
class BookingInput:
    slot_id: Annotated[int, Range(1)]


@dataclass(frozen=True)
class OutcomeInput:
    outcome: Annotated[str, Text(1, 8000)]


class Referrals:
    def __init__(self, services: Services) -> None:
        self._s = services

    async def authorize_booking(self, actor: Actor, consultation_id: int) -> Consultation:
        """The consultation whose booking the actor may change, or the reason they may not."""
        consultation = await self._s.access.consultation(actor, consultation_id)
        require_assigned_specialist(actor.user, consultation,
                                    "only the specialist who took this consultation books for it")
        if consultation.state not in BOOKABLE_STATES:
            raise TelehealthError(ErrorCode.invalid_transition,
                                  "the consultation is {state}: its booking can no longer change",
                                  state=consultation.state.value)
        return consultation

    async def open_slots(self, actor: Actor, consultation_id: int,
                         department: str | None) -> tuple[str, list[Slot], Slot | None]:
        """Reserved slots still open at the clinic's partner hospitals, for the consultation's specialty unless
        `department` says otherwise; with the consultation's current booking."""
        consultation = await self.authorize_booking(actor, consultation_id)
        await self._require_grassroots(consultation)
        store = self._s.store
        settings = self._s.settings.slots
        now = self._s.now()
        _, partners = await store.get_partner_hospitals(consultation.clinic_org_id, now)
        department = (department or consultation.specialty)[:100]
        slots = await store.list_slots(hospital_org_ids=partners, department=department, start=now,
                                       end=now + BOOKING_HORIZON, open_reserved=True, limit=300)
        slots = [s for s in slots
                 if now < quota.release_cutoff(s.starts_at, settings.tz, settings.release_hours_before)]
        return department, slots, await store.get_booking(consultation.id)

    async def open_beds(self, actor: Actor, consultation_id: int,
                        ward: str | None) -> tuple[str, list[Bed], Bed | None]:
        """Reserved beds still open at the clinic's partner hospitals, in the consultation's specialty's ward
        unless `ward` says otherwise; with the bed the consultation holds. Signing a referral up for admission
        books the chosen one."""
        consultation = await self.authorize_booking(actor, consultation_id)
        await self._require_grassroots(consultation)
        store = self._s.store
        settings = self._s.settings.slots
        now = self._s.now()
        # Held for the lead's own grassroots members: the hospitals of the clinic's alliance, not its other partners.
        members_of, _ = await store.get_partner_hospitals(consultation.clinic_org_id, now)
        ward = (ward or consultation.specialty)[:100]
        today = now.astimezone(settings.tz).date()
        beds = await store.list_beds(hospital_org_ids=members_of, ward=ward, start=today,
                                     end=today + BOOKING_HORIZON, open_reserved=True, limit=300)
        beds = [b for b in beds
                if now < quota.bed_release_cutoff(b.day, settings.tz, settings.release_hours_before)]
        return ward, beds, await store.get_bed_booking(consultation.id)

    async def _require_grassroots(self, consultation: Consultation) -> None:
        """Reserved slots are offered to, and booked for, the patients of grassroots institutions only (the
        store refuses a booking for any other as well, whatever asks it)."""
        clinic = await self._s.store.get_organisation(consultation.clinic_org_id)
        if clinic is None or not clinic.level.is_grassroots:
            raise TelehealthError(ErrorCode.not_eligible, "reserved slots are for patients of village clinics "
                                  "and township or community health centres: this consultation's institution "
                                  "is not one")

    async def booking(self, actor: Actor, consultation_id: int) -> Slot | None:
        consultation = await self._s.access.consultation(actor, consultation_id)
        return await self._s.store.get_booking(consultation.id)

    async def book(self, actor: Actor, consultation_id: int, body: BookingInput) -> Slot:
        consultation = await self.authorize_booking(actor, consultation_id)
        store = self._s.store
        settings = self._s.settings.slots
        async with self._s.unit(actor) as unit:
            await self._require_grassroots(consultation)
            slot = await store.get_slot(body.slot_id)
            _, partners = await store.get_partner_hospitals(consultation.clinic_org_id, unit.now)
            if slot is None or slot.hospital_org_id not in partners:
                raise TelehealthError(ErrorCode.not_found, "slot {id} is not offered to this clinic",
                                      id=body.slot_id)
            booked = await store.book_slot(consultation.id, slot.id, now=unit.now, tz=settings.tz,
                                           release_hours=settings.release_hours_before)
            unit.audit("slot.book", f"consultation:{consultation.id}", {"slot": slot.id})
        return booked

    async def cancel_booking(self, actor: Actor, consultation_id: int) -> bool:
        consultation = await self.authorize_booking(actor, consultation_id)
        async with self._s.unit(actor) as unit:
            cancelled = await self._s.store.cancel_booking(consultation.id, now=unit.now)
            if cancelled:
                unit.audit("slot.cancel", f"consultation:{consultation.id}")
        return cancelled

    async def list_for(self, actor: Actor, *, everything: bool) -> list[Referral]:
        """A clinic doctor: referrals down to their institution (open ones unless `everything`). A specialist:
        the referrals they made, with the receiving clinic's outcome."""
        user = actor.user
        store = self._s.store
        if user.role is Role.clinic_doctor:
            if user.organisation_id is None:
                raise TelehealthError(ErrorCode.forbidden, "this account belongs to no institution")
            return await store.list_referrals(to_org_id=user.organisation_id, direction="down",
                                              open_only=not everything)
        if user.role is Role.specialist:
            return await store.list_referrals(created_by=user.id, open_only=not everything)
        raise TelehealthError(ErrorCode.forbidden, "your role may not do this")

    async def authorize_receiving(self, actor: Actor, referral_id: int) -> Referral:
        return await self._s.access.receiving_referral(actor, referral_id)

    async def complete_task(self, actor: Actor, referral_id: int, task_id: int) -> Referral:
        referral = await self._s.access.receiving_referral(actor, referral_id)
        store = self._s.store
        async with self._s.unit(actor) as unit:
            await store.complete_referral_task(referral.id, task_id, actor.id, now=unit.now)
            unit.audit("referral.task_done", f"consultation:{referral.consultation_id}", {"task": task_id})
        updated = await store.get_referral(referral.id)
        if updated is None:
            raise TelehealthError(ErrorCode.not_found, "no such referral")
        return updated

    async def close(self, actor: Actor, referral_id: int, body: OutcomeInput) -> Referral:
        referral = await self._s.access.receiving_referral(actor, referral_id)
        async with self._s.unit(actor) as unit:
            closed = await self._s.store.close_referral(referral.id, body.outcome.strip(), actor.id, now=unit.now)
            unit.audit("referral.close", f"consultation:{referral.consultation_id}")
        return closed
