"""Organisations and agreements: the institutions of an alliance, and the remote-care agreements that let a
clinic consult a hospital outside its own alliance."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from telehealth.domain import OrgLevel, Role
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
class AgreementRow:
    agreement: Agreement
    clinic: Organisation | None
    hospital: Organisation | None
    valid: bool


@dataclass(frozen=True)
class OrganisationsOverview:
    """What an administrator's organisations page shows."""

    alliance_id: int | None
    organisations: list[Organisation]
    alliances: dict[int, Alliance]
    staff: dict[int, int]
    agreements: list[AgreementRow]
    clinics: list[Organisation]
    hospitals: list[Organisation]


class Organisations:
    def __init__(self, services: Services) -> None:
        self._s = services

    async def overview(self, actor: Actor) -> OrganisationsOverview:
        alliance, orgs = await self._s.accounts.managed_organisations(actor)
        store = self._s.store
        every = {o.id: o for o in await store.list_organisations()}
        agreements = await store.list_agreements(None if alliance is None else list(orgs))
        staff: dict[int, int] = {}
        for u in await store.list_all_users(organisation_ids=list(orgs)):
            if u.active and u.organisation_id is not None:
                staff[u.organisation_id] = staff.get(u.organisation_id, 0) + 1
        now = self._s.now()
        return OrganisationsOverview(
            alliance, sorted(orgs.values(), key=lambda o: (o.alliance_id or 0, o.level.value, o.name)),
            {a.id: a for a in await store.list_alliances()}, staff,
            [AgreementRow(a, every.get(a.clinic_org_id), every.get(a.hospital_org_id), a.valid_at(now))
             for a in agreements],
            # Agreement partners may be outside the alliance: any grassroots institution or hospital.
            [o for o in every.values() if not o.level.is_hospital],
            [o for o in every.values() if o.level.is_hospital])

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

    async def create_agreement(self, actor: Actor, body: AgreementInput) -> int:
        _, orgs = await self._s.accounts.managed_organisations(actor)
        store = self._s.store
        clinic = await store.get_organisation(body.clinic_org_id)
        hospital = await store.get_organisation(body.hospital_org_id)
        require(clinic is not None and not clinic.level.is_hospital,
                "choose a village clinic or township centre", field="clinic_org_id")
        require(hospital is not None and hospital.level.is_hospital, "choose a county or city hospital",
                field="hospital_org_id")
        assert clinic is not None and hospital is not None
        require(clinic.id in orgs or hospital.id in orgs, "one side of the agreement must belong to your alliance",
                field="clinic_org_id")
        async with self._s.unit(actor) as unit:
            agreement_id = await store.insert_agreement(
                clinic.id, hospital.id, valid_from=day_start(body.valid_from, "valid_from"),
                valid_to=day_start(body.valid_to, "valid_to") if body.valid_to else None,
                created_by=actor.id, now=unit.now)
            unit.audit("agreement.create", f"agreement:{agreement_id}",
                       {"clinic": clinic.id, "hospital": hospital.id})
        return agreement_id

    async def end_agreement(self, actor: Actor, agreement_id: int) -> None:
        _, orgs = await self._s.accounts.managed_organisations(actor)
        store = self._s.store
        if not any(a.id == agreement_id for a in await store.list_agreements(list(orgs))):
            raise TelehealthError(ErrorCode.not_found, "no such agreement in your alliance")
        async with self._s.unit(actor) as unit:
            if not await store.end_agreement(agreement_id, now=unit.now):
                raise TelehealthError(ErrorCode.conflict, "this agreement has already ended")
            unit.audit("agreement.end", f"agreement:{agreement_id}")

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
