"""Organisations and agreements: the institutions of an alliance, and the remote-care agreements that let a
clinic consult a hospital outside its own alliance.

An agreement is an invitation: proposed by either side's administrator (whose proposal is that side's
approval), in effect only once the administrators of the clinic's side (the inviting party, whose patients'
data it opens) and of the hospital's side have both approved it; either side may decline it while it waits, or
end it once in effect. Each step is audited and shown to both sides. Ending it, or its coming into effect,
reaches the matcher of every node at once (`Matcher.agreements_changed`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from telehealth.domain import (
    AgreementSide,
    AgreementState,
    OrgLevel,
    Role,
    approved_state,
    check_agreement_transition,
)
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.models import Agreement, Alliance, Organisation, User
from telehealth.schema import Range, Text, require

if TYPE_CHECKING:
    from telehealth.services.context import Actor, Services

Day = Annotated[str, Text(0, 10)]


def day_start(value: str, field: str) -> dt.datetime:
    """A date such as 2026-12-01, as the instant it starts."""
    try:
        return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
    except ValueError:
        raise TelehealthError(ErrorCode.invalid_message, "{field}: give a date such as 2026-12-01",
                              field=f"`{field}`") from None


@dataclass(frozen=True)
class OrganisationInput:
    name: Annotated[str, Text(1, 200)]
    name_zh: Annotated[str, Text(0, 200)] = ""
    region: Annotated[str, Text(0, 200)] = ""
    city_group_pilot: bool = False


@dataclass(frozen=True)
class NewOrganisationInput:
    name: Annotated[str, Text(1, 200)]
    level: OrgLevel
    name_zh: Annotated[str, Text(0, 200)] = ""
    region: Annotated[str, Text(0, 200)] = ""
    city_group_pilot: bool = False
    # A system administrator names the alliance (or none); an alliance administrator's is their own.
    alliance_id: Annotated[int, Range(1)] | None = None


@dataclass(frozen=True)
class AgreementInput:
    clinic_org_id: Annotated[int, Range(1)]
    hospital_org_id: Annotated[int, Range(1)]
    valid_from: Day
    valid_to: Day = ""

    def validate(self) -> None:
        start = day_start(self.valid_from, "valid_from")
        if self.valid_to:
            require(day_start(self.valid_to, "valid_to") > start, "the end date comes after the start date",
                    field="valid_to")


@dataclass(frozen=True)
class ReasonInput:
    """Why a side declines an invitation or ends an agreement: told to the other side."""

    reason: Annotated[str, Text(1, 500)]


@dataclass(frozen=True)
class AgreementRow:
    agreement: Agreement
    clinic: Organisation | None
    hospital: Organisation | None
    valid: bool
    # The sides the viewing administrator speaks for, and what they may do now.
    sides: frozenset[AgreementSide] = frozenset()
    # Its period is over (an agreement in effect that expired routes nothing, like an ended one).
    expired: bool = False

    @property
    def awaiting(self) -> frozenset[AgreementSide]:
        """The sides whose approval an invitation still waits for."""
        a = self.agreement
        if not a.state.is_pending:
            return frozenset()
        return frozenset(side for side, at in ((AgreementSide.clinic, a.clinic_approved_at),
                                               (AgreementSide.hospital, a.hospital_approved_at)) if at is None)

    @property
    def may_approve(self) -> bool:
        return bool(self.sides & self.awaiting)

    @property
    def may_decline(self) -> bool:
        return bool(self.sides) and self.agreement.state.is_pending

    @property
    def may_end(self) -> bool:
        return bool(self.sides) and self.agreement.state is AgreementState.in_effect and not self.expired


# One agreement as an administrator sees it, and the names of the people who acted on it.
OneAgreement = tuple[AgreementRow, dict[int, str]]


@dataclass(frozen=True)
class AgreementList:
    """Agreements as an administrator sees them, with the names of the people who acted on them."""

    rows: list[AgreementRow]
    people: dict[int, str]


@dataclass(frozen=True)
class OrganisationsOverview:
    """What an administrator's organisations page shows."""

    alliance_id: int | None
    organisations: list[Organisation]
    alliances: dict[int, Alliance]
    staff: dict[int, int]
    agreements: list[AgreementRow]
    people: dict[int, str]
    clinics: list[Organisation]
    hospitals: list[Organisation]


class Organisations:
    def __init__(self, services: Services) -> None:
        self._s = services

    async def overview(self, actor: Actor) -> OrganisationsOverview:
        alliance, orgs = await self._s.accounts.managed_organisations(actor)
        store = self._s.store
        every = {o.id: o for o in await store.list_organisations()}
        listed = await self._agreement_list(actor, alliance, orgs, every)
        staff: dict[int, int] = {}
        for u in await store.list_all_users(organisation_ids=list(orgs)):
            if u.active and u.organisation_id is not None:
                staff[u.organisation_id] = staff.get(u.organisation_id, 0) + 1
        return OrganisationsOverview(
            alliance, sorted(orgs.values(), key=lambda o: (o.alliance_id or 0, o.level.value, o.name)),
            {a.id: a for a in await store.list_alliances()}, staff, listed.rows, listed.people,
            # Agreement partners may be outside the alliance: any grassroots institution or hospital.
            [o for o in every.values() if not o.level.is_hospital],
            [o for o in every.values() if o.level.is_hospital])

    async def agreements(self, actor: Actor) -> AgreementList:
        """The agreements either side of which is the administrator's (every one for a system administrator)."""
        alliance, orgs = await self._s.accounts.managed_organisations(actor)
        every = {o.id: o for o in await self._s.store.list_organisations()}
        return await self._agreement_list(actor, alliance, orgs, every)

    async def _agreement_list(self, actor: Actor, alliance: int | None, orgs: dict[int, Organisation],
                              every: dict[int, Organisation]) -> AgreementList:
        store = self._s.store
        now = self._s.now()
        rows = []
        for a in await store.list_agreements(None if alliance is None else list(orgs)):
            clinic, hospital = every.get(a.clinic_org_id), every.get(a.hospital_org_id)
            sides = (await self._s.access.agreement_sides(actor, clinic, hospital)
                     if clinic is not None and hospital is not None else frozenset())
            rows.append(_row(a, clinic, hospital, sides, now))
        acted = {uid for r in rows for uid in (r.agreement.created_by, r.agreement.clinic_approved_by,
                                               r.agreement.hospital_approved_by, r.agreement.closed_by) if uid}
        # Both sides see who acted on the other side: administrators' names, no patient data.
        people = {u.id: u.display_name for u in await store.list_all_users(include_system_admins=True)
                  if u.id in acted}
        return AgreementList(rows, people)

    async def create(self, actor: Actor, body: NewOrganisationInput) -> Organisation:
        alliance, _ = await self._s.accounts.managed_organisations(actor)
        store = self._s.store
        target = alliance
        if alliance is None:
            target = body.alliance_id
            require(target is None or target in {a.id for a in await store.list_alliances()},
                    "choose an alliance", field="alliance_id")
        name = body.name.strip()
        require(await store.get_organisation_by_name(name) is None, "an organisation of this name exists",
                field="name")
        async with self._s.unit(actor) as unit:
            org = await store.insert_organisation(name, body.level, alliance_id=target, name_zh=body.name_zh.strip(),
                                                  region=body.region.strip(), city_group_pilot=body.city_group_pilot)
            unit.audit("organisation.create", f"organisation:{org.id}", {"level": body.level.value})
        return org

    async def managed(self, actor: Actor, org_id: int) -> Organisation:
        """An organisation this administrator manages (`not_found` otherwise)."""
        _, orgs = await self._s.accounts.managed_organisations(actor)
        if org_id not in orgs:
            raise TelehealthError(ErrorCode.not_found, "no such organisation in your alliance")
        return orgs[org_id]

    async def update(self, actor: Actor, org_id: int, body: OrganisationInput) -> Organisation:
        await self.managed(actor, org_id)
        store = self._s.store
        name = body.name.strip()
        other = await store.get_organisation_by_name(name)
        require(other is None or other.id == org_id, "an organisation of this name exists", field="name")
        async with self._s.unit(actor) as unit:
            org = await store.update_organisation(org_id, name=name, name_zh=body.name_zh.strip(),
                                                  region=body.region.strip(), city_group_pilot=body.city_group_pilot)
            unit.audit("organisation.update", f"organisation:{org_id}")
        return org

    async def propose_agreement(self, actor: Actor, body: AgreementInput) -> OneAgreement:
        """Invite a hospital outside the clinic's alliance (or accept to be invited): the proposer's side has
        approved it; it waits for the other side's administrator."""
        alliance = await self._s.access.admin_alliance(actor)
        store = self._s.store
        clinic = await store.get_organisation(body.clinic_org_id)
        hospital = await store.get_organisation(body.hospital_org_id)
        require(clinic is not None and not clinic.level.is_hospital,
                "choose a village clinic or township centre", field="clinic_org_id")
        require(hospital is not None and hospital.level.is_hospital, "choose a county or city hospital",
                field="hospital_org_id")
        assert clinic is not None and hospital is not None
        sides = await self._s.access.agreement_sides(actor, clinic, hospital)
        require(bool(sides) or alliance is None, "one side of the agreement must belong to your alliance",
                field="clinic_org_id")
        require(clinic.alliance_id is None or clinic.alliance_id != hospital.alliance_id,
                "these institutions are in one alliance, which is already their agreement", field="hospital_org_id")
        now = self._s.now()
        for other in await store.list_agreements([clinic.id]):
            if other.hospital_org_id == hospital.id and (other.state.is_pending or (
                    other.state is AgreementState.in_effect and (other.valid_to is None or other.valid_to > now))):
                raise TelehealthError(ErrorCode.conflict, "these institutions already have an agreement in effect "
                                                          "or awaiting approval")
        state = AgreementState.proposed
        for side in sorted(sides):
            state = approved_state(state, side)
        async with self._s.unit(actor, now) as unit:
            agreement_id = await store.insert_agreement(
                clinic.id, hospital.id, valid_from=day_start(body.valid_from, "valid_from"),
                valid_to=day_start(body.valid_to, "valid_to") if body.valid_to else None,
                created_by=actor.id, now=unit.now, state=state,
                clinic_approved_by=actor.id if AgreementSide.clinic in sides else None,
                hospital_approved_by=actor.id if AgreementSide.hospital in sides else None)
            unit.audit("agreement.propose", f"agreement:{agreement_id}",
                       {"clinic": clinic.id, "hospital": hospital.id, "approved": ",".join(sorted(sides)),
                        "state": state.value})
        if state is AgreementState.in_effect:
            await self._s.matcher.agreements_changed(clinic.id)
        return await self.agreement_row(actor, agreement_id)

    async def approve_agreement(self, actor: Actor, agreement_id: int) -> OneAgreement:
        """The administrator's side approves a waiting invitation; the second approval puts it in effect."""
        agreement, _, _, sides = await self._s.access.agreement(actor, agreement_id)
        if not sides:
            raise TelehealthError(ErrorCode.forbidden, "only the administrators of the two sides may approve or "
                                                       "decline this agreement")
        if not agreement.state.is_pending:
            raise TelehealthError(ErrorCode.conflict, "this agreement is not awaiting approval")
        row = AgreementRow(agreement, None, None, False, sides)
        mine = sorted(sides & row.awaiting)
        if not mine:
            raise TelehealthError(ErrorCode.conflict, "your side has approved this agreement: it awaits the "
                                                      "other side")
        state = agreement.state
        async with self._s.unit(actor) as unit:
            for side in mine:
                target = approved_state(state, side)
                check_agreement_transition(state, target)
                if not await self._s.store.approve_agreement(agreement_id, side, expected=state, target=target,
                                                             by=actor.id, now=unit.now):
                    raise TelehealthError(ErrorCode.conflict, "this agreement changed meanwhile: reload the page")
                unit.audit("agreement.approve", f"agreement:{agreement_id}", {"side": side.value,
                                                                             "state": target.value})
                state = target
        if state is AgreementState.in_effect:
            await self._s.matcher.agreements_changed(agreement.clinic_org_id)
        return await self.agreement_row(actor, agreement_id)

    async def decline_agreement(self, actor: Actor, agreement_id: int, body: ReasonInput) -> OneAgreement:
        """Either side declines a waiting invitation, saying why; it never takes effect."""
        agreement, _, _, sides = await self._s.access.agreement(actor, agreement_id)
        if not sides:
            raise TelehealthError(ErrorCode.forbidden, "only the administrators of the two sides may approve or "
                                                       "decline this agreement")
        if not agreement.state.is_pending:
            raise TelehealthError(ErrorCode.conflict, "this agreement is not awaiting approval")
        check_agreement_transition(agreement.state, AgreementState.declined)
        reason = body.reason.strip()
        async with self._s.unit(actor) as unit:
            if not await self._s.store.decline_agreement(agreement_id, expected=agreement.state, by=actor.id,
                                                         reason=reason, now=unit.now):
                raise TelehealthError(ErrorCode.conflict, "this agreement changed meanwhile: reload the page")
            unit.audit("agreement.decline", f"agreement:{agreement_id}",
                       {"side": ",".join(sorted(sides)), "reason": reason})
        return await self.agreement_row(actor, agreement_id)

    async def end_agreement(self, actor: Actor, agreement_id: int, body: ReasonInput) -> OneAgreement:
        """Either side ends an agreement in effect, saying why: no new offer goes there from this moment, on
        any node; calls in progress go on."""
        agreement, _, _, sides = await self._s.access.agreement(actor, agreement_id)
        if not sides:
            raise TelehealthError(ErrorCode.forbidden, "only the administrators of the two sides may end this "
                                                       "agreement")
        check_agreement_transition(agreement.state, AgreementState.ended)
        reason = body.reason.strip()
        async with self._s.unit(actor) as unit:
            if not await self._s.store.end_agreement(agreement_id, now=unit.now, by=actor.id, reason=reason):
                raise TelehealthError(ErrorCode.conflict, "this agreement has already ended")
            unit.audit("agreement.end", f"agreement:{agreement_id}",
                       {"side": ",".join(sorted(sides)), "reason": reason})
        await self._s.matcher.agreements_changed(agreement.clinic_org_id)
        return await self.agreement_row(actor, agreement_id)

    async def authorize_agreement(self, actor: Actor, agreement_id: int) -> None:
        """The access check of the operations on one agreement, for an edge to run before judging a body."""
        _, _, _, sides = await self._s.access.agreement(actor, agreement_id)
        if not sides:
            raise TelehealthError(ErrorCode.forbidden, "only the administrators of the two sides may approve, "
                                                       "decline or end this agreement")

    async def agreement_row(self, actor: Actor, agreement_id: int) -> OneAgreement:
        """One agreement as the administrator sees it."""
        agreement, clinic, hospital, sides = await self._s.access.agreement(actor, agreement_id)
        acted = {agreement.created_by, agreement.clinic_approved_by, agreement.hospital_approved_by,
                 agreement.closed_by}
        people = {u.id: u.display_name for u in await self._s.store.list_all_users(include_system_admins=True)
                  if u.id in acted}
        return _row(agreement, clinic, hospital, sides, self._s.now()), people

    async def own(self, actor: Actor) -> Organisation | None:
        """The actor's own institution."""
        org_id = actor.user.organisation_id
        return await self._s.store.get_organisation(org_id) if org_id else None

    async def by_id(self, actor: Actor) -> dict[int, Organisation]:
        """Every institution by id, for naming them on a page (names are not patient data)."""
        return {o.id: o for o in await self._s.store.list_organisations()}

    async def request_choices(self, actor: Actor) -> tuple[dict[int, Organisation], list[User]]:
        """The hospitals a clinic doctor may consult (their alliance's and those under an agreement) and the
        specialists working there, for the request form."""
        user = actor.user
        if user.role is not Role.clinic_doctor or user.organisation_id is None:
            return {}, []
        store = self._s.store
        _, partners = await store.get_partner_hospitals(user.organisation_id, self._s.now())
        orgs = {o.id: o for o in await store.list_organisations() if o.id in partners}
        return orgs, await store.list_users(role=Role.specialist, organisation_ids=list(orgs))


def _row(agreement: Agreement, clinic: Organisation | None, hospital: Organisation | None,
         sides: frozenset[AgreementSide], now: dt.datetime) -> AgreementRow:
    expired = agreement.valid_to is not None and agreement.valid_to <= now
    return AgreementRow(agreement, clinic, hospital, agreement.valid_at(now), sides, expired)
