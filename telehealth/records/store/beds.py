"""Hospitals' inpatient beds per ward and day, the reserved share held for referrals up, and bookings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from fractions import Fraction
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from telehealth.domain import OrgLevel
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import quota
from telehealth.records import schema as t
from telehealth.records.models import Bed, BedDay
from telehealth.records.store.base import StoreBase
from telehealth.records.store.rows import as_bed, as_organisation


class BedStore(StoreBase):
    """Beds, the reserved pool and bookings."""

    async def publish_beds(self, rows: Sequence[tuple[int, str, dt.date, int]]) -> tuple[int, int]:
        """Publish (hospital, ward, day, beds available) counts in one transaction, all or nothing. A count
        above what is already published adds the difference; a lower one takes nothing back (a booked bed stays
        booked). Each touched ward-day's reserved share is topped up. Returns (beds created, newly reserved)."""
        b = t.beds
        counts: dict[tuple[int, str, dt.date], int] = {}
        for hospital_org_id, ward, day, count in rows:
            # The last line for a ward and day counts, as a corrected figure would.
            counts[(hospital_org_id, ward, day)] = count
        created = reserved = 0
        shares: dict[int, Fraction] = {}
        async with self._tx() as conn:
            for (hospital_org_id, ward, day), count in sorted(counts.items()):
                if hospital_org_id not in shares:
                    shares[hospital_org_id] = await self._bed_share_of(conn, hospital_org_id)
                have = (await conn.execute(sa.select(sa.func.coalesce(sa.func.max(b.c.number), 0)).where(
                    b.c.hospital_org_id == hospital_org_id, b.c.ward == ward, b.c.day == day))).scalar_one()
                if count > have:
                    await conn.execute(b.insert(), [
                        {"hospital_org_id": hospital_org_id, "ward": ward, "day": day, "number": n, "reserved": False}
                        for n in range(have + 1, count + 1)])
                    created += count - have
                reserved += await self._top_up_beds(conn, hospital_org_id, shares[hospital_org_id], ward, day)
        return created, reserved

    async def _bed_share_of(self, conn: AsyncConnection, org_id: int) -> Fraction:
        row = (await conn.execute(sa.select(t.organisations).where(t.organisations.c.id == org_id))).first()
        if row is None:
            raise TelehealthError(ErrorCode.not_found, "organisation {id} does not exist", id=org_id)
        return quota.bed_floor(as_organisation(row))[0]

    async def _top_up_beds(self, conn: AsyncConnection, org_id: int, share: Fraction, ward: str, day: dt.date) -> int:
        b = t.beds
        rows = (await conn.execute(sa.select(b.c.id, b.c.reserved, b.c.booked_consultation_id).where(
            b.c.hospital_org_id == org_id, b.c.ward == ward, b.c.day == day).order_by(b.c.number))).all()
        missing = quota.reserved_needed(len(rows), share) - sum(1 for r in rows if r.reserved)
        chosen = [r.id for r in rows if not r.reserved and r.booked_consultation_id is None][:max(missing, 0)]
        if chosen:
            await conn.execute(b.update().where(b.c.id.in_(chosen)).values(reserved=True))
        return len(chosen)

    async def get_bed(self, bed_id: int) -> Bed | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.beds).where(t.beds.c.id == bed_id))).first()
        return as_bed(row) if row else None

    async def list_beds(self, *, hospital_org_ids: Iterable[int] | None = None, ward: str | None = None,
                        start: dt.date | None = None, end: dt.date | None = None, open_reserved: bool = False,
                        limit: int = 500) -> list[Bed]:
        """Beds by day, ward and number; `open_reserved`: only reserved beds neither booked nor released."""
        b = t.beds
        query = sa.select(b).order_by(b.c.day, b.c.hospital_org_id, b.c.ward, b.c.number).limit(limit)
        if hospital_org_ids is not None:
            query = query.where(b.c.hospital_org_id.in_(list(hospital_org_ids)))
        if ward:
            query = query.where(b.c.ward == ward)
        if start is not None:
            query = query.where(b.c.day >= start)
        if end is not None:
            query = query.where(b.c.day < end)
        if open_reserved:
            query = query.where(b.c.reserved.is_(True), b.c.booked_consultation_id.is_(None),
                                b.c.released_at.is_(None))
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [as_bed(r) for r in rows]

    async def get_bed_booking(self, consultation_id: int) -> Bed | None:
        b = t.beds
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(b).where(b.c.booked_consultation_id == consultation_id))).first()
        return as_bed(row) if row else None

    async def book_bed(self, consultation_id: int, bed_id: int, *, now: dt.datetime, tz: ZoneInfo,
                       release_hours: float) -> Bed:
        """Book a reserved bed for a consultation's referral up for admission, atomically: of any number of
        concurrent bookings of one bed exactly one succeeds; the others get `bed_taken` and change nothing. A
        consultation holds at most one bed: booking another gives the first back."""
        b = t.beds
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(b).where(b.c.id == bed_id))).first()
            if row is None:
                raise TelehealthError(ErrorCode.not_found, "bed {id} does not exist", id=bed_id)
            if row.booked_consultation_id == consultation_id:
                return as_bed(row)
            # Whatever path asks, reserved beds go only to the patients of grassroots institutions.
            level = (await conn.execute(sa.select(t.organisations.c.level).select_from(
                t.consultations.join(t.organisations, t.organisations.c.id == t.consultations.c.clinic_org_id))
                .where(t.consultations.c.id == consultation_id))).scalar()
            if level is None or not OrgLevel(level).is_grassroots:
                raise TelehealthError(ErrorCode.not_eligible, "reserved beds are for patients of village clinics "
                                      "and township or community health centres: this consultation's institution "
                                      "is not one")
            if not row.reserved:
                raise TelehealthError(ErrorCode.bed_taken, "this bed is not in the reserved pool")
            if row.released_at is not None or now >= quota.bed_release_cutoff(row.day, tz, release_hours):
                raise TelehealthError(ErrorCode.bed_taken, "this bed has gone back to the general pool")
            await conn.execute(b.update().where(b.c.booked_consultation_id == consultation_id)
                               .values(booked_consultation_id=None, booked_at=None))
            # The condition decides the race: the database lets one update through, the rest find it booked.
            result = await conn.execute(b.update().where(
                b.c.id == bed_id, b.c.booked_consultation_id.is_(None), b.c.released_at.is_(None),
            ).values(booked_consultation_id=consultation_id, booked_at=now))
            if result.rowcount != 1:
                raise TelehealthError(ErrorCode.bed_taken, "this bed was just booked by someone else")
            await conn.execute(t.events.insert().values(
                consultation_id=consultation_id, kind="bed_booked", actor_id=None, at=now, data={"bed": bed_id}))
            booked = (await conn.execute(sa.select(b).where(b.c.id == bed_id))).one()
        return as_bed(booked)

    async def release_reserved_beds(self, *, now: dt.datetime, tz: ZoneInfo, release_hours: float) -> int:
        """Hand unbooked reserved beds whose cut-off has passed back to the general pool. Idempotent; a booking
        racing it either lands first (the bed stays booked) or finds the bed released."""
        b = t.beds
        # Every day whose cut-off has passed starts before this local day (the day after the cut-off's).
        horizon = (now + dt.timedelta(hours=release_hours)).astimezone(tz).date() + dt.timedelta(days=1)
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(b.c.id, b.c.day).where(
                b.c.reserved.is_(True), b.c.booked_consultation_id.is_(None), b.c.released_at.is_(None),
                b.c.day < horizon))).all()
            due = [r.id for r in rows if now >= quota.bed_release_cutoff(r.day, tz, release_hours)]
            released = 0
            for chunk in range(0, len(due), 500):
                result = await conn.execute(b.update().where(
                    b.c.id.in_(due[chunk:chunk + 500]), b.c.booked_consultation_id.is_(None),
                    b.c.released_at.is_(None)).values(released_at=now))
                released += result.rowcount
        return released

    async def list_bed_days(self, *, hospital_org_ids: Iterable[int] | None, start: dt.date,
                            end: dt.date) -> list[BedDay]:
        """Per hospital, ward and day in [start, end): published, reserved, booked and released counts."""
        b = t.beds
        reserved = b.c.reserved.is_(True)
        query = sa.select(
            b.c.hospital_org_id, b.c.ward, b.c.day, sa.func.count(),
            sa.func.sum(sa.case((reserved, 1), else_=0)),
            sa.func.sum(sa.case((sa.and_(reserved, b.c.booked_consultation_id.is_not(None)), 1), else_=0)),
            sa.func.sum(sa.case((sa.and_(reserved, b.c.released_at.is_not(None)), 1), else_=0)),
        ).where(b.c.day >= start, b.c.day < end).group_by(b.c.hospital_org_id, b.c.ward, b.c.day).order_by(
            b.c.hospital_org_id, b.c.ward, b.c.day)
        if hospital_org_ids is not None:
            query = query.where(b.c.hospital_org_id.in_(list(hospital_org_ids)))
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [BedDay(r[0], r[1], r[2], int(r[3]), int(r[4] or 0), int(r[5] or 0), int(r[6] or 0)) for r in rows]
