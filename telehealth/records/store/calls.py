"""Call sessions: one per call of a consultation, opened with its move to in_call and ended once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa

from telehealth.domain import ConsultationState
from telehealth.records import schema as t
from telehealth.records.models import CallSession, Consultation
from telehealth.records.store.consultations import UNSET, ConsultationStore
from telehealth.records.store.event_log import INSERT_EVENT
from telehealth.records.store.rows import as_call_session

_INSERT_CALL_SESSION = t.call_sessions.insert().returning(t.call_sessions.c.id)
_CALL_SESSION = sa.select(t.call_sessions).where(t.call_sessions.c.id == sa.bindparam("w_id"))
_OPEN_CALL_SESSION = (sa.select(t.call_sessions)
                      .where(t.call_sessions.c.consultation_id == sa.bindparam("w_consultation"),
                             t.call_sessions.c.ended_at.is_(None))
                      .order_by(t.call_sessions.c.id.desc()))
_END_CALL_SESSION = (t.call_sessions.update()
                     .where(t.call_sessions.c.id == sa.bindparam("w_id"), t.call_sessions.c.ended_at.is_(None))
                     .returning(t.call_sessions.c.consultation_id))


class CallSessionStore(ConsultationStore):
    """Call sessions."""

    async def open_call_session(self, consultation_id: int, clinic_user_id: int, specialist_user_id: int, *,
                                actor_id: int | None, now: dt.datetime,
                                expected: Iterable[ConsultationState]) -> tuple[Consultation, CallSession]:
        """The consultation goes in_call and its new session is recorded, in one write."""
        async with self._tx() as conn:
            sid = int((await conn.execute(_INSERT_CALL_SESSION, {
                "consultation_id": consultation_id, "clinic_user_id": clinic_user_id,
                "specialist_user_id": specialist_user_id, "started_at": now})).scalar_one())
            consultation = await self._transition(
                conn, consultation_id, ConsultationState.in_call, actor_id=actor_id, now=now, expected=expected,
                assigned_specialist_id=UNSET, event_kind="call_started", event_data=None, session_id=sid,
                consent=None)
            await conn.execute(INSERT_EVENT, {"consultation_id": consultation_id, "session_id": sid,
                                               "kind": "session_opened", "actor_id": None, "at": now, "data": {}})
        session = CallSession(sid, consultation_id, clinic_user_id, specialist_user_id, now, None, None, None)
        return consultation, session

    async def get_call_session(self, session_id: int) -> CallSession | None:
        row = await self._first(_CALL_SESSION, {"w_id": session_id})
        return as_call_session(row) if row else None

    async def get_open_call_session(self, consultation_id: int) -> CallSession | None:
        row = await self._first(_OPEN_CALL_SESSION, {"w_consultation": consultation_id})
        return as_call_session(row) if row else None

    async def list_call_sessions(self, consultation_id: int) -> list[CallSession]:
        s = t.call_sessions
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(s).where(s.c.consultation_id == consultation_id)
                                       .order_by(s.c.id))).all()
        return [as_call_session(r) for r in rows]

    async def list_open_call_sessions(self) -> list[CallSession]:
        s = t.call_sessions
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(s).where(s.c.ended_at.is_(None)))).all()
        return [as_call_session(r) for r in rows]

    async def update_call_session_connected(self, session_id: int, now: dt.datetime) -> None:
        s = t.call_sessions
        async with self._tx() as conn:
            await conn.execute(s.update().where(s.c.id == session_id, s.c.connected_at.is_(None))
                               .values(connected_at=now))

    async def end_call_session(self, session_id: int, reason: str, *, actor_id: int | None,
                               now: dt.datetime) -> bool:
        """Close a session once; False if it was already closed."""
        async with self._tx() as conn:
            row = (await conn.execute(_END_CALL_SESSION, {"w_id": session_id, "ended_at": now,
                                                          "end_reason": reason})).first()
            if row is None:
                return False
            await conn.execute(INSERT_EVENT, {
                "consultation_id": row.consultation_id, "session_id": session_id, "kind": "session_ended",
                "actor_id": actor_id, "at": now, "data": {"reason": reason}})
        return True
