"""Hospitals' appointment slots, the reserved share kept for referrals, and bookings."""

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
from telehealth.records.models import Slot, SlotDay
from telehealth.records.store.base import StoreBase
from telehealth.records.store.rows import as_alliance, as_organisation, as_slot


class SlotStore(StoreBase):
    """Slots, the reserved pool and bookings."""

    async def publish_slots(self, hospital_org_id: int, department: str, starts: Sequence[dt.datetime], *,
                            duration_min: int, location: str, tz: ZoneInfo,
                            policy: quota.SharePolicy = quota.DEFAULT_POLICY) -> tuple[int, int]:
        """Add a department's slots (a start already published is skipped) and top up each touched day's
        reserved share. All or nothing. Returns (slots created, slots newly reserved)."""
        async with self._tx() as conn:
            return await self._publish(conn, hospital_org_id, department,
                                       [(w, duration_min, location) for w in starts], tz, policy)

    async def publish_timetable(self, rows: Sequence[tuple[int, str, dt.datetime, int, str]], *,
                                tz: ZoneInfo, policy: quota.SharePolicy = quota.DEFAULT_POLICY) -> tuple[int, int]:
        """Publish an imported timetable of (hospital, department, start, minutes, location) rows in one
        transaction: every row lands or none does."""
        groups: dict[tuple[int, str], list[tuple[dt.datetime, int, str]]] = {}
        for hospital_org_id, department, starts_at, minutes, location in rows:
            groups.setdefault((hospital_org_id, department), []).append((starts_at, minutes, location))
        created = reserved = 0
        async with self._tx() as conn:
            for (hospital_org_id, department), items in groups.items():
                c, r = await self._publish(conn, hospital_org_id, department, items, tz, policy)
                created, reserved = created + c, reserved + r
        return created, reserved

    async def _publish(self, conn: AsyncConnection, hospital_org_id: int, department: str,
                       items: Sequence[tuple[dt.datetime, int, str]], tz: ZoneInfo,
                       policy: quota.SharePolicy) -> tuple[int, int]:
        s = t.slots
        share = await self._share_of(conn, hospital_org_id, policy)
        by_start = {w: (minutes, location) for w, minutes, location in items}
        wanted = sorted(by_start)
        existing: set[dt.datetime] = set()
        if wanted:
            existing = set((await conn.execute(sa.select(s.c.starts_at).where(
                s.c.hospital_org_id == hospital_org_id, s.c.department == department,
                s.c.starts_at >= wanted[0], s.c.starts_at <= wanted[-1]))).scalars())
        fresh = [w for w in wanted if w not in existing]
        if fresh:
            await conn.execute(s.insert(), [
                {"hospital_org_id": hospital_org_id, "department": department, "starts_at": w,
                 "duration_min": by_start[w][0], "location": by_start[w][1], "reserved": False} for w in fresh])
        reserved = 0
        for day in sorted({quota.local_day(w, tz) for w in fresh}):
            reserved += await self._top_up_reserved(conn, hospital_org_id, share.share, department, day, tz)
        return len(fresh), reserved

    async def _share_of(self, conn: AsyncConnection, org_id: int, policy: quota.SharePolicy) -> quota.Share:
        """The hospital's reserved share as the policy counts it, read in the caller's transaction."""
        row = (await conn.execute(sa.select(t.organisations).where(t.organisations.c.id == org_id))).first()
        if row is None:
            raise TelehealthError(ErrorCode.not_found, "organisation {id} does not exist", id=org_id)
        org = as_organisation(row)
        alliance = None
        if org.alliance_id is not None:
            a_row = (await conn.execute(sa.select(t.alliances).where(t.alliances.c.id == org.alliance_id))).first()
            alliance = as_alliance(a_row) if a_row else None
        return quota.reserved_share(org, alliance, policy)

    async def set_reserved_share(self, org_id: int, pct: int | None, *, now: dt.datetime, tz: ZoneInfo,
                                 policy: quota.SharePolicy = quota.DEFAULT_POLICY) -> int:
        """Set a hospital's reserved share (None: its alliance's rule or the policy floor) and top up its days
        still ahead. A lower share never takes back slots already reserved. Returns how many slots were newly
        reserved."""
        o = t.organisations
        async with self._tx() as conn:
            result = await conn.execute(o.update().where(o.c.id == org_id).values(reserved_share_pct=pct))
            if result.rowcount != 1:
                raise TelehealthError(ErrorCode.not_found, "organisation {id} does not exist", id=org_id)
            return await self._top_up_ahead(conn, org_id, now=now, tz=tz, policy=policy)

    async def set_member_share(self, alliance_id: int, pct: int | None, *, now: dt.datetime, tz: ZoneInfo,
                               policy: quota.SharePolicy = quota.DEFAULT_POLICY) -> int:
        """Set an alliance's rule for the reserved share of the hospitals that do not lead it (None: no rule)
        and top up their days still ahead. Returns how many slots were newly reserved."""
        a, o = t.alliances, t.organisations
        async with self._tx() as conn:
            result = await conn.execute(a.update().where(a.c.id == alliance_id).values(member_share_pct=pct))
            if result.rowcount != 1:
                raise TelehealthError(ErrorCode.not_found, "alliance {id} does not exist", id=alliance_id)
            hospitals = (await conn.execute(sa.select(o.c.id).where(
                o.c.alliance_id == alliance_id,
                o.c.level.in_([OrgLevel.county_hospital.value, OrgLevel.city_hospital.value])))).scalars().all()
            reserved = 0
            for hospital_id in hospitals:
                reserved += await self._top_up_ahead(conn, hospital_id, now=now, tz=tz, policy=policy)
        return reserved

    async def _top_up_ahead(self, conn: AsyncConnection, org_id: int, *, now: dt.datetime, tz: ZoneInfo,
                            policy: quota.SharePolicy) -> int:
        s = t.slots
        share = await self._share_of(conn, org_id, policy)
        ahead = (await conn.execute(sa.select(s.c.department, s.c.starts_at).where(
            s.c.hospital_org_id == org_id, s.c.starts_at >= now))).all()
        reserved = 0
        for department, day in sorted({(r.department, quota.local_day(r.starts_at, tz)) for r in ahead}):
            reserved += await self._top_up_reserved(conn, org_id, share.share, department, day, tz)
        return reserved

    async def _top_up_reserved(self, conn: AsyncConnection, org_id: int, share: Fraction, department: str,
                               day: dt.date, tz: ZoneInfo) -> int:
        s = t.slots
        start, end = quota.day_bounds(day, tz)
        rows = (await conn.execute(sa.select(s.c.id, s.c.reserved, s.c.booked_consultation_id, s.c.released_at)
                                   .where(s.c.hospital_org_id == org_id, s.c.department == department,
                                          s.c.starts_at >= start, s.c.starts_at < end)
                                   .order_by(s.c.starts_at))).all()
        missing = quota.reserved_needed(len(rows), share) - sum(1 for r in rows if r.reserved)
        candidates = [r.id for r in rows if not r.reserved and r.booked_consultation_id is None]
        chosen = quota.spread(candidates, missing)
        if chosen:
            await conn.execute(s.update().where(s.c.id.in_(chosen)).values(reserved=True))
        return len(chosen)

    async def get_slot(self, slot_id: int) -> Slot | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.slots).where(t.slots.c.id == slot_id))).first()
        return as_slot(row) if row else None

    async def list_slots(self, *, hospital_org_ids: Iterable[int] | None = None, department: str | None = None,
                         start: dt.datetime | None = None, end: dt.datetime | None = None,
                         open_reserved: bool = False, limit: int = 500) -> list[Slot]:
        """Slots by time; `open_reserved`: only reserved slots neither booked nor released."""
        s = t.slots
        query = sa.select(s).order_by(s.c.starts_at, s.c.id).limit(limit)
        if hospital_org_ids is not None:
            query = query.where(s.c.hospital_org_id.in_(list(hospital_org_ids)))
        if department:
            query = query.where(s.c.department == department)
        if start is not None:
            query = query.where(s.c.starts_at >= start)
        if end is not None:
            query = query.where(s.c.starts_at < end)
        if open_reserved:
            query = query.where(s.c.reserved.is_(True), s.c.booked_consultation_id.is_(None),
                                s.c.released_at.is_(None))
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [as_slot(r) for r in rows]

    async def get_booking(self, consultation_id: int) -> Slot | None:
        s = t.slots
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(s).where(s.c.booked_consultation_id == consultation_id))).first()
        return as_slot(row) if row else None

    async def book_slot(self, consultation_id: int, slot_id: int, *, now: dt.datetime, tz: ZoneInfo,
                        release_hours: float) -> Slot:
        """Book a reserved slot for a consultation's referral, atomically: of any number of concurrent bookings
        of one slot exactly one succeeds; the others get `slot_taken` and change nothing. A consultation holds
        at most one slot: booking another gives the first back."""
        s = t.slots
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(s).where(s.c.id == slot_id))).first()
            if row is None:
                raise TelehealthError(ErrorCode.not_found, "slot {id} does not exist", id=slot_id)
            if row.booked_consultation_id == consultation_id:
                return as_slot(row)
            # Whatever path asks, reserved slots go only to the patients of grassroots institutions.
            level = (await conn.execute(sa.select(t.organisations.c.level).select_from(
                t.consultations.join(t.organisations, t.organisations.c.id == t.consultations.c.clinic_org_id))
                .where(t.consultations.c.id == consultation_id))).scalar()
            if level is None or not OrgLevel(level).is_grassroots:
                raise TelehealthError(ErrorCode.not_eligible, "reserved slots are for patients of village clinics "
                                      "and township or community health centres: this consultation's institution "
                                      "is not one")
            if not row.reserved:
                raise TelehealthError(ErrorCode.slot_taken, "this slot is not in the reserved pool")
            if row.released_at is not None or now >= quota.release_cutoff(row.starts_at, tz, release_hours):
                raise TelehealthError(ErrorCode.slot_taken, "this slot has gone back to the general pool")
            await conn.execute(s.update().where(s.c.booked_consultation_id == consultation_id)
                               .values(booked_consultation_id=None, booked_at=None))
            result = await conn.execute(s.update().where(
                s.c.id == slot_id, s.c.booked_consultation_id.is_(None), s.c.released_at.is_(None),
            ).values(booked_consultation_id=consultation_id, booked_at=now))
            if result.rowcount != 1:
                raise TelehealthError(ErrorCode.slot_taken, "this slot was just booked by someone else")
            await conn.execute(t.events.insert().values(
                consultation_id=consultation_id, kind="slot_booked", actor_id=None, at=now, data={"slot": slot_id}))
            booked = (await conn.execute(sa.select(s).where(s.c.id == slot_id))).one()
        return as_slot(booked)

    async def cancel_booking(self, consultation_id: int, *, now: dt.datetime) -> bool:
        """Give a consultation's slot back to the reserved pool (before the note is signed)."""
        s = t.slots
        async with self._tx() as conn:
            result = await conn.execute(s.update().where(s.c.booked_consultation_id == consultation_id)
                                        .values(booked_consultation_id=None, booked_at=None))
            if result.rowcount:
                await conn.execute(t.events.insert().values(
                    consultation_id=consultation_id, kind="slot_cancelled", actor_id=None, at=now, data={}))
        return bool(result.rowcount)

    async def release_reserved_slots(self, *, now: dt.datetime, tz: ZoneInfo, release_hours: float) -> int:
        """Hand unbooked reserved slots whose cut-off has passed back to the general pool. Idempotent; a booking
        racing it either lands first (the slot stays booked) or finds the slot released."""
        s = t.slots
        horizon = now + dt.timedelta(hours=release_hours) + dt.timedelta(days=1, hours=14)
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(s.c.id, s.c.starts_at).where(
                s.c.reserved.is_(True), s.c.booked_consultation_id.is_(None), s.c.released_at.is_(None),
                s.c.starts_at < horizon))).all()
            due = [r.id for r in rows if now >= quota.release_cutoff(r.starts_at, tz, release_hours)]
            released = 0
            for chunk in range(0, len(due), 500):
                result = await conn.execute(s.update().where(
                    s.c.id.in_(due[chunk:chunk + 500]), s.c.booked_consultation_id.is_(None),
                    s.c.released_at.is_(None)).values(released_at=now))
                released += result.rowcount
        return released

    async def list_slot_days(self, *, hospital_org_ids: Iterable[int] | None, start: dt.datetime,
                             end: dt.datetime, tz: ZoneInfo) -> list[SlotDay]:
        """Per hospital, department and local day: published, reserved, booked and released counts."""
        s = t.slots
        query = sa.select(s.c.hospital_org_id, s.c.department, s.c.starts_at, s.c.reserved,
                          s.c.booked_consultation_id, s.c.released_at).where(
            s.c.starts_at >= start, s.c.starts_at < end)
        if hospital_org_ids is not None:
            query = query.where(s.c.hospital_org_id.in_(list(hospital_org_ids)))
        counts: dict[tuple[int, str, dt.date], list[int]] = {}
        async with self.engine.connect() as conn:
            result = await conn.stream(query)
            async for r in result:
                c = counts.setdefault((r.hospital_org_id, r.department, quota.local_day(r.starts_at, tz)), [0] * 4)
                c[0] += 1
                if r.reserved:
                    c[1] += 1
                    c[2] += r.booked_consultation_id is not None
                    c[3] += r.released_at is not None
        return [SlotDay(k[0], k[1], k[2], *v) for k, v in sorted(counts.items())]
