"""What the policy statistics count: specialists' presence and duty days, and a period's consultations."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from telehealth.records import schema as t
from telehealth.records.models import CallSession, Consultation, DutyDay, Event
from telehealth.records.store.base import StoreBase
from telehealth.records.store.rows import as_call_session, as_consultation


class StatisticsStore(StoreBase):
    """Coverage days and the statistics' source rows."""

    async def record_presence_day(self, user_id: int, day: dt.date, at: dt.datetime) -> bool:
        """Note that a specialist was online for consultations on a local day; True if newly noted."""
        p = t.presence_days
        try:
            async with self._tx() as conn:
                if (await conn.execute(sa.select(p.c.user_id).where(p.c.user_id == user_id,
                                                                    p.c.day == day))).first():
                    return False
                await conn.execute(p.insert().values(user_id=user_id, day=day, first_at=at))
        except IntegrityError:
            return False  # another node noted it first
        return True

    async def list_presence_days(self, start: dt.date, end: dt.date) -> list[tuple[int, dt.date]]:
        """(specialist, local day) pairs with start <= day < end."""
        p = t.presence_days
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(p.c.user_id, p.c.day).where(p.c.day >= start, p.c.day < end))).all()
        return [(r.user_id, r.day) for r in rows]

    async def insert_duty_days(self, user_id: int, org_id: int, days: Iterable[dt.date], *, created_by: int | None,
                               now: dt.datetime) -> int:
        """Record a clinician's duty days at an institution; days already recorded are skipped."""
        d = t.duty_days
        wanted = sorted(set(days))
        async with self._tx() as conn:
            have = {r.day for r in await conn.execute(sa.select(d.c.day).where(
                d.c.user_id == user_id, d.c.org_id == org_id, d.c.day.in_(wanted)))}
            rows = [{"user_id": user_id, "org_id": org_id, "day": day, "created_by": created_by, "created_at": now}
                    for day in wanted if day not in have]
            if rows:
                await conn.execute(d.insert(), rows)
        return len(rows)

    async def list_duty_days(self, *, org_ids: Iterable[int] | None, start: dt.date,
                             end: dt.date) -> list[DutyDay]:
        d = t.duty_days
        query = sa.select(d).where(d.c.day >= start, d.c.day < end).order_by(d.c.day, d.c.org_id, d.c.user_id)
        if org_ids is not None:
            query = query.where(d.c.org_id.in_(list(org_ids)))
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [DutyDay(r.id, r.user_id, r.org_id, r.day) for r in rows]

    async def delete_duty_day(self, duty_id: int, org_ids: Iterable[int] | None) -> bool:
        d = t.duty_days
        query = d.delete().where(d.c.id == duty_id)
        if org_ids is not None:
            query = query.where(d.c.org_id.in_(list(org_ids)))
        async with self._tx() as conn:
            res = await conn.execute(query)
        return bool(res.rowcount)

    async def get_statistics_rows(self, *, alliance_id: int | None, start: dt.datetime,
                                  end: dt.datetime) -> tuple[list[Consultation], list[Event], list[CallSession]]:
        """Consultations asked for in [start, end) within an alliance, with their events and call sessions:
        what the policy statistics are computed from."""
        c, o = t.consultations, t.organisations
        query = sa.select(c).where(c.c.created_at >= start, c.c.created_at < end).order_by(c.c.id)
        if alliance_id is not None:
            query = query.where(c.c.clinic_org_id.in_(sa.select(o.c.id).where(o.c.alliance_id == alliance_id)))
        async with self._tx() as conn:
            consultations = [as_consultation(r) for r in (await conn.execute(query)).all()]
            ids = [x.id for x in consultations]
            events: list[Event] = []
            sessions: list[CallSession] = []
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                e = t.events
                events += [Event(r.id, r.consultation_id, r.session_id, r.kind, r.actor_id, r.at, dict(r.data or {}))
                           for r in await conn.execute(sa.select(e).where(
                               e.c.consultation_id.in_(chunk), e.c.kind != "quality").order_by(e.c.id))]
                cs = t.call_sessions
                sessions += [as_call_session(r) for r in await conn.execute(
                    sa.select(cs).where(cs.c.consultation_id.in_(chunk)).order_by(cs.c.id))]
        return consultations, events, sessions
