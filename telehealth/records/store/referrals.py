"""Referrals up to a hospital or down to a member unit, with their follow-up tasks."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import schema as t
from telehealth.records.models import NewReferral, Referral, ReferralTask
from telehealth.records.store.base import StoreBase, new_id


class ReferralStore(StoreBase):
    """Referrals and their tasks."""

    async def get_referral(self, referral_id: int) -> Referral | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.referrals).where(t.referrals.c.id == referral_id))).first()
            return await self._read_referral(conn, row) if row else None

    async def list_referrals(self, *, consultation_id: int | None = None, to_org_id: int | None = None,
                             direction: str | None = None, created_by: int | None = None, open_only: bool = False,
                             limit: int = 200) -> list[Referral]:
        r = t.referrals
        query = sa.select(r).order_by(r.c.id.desc()).limit(limit)
        if created_by is not None:
            query = query.where(r.c.created_by == created_by)
        if consultation_id is not None:
            query = query.where(r.c.consultation_id == consultation_id)
        if to_org_id is not None:
            query = query.where(r.c.to_org_id == to_org_id)
        if direction:
            query = query.where(r.c.direction == direction)
        if open_only:
            query = query.where(r.c.closed_at.is_(None))
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
            return [await self._read_referral(conn, row) for row in rows]

    async def _read_referral(self, conn: AsyncConnection, row: Any) -> Referral:
        k = t.referral_tasks
        tasks = (await conn.execute(sa.select(k).where(k.c.referral_id == row.id).order_by(k.c.id))).all()
        return Referral(
            row.id, row.consultation_id, row.direction, row.from_org_id, row.to_org_id, row.department, row.slot_id,
            row.priority, row.care_plan, row.status, row.outcome, row.created_by, row.created_at, row.closed_at,
            tuple(ReferralTask(x.id, x.referral_id, x.text, x.due_date, x.done_at, x.done_by) for x in tasks),
            row.bed_id)

    async def _open_referral(self, conn: AsyncConnection, consultation_id: int, referral: NewReferral,
                             created_by: int, now: dt.datetime) -> None:
        if referral.slot_id is not None:
            held = (await conn.execute(sa.select(t.slots.c.booked_consultation_id).where(
                t.slots.c.id == referral.slot_id))).scalar()
            if held != consultation_id:
                raise TelehealthError(ErrorCode.slot_taken, "the booked slot is no longer held; book one again")
        if referral.bed_id is not None:
            holder = (await conn.execute(sa.select(t.beds.c.booked_consultation_id).where(
                t.beds.c.id == referral.bed_id))).scalar()
            if holder != consultation_id:
                raise TelehealthError(ErrorCode.bed_taken, "the reserved bed is no longer held; choose one again")
        res = await conn.execute(t.referrals.insert().values(
            consultation_id=consultation_id, direction=referral.direction, from_org_id=referral.from_org_id,
            to_org_id=referral.to_org_id, department=referral.department, slot_id=referral.slot_id,
            bed_id=referral.bed_id, priority=referral.priority, care_plan=referral.care_plan, status="open", created_by=created_by,
            created_at=now))
        referral_id = new_id(res)
        if referral.tasks:
            await conn.execute(t.referral_tasks.insert(), [
                {"referral_id": referral_id, "text": text, "due_date": due} for text, due in referral.tasks])
        await conn.execute(t.events.insert().values(
            consultation_id=consultation_id, kind="referral_opened", actor_id=created_by, at=now,
            data={"referral": referral_id, "direction": referral.direction, "slot": referral.slot_id,
                  **({"bed": referral.bed_id} if referral.bed_id is not None else {})}))

    async def complete_referral_task(self, referral_id: int, task_id: int, user_id: int, *, now: dt.datetime) -> bool:
        k = t.referral_tasks
        async with self._tx() as conn:
            ref = (await conn.execute(sa.select(t.referrals).where(t.referrals.c.id == referral_id))).first()
            if ref is None:
                raise TelehealthError(ErrorCode.not_found, "referral {id} does not exist", id=referral_id)
            if ref.closed_at is not None:
                raise TelehealthError(ErrorCode.invalid_transition, "the referral is closed")
            result = await conn.execute(k.update().where(k.c.id == task_id, k.c.referral_id == referral_id,
                                                         k.c.done_at.is_(None)).values(done_at=now, done_by=user_id))
            if result.rowcount:
                await conn.execute(t.events.insert().values(
                    consultation_id=ref.consultation_id, kind="referral_task_done", actor_id=user_id, at=now,
                    data={"referral": referral_id, "task": task_id}))
                return True
            exists = (await conn.execute(sa.select(k.c.id).where(k.c.id == task_id, k.c.referral_id == referral_id)))
            if exists.first() is None:
                raise TelehealthError(ErrorCode.not_found, "task {task} is not part of referral {referral}",
                                      task=task_id, referral=referral_id)
        return False

    async def close_referral(self, referral_id: int, outcome: str, user_id: int, *, now: dt.datetime) -> Referral:
        """The receiving clinic records the outcome: the loop is closed for the referrer."""
        r = t.referrals
        async with self._tx() as conn:
            result = await conn.execute(r.update().where(r.c.id == referral_id, r.c.closed_at.is_(None))
                                        .values(outcome=outcome, status="closed", closed_at=now))
            row = (await conn.execute(sa.select(r).where(r.c.id == referral_id))).first()
            if row is None:
                raise TelehealthError(ErrorCode.not_found, "referral {id} does not exist", id=referral_id)
            if result.rowcount != 1:
                raise TelehealthError(ErrorCode.invalid_transition, "the referral is already closed")
            await conn.execute(t.events.insert().values(
                consultation_id=row.consultation_id, kind="referral_closed", actor_id=user_id, at=now,
                data={"referral": referral_id}))
            return await self._read_referral(conn, row)
