"""Alliances, organisations and the cooperation agreements between clinics and hospitals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from telehealth.domain import AgreementSide, AgreementState, OrgLevel
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import schema as t
from telehealth.records.models import Agreement, Alliance, Organisation
from telehealth.records.store.base import StoreBase, new_id
from telehealth.records.store.rows import as_alliance, as_organisation


class OrganisationStore(StoreBase):
    """Alliances, organisations and agreements."""

    async def insert_alliance(self, name: str, kind: str, *, name_zh: str = "", region: str = "",
                              member_share_pct: int | None = None) -> Alliance:
        async with self._tx() as conn:
            res = await conn.execute(t.alliances.insert().values(name=name, name_zh=name_zh, kind=kind,
                                                                 region=region, member_share_pct=member_share_pct))
            aid = new_id(res)
        return Alliance(aid, name, name_zh, kind, region, member_share_pct)

    async def get_alliance(self, alliance_id: int) -> Alliance | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.alliances).where(t.alliances.c.id == alliance_id))).first()
        return as_alliance(row) if row else None

    async def get_alliance_by_name(self, name: str) -> Alliance | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.alliances).where(t.alliances.c.name == name))).first()
        return as_alliance(row) if row else None

    async def list_alliances(self) -> list[Alliance]:
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(t.alliances).order_by(t.alliances.c.id))).all()
        return [as_alliance(r) for r in rows]

    async def insert_organisation(self, name: str, level: OrgLevel, *, alliance_id: int | None, name_zh: str = "",
                                  leads_alliance: bool = False, city_group_pilot: bool = False,
                                  reserved_share_pct: int | None = None, region: str = "") -> Organisation:
        async with self._tx() as conn:
            res = await conn.execute(t.organisations.insert().values(
                name=name, name_zh=name_zh, level=level.value, alliance_id=alliance_id,
                leads_alliance=leads_alliance, city_group_pilot=city_group_pilot,
                reserved_share_pct=reserved_share_pct, region=region))
            oid = new_id(res)
        org = await self.get_organisation(oid)
        assert org is not None
        return org

    async def get_organisation(self, org_id: int) -> Organisation | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.organisations).where(t.organisations.c.id == org_id))).first()
        return as_organisation(row) if row else None

    async def get_organisation_by_name(self, name: str) -> Organisation | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.organisations).where(t.organisations.c.name == name))).first()
        return as_organisation(row) if row else None

    async def list_organisations(self, alliance_id: int | None = None) -> list[Organisation]:
        query = sa.select(t.organisations).order_by(t.organisations.c.id)
        if alliance_id is not None:
            query = query.where(t.organisations.c.alliance_id == alliance_id)
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [as_organisation(r) for r in rows]

    async def update_organisation(self, org_id: int, *, name: str, name_zh: str, region: str,
                                  city_group_pilot: bool) -> Organisation:
        try:
            async with self._tx() as conn:
                await conn.execute(t.organisations.update().where(t.organisations.c.id == org_id).values(
                    name=name, name_zh=name_zh, region=region, city_group_pilot=city_group_pilot))
        except IntegrityError:
            raise TelehealthError(ErrorCode.conflict, "an organisation named \"{name}\" exists", name=name) from None
        org = await self.get_organisation(org_id)
        if org is None:
            raise TelehealthError(ErrorCode.not_found, "no such organisation")
        return org

    async def insert_agreement(self, clinic_org_id: int, hospital_org_id: int, *, valid_from: dt.datetime,
                               valid_to: dt.datetime | None, created_by: int | None, now: dt.datetime,
                               state: AgreementState = AgreementState.in_effect,
                               clinic_approved_by: int | None = None,
                               hospital_approved_by: int | None = None) -> int:
        """Record an agreement; the service records a new one as an invitation, with the approvals the
        proposer gave (stamped `now`)."""
        async with self._tx() as conn:
            res = await conn.execute(t.agreements.insert().values(
                clinic_org_id=clinic_org_id, hospital_org_id=hospital_org_id, valid_from=valid_from,
                valid_to=valid_to, created_by=created_by, created_at=now, state=state.value,
                clinic_approved_by=clinic_approved_by,
                clinic_approved_at=now if clinic_approved_by is not None else None,
                hospital_approved_by=hospital_approved_by,
                hospital_approved_at=now if hospital_approved_by is not None else None))
            return new_id(res)

    async def get_partner_hospitals(self, clinic_org_id: int, now: dt.datetime) -> tuple[set[int], set[int]]:
        """(hospitals of the clinic's own alliance, hospitals with any valid agreement incl. the alliance).

        Alliance membership is itself a cooperation agreement; explicit agreements add partners once in
        effect (both sides approved), within their validity period.
        """
        o = t.organisations
        async with self._tx() as conn:
            clinic = (await conn.execute(sa.select(o.c.alliance_id).where(o.c.id == clinic_org_id))).first()
            alliance: set[int] = set()
            if clinic is not None and clinic.alliance_id is not None:
                rows = await conn.execute(sa.select(o.c.id).where(
                    o.c.alliance_id == clinic.alliance_id,
                    o.c.level.in_([OrgLevel.county_hospital.value, OrgLevel.city_hospital.value])))
                alliance = {r.id for r in rows}
            a = t.agreements
            rows = await conn.execute(sa.select(a.c.hospital_org_id).where(
                a.c.clinic_org_id == clinic_org_id, a.c.state == AgreementState.in_effect.value,
                a.c.valid_from <= now, sa.or_(a.c.valid_to.is_(None), a.c.valid_to > now)))
            partners = alliance | {r.hospital_org_id for r in rows}
        return alliance, partners

    async def get_next_agreement_change(self, clinic_org_id: int, now: dt.datetime) -> dt.datetime | None:
        """The next instant after `now` at which one of the clinic's agreements in effect starts or stops
        being valid (None: none will), so that nothing holding its partners outlives that instant."""
        a = t.agreements
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(a.c.valid_from, a.c.valid_to).where(
                a.c.clinic_org_id == clinic_org_id, a.c.state == AgreementState.in_effect.value,
                sa.or_(a.c.valid_from > now, a.c.valid_to > now)))).all()
        moments = [m for r in rows for m in (r.valid_from, r.valid_to) if m is not None and m > now]
        return min(moments, default=None)

    async def list_agreements(self, org_ids: Iterable[int] | None = None) -> list[Agreement]:
        """Explicit agreements that involve any of `org_ids` (every agreement when None), newest first."""
        a = t.agreements
        query = sa.select(a).order_by(a.c.id.desc())
        if org_ids is not None:
            ids = list(org_ids)
            query = query.where(sa.or_(a.c.clinic_org_id.in_(ids), a.c.hospital_org_id.in_(ids)))
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [_agreement(r) for r in rows]

    async def get_agreement(self, agreement_id: int) -> Agreement | None:
        a = t.agreements
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(a).where(a.c.id == agreement_id))).first()
        return _agreement(row) if row else None

    async def approve_agreement(self, agreement_id: int, side: AgreementSide, *, expected: AgreementState,
                                target: AgreementState, by: int, now: dt.datetime) -> bool:
        """Record one side's approval, moving `expected` to `target`; False if the agreement was no longer in
        `expected` (another administrator acted first)."""
        a = t.agreements
        stamp = ({"clinic_approved_by": by, "clinic_approved_at": now} if side is AgreementSide.clinic
                 else {"hospital_approved_by": by, "hospital_approved_at": now})
        async with self._tx() as conn:
            res = await conn.execute(a.update().where(a.c.id == agreement_id, a.c.state == expected.value)
                                     .values(state=target.value, **stamp))
        return bool(res.rowcount)

    async def decline_agreement(self, agreement_id: int, *, expected: AgreementState, by: int, reason: str,
                                now: dt.datetime) -> bool:
        """A pending invitation declined; False if it was no longer in `expected`."""
        a = t.agreements
        async with self._tx() as conn:
            res = await conn.execute(a.update().where(a.c.id == agreement_id, a.c.state == expected.value).values(
                state=AgreementState.declined.value, closed_by=by, closed_at=now, closed_reason=reason))
        return bool(res.rowcount)

    async def end_agreement(self, agreement_id: int, *, now: dt.datetime, by: int | None = None,
                            reason: str = "") -> bool:
        """End an agreement in effect now (it stops new offers; calls in progress go on); its period ends now.
        False if it was not in effect or its period was over."""
        a = t.agreements
        async with self._tx() as conn:
            res = await conn.execute(a.update().where(
                a.c.id == agreement_id, a.c.state == AgreementState.in_effect.value,
                sa.or_(a.c.valid_to.is_(None), a.c.valid_to > now)).values(
                state=AgreementState.ended.value, valid_to=now, closed_by=by, closed_at=now, closed_reason=reason))
        return bool(res.rowcount)


def _agreement(r: Any) -> Agreement:
    return Agreement(r.id, r.clinic_org_id, r.hospital_org_id, r.valid_from, r.valid_to, r.created_by,
                     AgreementState(r.state), r.created_at, r.clinic_approved_by, r.clinic_approved_at,
                     r.hospital_approved_by, r.hospital_approved_at, r.closed_by, r.closed_at, r.closed_reason)
