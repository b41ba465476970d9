"""Booked consultations: the hours specialists publish, the departments' desks, and the appointments."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import schema as t
from telehealth.records.models import Appointment, ConsultationHours, Desk
from telehealth.records.store.base import StoreBase, new_id

# The statuses in which an appointment holds its specialist's time.
HOLDING = ("proposed", "booked", "started")
# No appointment lasts longer: how far back a clash is looked for.
MAX_DURATION_MIN = 240


def as_hours(row: Any) -> ConsultationHours:
    return ConsultationHours(row.id, row.specialist_id, row.hospital_org_id, row.department, row.starts_at,
                             row.ends_at, row.created_by, row.created_at, row.withdrawn_at)


def _appointment_of(values: Any) -> Appointment:
    return Appointment(**{name: values[name] for name in Appointment.__dataclass_fields__})


def as_appointment(row: Any) -> Appointment:
    return _appointment_of(row._mapping)


class AppointmentStore(StoreBase):
    """Consultation hours, desks and appointments."""

    async def insert_consultation_hours(self, *, specialist_id: int, hospital_org_id: int, department: str,
                                        starts_at: dt.datetime, ends_at: dt.datetime, created_by: int,
                                        now: dt.datetime) -> ConsultationHours:
        h = t.consultation_hours
        values: dict[str, Any] = {
            "specialist_id": specialist_id, "hospital_org_id": hospital_org_id, "department": department,
            "starts_at": starts_at, "ends_at": ends_at, "created_by": created_by, "created_at": now,
            "withdrawn_at": None}
        async with self._tx() as conn:
            hid = new_id(await conn.execute(h.insert().values(**values)))
        return ConsultationHours(id=hid, **values)

    async def get_consultation_hours(self, hours_id: int) -> ConsultationHours | None:
        h = t.consultation_hours
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(h).where(h.c.id == hours_id))).first()
        return as_hours(row) if row else None

    async def list_consultation_hours(self, *, specialist_ids: Iterable[int] | None = None,
                                      hospital_org_ids: Iterable[int] | None = None, department: str | None = None,
                                      start: dt.datetime | None = None, end: dt.datetime | None = None,
                                      limit: int = 500) -> list[ConsultationHours]:
        """Hours not withdrawn that overlap [start, end), earliest first."""
        h = t.consultation_hours
        query = sa.select(h).where(h.c.withdrawn_at.is_(None)).order_by(h.c.starts_at, h.c.id).limit(limit)
        if specialist_ids is not None:
            query = query.where(h.c.specialist_id.in_(list(specialist_ids)))
        if hospital_org_ids is not None:
            query = query.where(h.c.hospital_org_id.in_(list(hospital_org_ids)))
        if department:
            query = query.where(h.c.department == department)
        if start is not None:
            query = query.where(h.c.ends_at > start)
        if end is not None:
            query = query.where(h.c.starts_at < end)
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [as_hours(r) for r in rows]

    async def withdraw_consultation_hours(self, hours_id: int, *, now: dt.datetime) -> None:
        h = t.consultation_hours
        async with self._tx() as conn:
            await conn.execute(h.update().where(h.c.id == hours_id, h.c.withdrawn_at.is_(None))
                               .values(withdrawn_at=now))

    async def insert_desk(self, user_id: int, hospital_org_id: int, department: str, *, granted_by: int | None,
                          now: dt.datetime) -> bool:
        """Name an account to a department's desk; False if it already kept it."""
        d = t.consultation_desks
        async with self._tx() as conn:
            found = (await conn.execute(sa.select(d.c.user_id).where(
                d.c.user_id == user_id, d.c.hospital_org_id == hospital_org_id, d.c.department == department))).first()
            if found:
                return False
            await conn.execute(d.insert().values(user_id=user_id, hospital_org_id=hospital_org_id,
                                                 department=department, granted_by=granted_by, granted_at=now))
        return True

    async def delete_desk(self, user_id: int, hospital_org_id: int, department: str) -> bool:
        d = t.consultation_desks
        async with self._tx() as conn:
            result = await conn.execute(d.delete().where(
                d.c.user_id == user_id, d.c.hospital_org_id == hospital_org_id, d.c.department == department))
        return bool(result.rowcount)

    async def list_desks(self, *, user_id: int | None = None, hospital_org_id: int | None = None,
                         department: str | None = None) -> list[Desk]:
        d = t.consultation_desks
        query = sa.select(d).order_by(d.c.hospital_org_id, d.c.department, d.c.user_id)
        if user_id is not None:
            query = query.where(d.c.user_id == user_id)
        if hospital_org_id is not None:
            query = query.where(d.c.hospital_org_id == hospital_org_id)
        if department is not None:
            query = query.where(d.c.department == department)
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [Desk(r.user_id, r.hospital_org_id, r.department, r.granted_by, r.granted_at) for r in rows]

    async def _require_free(self, conn: AsyncConnection, specialist_id: int, starts_at: dt.datetime,
                            duration_min: int, *, skip: int | None) -> None:
        """Refuse a time that overlaps another appointment holding the specialist. The specialist's row is
        locked first, so two bookings of one specialist are decided one after the other (PostgreSQL; SQLite
        has one writer anyway)."""
        await conn.execute(sa.select(t.users.c.id).where(t.users.c.id == specialist_id).with_for_update())
        a = t.appointments
        ends_at = starts_at + dt.timedelta(minutes=duration_min)
        query = sa.select(a.c.id, a.c.starts_at, a.c.duration_min).where(
            a.c.specialist_id == specialist_id, a.c.status.in_(HOLDING), a.c.starts_at < ends_at,
            a.c.starts_at > starts_at - dt.timedelta(minutes=MAX_DURATION_MIN))
        if skip is not None:
            query = query.where(a.c.id != skip)
        for row in (await conn.execute(query)).all():
            if row.starts_at + dt.timedelta(minutes=row.duration_min) > starts_at:
                raise TelehealthError(ErrorCode.time_taken, "the specialist already has a booked consultation "
                                      "at this time: choose another time")

    async def insert_appointment(self, *, consultation_id: int, clinic_org_id: int, hospital_org_id: int,
                                 department: str, specialist_id: int | None, starts_at: dt.datetime | None,
                                 duration_min: int, window: tuple[dt.datetime, dt.datetime] | None, status: str,
                                 created_by: int, now: dt.datetime) -> Appointment:
        a = t.appointments
        values: dict[str, Any] = {
            "consultation_id": consultation_id, "clinic_org_id": clinic_org_id, "hospital_org_id": hospital_org_id,
            "department": department, "specialist_id": specialist_id, "starts_at": starts_at,
            "duration_min": duration_min, "window_start": window[0] if window else None,
            "window_end": window[1] if window else None, "status": status, "reason": "",
            "booked_at": now if status == "booked" else None, "reminded_day_at": None, "reminded_soon_at": None,
            "started_at": None, "closed_at": None, "reschedules": 0, "created_by": created_by, "created_at": now,
            "updated_at": now, "version": 0}
        async with self._tx() as conn:
            if specialist_id is not None and starts_at is not None:
                await self._require_free(conn, specialist_id, starts_at, duration_min, skip=None)
            values["id"] = new_id(await conn.execute(a.insert().values(**values)))
        return Appointment(**values)

    async def update_appointment(self, appointment_id: int, *, expected: Iterable[str], now: dt.datetime,
                                 check_time: bool = False, **changes: Any) -> Appointment:
        """Change an appointment that is in one of the `expected` statuses, as one write; with `check_time`
        its (new) time must not clash with another of the specialist's. A concurrent change is caught by the
        version: the caller hears `conflict`, or `invalid_transition` once the status has moved on."""
        a = t.appointments
        allowed = list(expected)
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(a).where(a.c.id == appointment_id))).first()
            if row is None:
                raise TelehealthError(ErrorCode.not_found, "no such booked consultation")
            if row.status not in allowed:
                raise TelehealthError(ErrorCode.invalid_transition, "the booked consultation is {status}: this is "
                                      "possible only when it is {allowed}", status=row.status,
                                      allowed=", ".join(allowed))
            merged = {**row._mapping, **changes, "updated_at": now, "version": row.version + 1}
            if check_time and merged["specialist_id"] is not None and merged["starts_at"] is not None:
                await self._require_free(conn, merged["specialist_id"], merged["starts_at"], merged["duration_min"],
                                         skip=appointment_id)
            result = await conn.execute(a.update().where(a.c.id == appointment_id, a.c.version == row.version)
                                        .values(**changes, updated_at=now, version=row.version + 1))
            if result.rowcount != 1:
                raise TelehealthError(ErrorCode.conflict, "the booked consultation changed meanwhile: reload it")
        return _appointment_of(merged)

    async def get_appointment(self, appointment_id: int) -> Appointment | None:
        a = t.appointments
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(a).where(a.c.id == appointment_id))).first()
        return as_appointment(row) if row else None

    async def get_appointment_of(self, consultation_id: int) -> Appointment | None:
        a = t.appointments
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(a).where(a.c.consultation_id == consultation_id))).first()
        return as_appointment(row) if row else None

    async def list_appointments(self, *, clinic_org_id: int | None = None, specialist_id: int | None = None,
                                departments: Iterable[tuple[int, str]] = (), statuses: Iterable[str] | None = None,
                                starts_before: dt.datetime | None = None, limit: int = 200) -> list[Appointment]:
        """Appointments of a clinic, or those of a specialist together with those of the (hospital, department)
        desks given; soonest first, those without a time (a window waiting for its answer) by when asked."""
        a = t.appointments
        query = sa.select(a).order_by(a.c.starts_at.is_(None), a.c.starts_at, a.c.window_start, a.c.id).limit(limit)
        if clinic_org_id is not None:
            query = query.where(a.c.clinic_org_id == clinic_org_id)
        whose = [a.c.specialist_id == specialist_id] if specialist_id is not None else []
        whose += [sa.and_(a.c.hospital_org_id == org, a.c.department == dept) for org, dept in departments]
        if whose:
            query = query.where(sa.or_(*whose))
        if statuses is not None:
            query = query.where(a.c.status.in_(list(statuses)))
        if starts_before is not None:
            query = query.where(a.c.starts_at < starts_before)
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [as_appointment(r) for r in rows]

    async def list_appointments_of(self, consultation_ids: Iterable[int]) -> list[Appointment]:
        """The appointments of these consultations (those booked, of a statistics period)."""
        a = t.appointments
        ids = list(consultation_ids)
        out: list[Appointment] = []
        async with self._tx() as conn:
            for i in range(0, len(ids), 500):
                rows = (await conn.execute(sa.select(a).where(a.c.consultation_id.in_(ids[i:i + 500]))
                                           .order_by(a.c.id))).all()
                out += [as_appointment(r) for r in rows]
        return out
