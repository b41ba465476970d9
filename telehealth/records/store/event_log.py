"""The consultation's event log: every state change, ring, decline and call-quality sample."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from telehealth.records import schema as t
from telehealth.records.models import Event
from telehealth.records.store.base import StoreBase

INSERT_EVENT = t.events.insert()


class EventLogStore(StoreBase):
    """Events of a consultation (and of its call sessions)."""

    async def insert_event(self, consultation_id: int, kind: str, *, actor_id: int | None, now: dt.datetime,
                           session_id: int | None = None, data: dict[str, Any] | None = None) -> None:
        async with self._tx() as conn:
            await conn.execute(INSERT_EVENT, {
                "consultation_id": consultation_id, "session_id": session_id, "kind": kind, "actor_id": actor_id,
                "at": now, "data": data or {}})

    async def insert_events(self, rows: Sequence[dict[str, Any]]) -> None:
        """Many events in one write (each dict: consultation_id, kind, actor_id, at, session_id, data)."""
        if not rows:
            return
        async with self._tx() as conn:
            await conn.execute(t.events.insert(), [
                {"consultation_id": r["consultation_id"], "kind": r["kind"], "actor_id": r.get("actor_id"),
                 "at": r["at"], "session_id": r.get("session_id"), "data": r.get("data") or {}} for r in rows])

    async def list_events(self, consultation_id: int) -> list[Event]:
        e = t.events
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(e).where(e.c.consultation_id == consultation_id)
                                       .order_by(e.c.at, e.c.id))).all()
        return [Event(r.id, r.consultation_id, r.session_id, r.kind, r.actor_id, r.at, dict(r.data)) for r in rows]
