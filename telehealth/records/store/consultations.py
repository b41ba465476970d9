"""Consultations: the request with its patient and consent, and its moves through the state machine."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from telehealth.domain import ConsultationState, check_transition
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import schema as t
from telehealth.records.models import CallSession, ConsentDocument, Consultation, NewConsultation
from telehealth.records.store.base import StoreBase
from telehealth.records.store.event_log import INSERT_EVENT
from telehealth.records.store.rows import as_call_session, as_consultation

UNSET: Any = object()
_STATE_STAMP = {
    ConsultationState.queued: "queued_at",
    ConsultationState.offered: "offered_at",
    ConsultationState.accepted: "accepted_at",
    ConsultationState.in_call: "in_call_at",
    ConsultationState.ended: "ended_at",
    ConsultationState.signed: "signed_at",
    ConsultationState.closed: "closed_at",
    ConsultationState.cancelled: "cancelled_at",
    ConsultationState.expired: "expired_at",
}
CONFLICT_RETRIES = 3

_INSERT_PATIENT = t.patients.insert().returning(t.patients.c.id)
_INSERT_CONSULTATION = t.consultations.insert().returning(*t.consultations.c)
_INSERT_ATTACHMENT = t.attachments.insert()
_CONSULTATION = sa.select(t.consultations).where(t.consultations.c.id == sa.bindparam("w_id"))
_LOCK_CONSULTATION = sa.select(t.consultations).where(t.consultations.c.id == sa.bindparam("w_id")).with_for_update()
# The SET columns are the parameters' keys; w_id and w_version pick the row at the version read.
_UPDATE_CONSULTATION = t.consultations.update().where(t.consultations.c.id == sa.bindparam("w_id"),
                                                      t.consultations.c.version == sa.bindparam("w_version"))


# The fields of a new consultation as the one-statement insert binds them (the patient comes from its CTE).
_NEW_CONSULTATION_FIELDS = (
    "clinic_org_id", "requesting_doctor_id", "accompanying_doctor_id", "specialty", "urgency", "complex_case",
    "requested_specialist_id", "min_title", "title_fallback", "reason", "purpose", "chief_complaint", "history",
    "consent_by", "consent_name", "consent_relation", "consent_at", "state", "version", "created_at",
    "updated_at", "queued_at", "first_queued_at")
_NEW_PATIENT_FIELDS = ("organisation_id", "name", "sex", "birth_year", "local_id", "created_at")
_NEW_ATTACHMENT_FIELDS = ("sha256", "content_type", "size", "filename", "kind", "uploaded_by", "created_at")


def _typed(name: str, column: sa.Column[Any]) -> Any:
    """A parameter cast to its column's type (PostgreSQL cannot infer it in a select list)."""
    return sa.cast(sa.bindparam(name, type_=column.type), column.type)


def _new_consultation_statement() -> Any:
    """A new request as one statement on PostgreSQL: patient, consultation, consent document and first events
    in data-modifying CTEs. One round trip, atomic by itself, instead of a transaction of five."""
    p, c, a, e = t.patients, t.consultations, t.attachments, t.events
    patient = p.insert().from_select(
        list(_NEW_PATIENT_FIELDS), sa.select(*[_typed(f"p_{f}", p.c[f]) for f in _NEW_PATIENT_FIELDS])
    ).returning(p.c.id).cte("new_patient")
    consultation = c.insert().from_select(
        ["patient_id", *_NEW_CONSULTATION_FIELDS],
        sa.select(patient.c.id, *[_typed(f"c_{f}", c.c[f]) for f in _NEW_CONSULTATION_FIELDS]),
    ).returning(*c.c).cte("new_consultation")
    document = a.insert().from_select(
        ["consultation_id", *_NEW_ATTACHMENT_FIELDS],
        sa.select(consultation.c.id, *[_typed(f"a_{f}", a.c[f]) for f in _NEW_ATTACHMENT_FIELDS])
        .where(sa.bindparam("with_document", type_=sa.Boolean)),
    ).returning(a.c.id).cte("new_document")
    first = sa.select(consultation.c.id, sa.literal("requested", sa.String), _typed("requested_by", e.c.actor_id),
                      _typed("requested_at", e.c.at), _typed("requested_data", e.c.data))
    queued = sa.select(consultation.c.id, sa.literal("queued", sa.String), _typed("requested_by", e.c.actor_id),
                       _typed("requested_at", e.c.at), _typed("queued_data", e.c.data)
                       ).where(sa.bindparam("queued", type_=sa.Boolean))
    events = e.insert().from_select(["consultation_id", "kind", "actor_id", "at", "data"],
                                    sa.union_all(first, queued)).returning(e.c.id).cte("new_events")
    return sa.select(consultation).add_cte(document, events)


_INSERT_NEW_CONSULTATION = _new_consultation_statement()


class ConsultationStore(StoreBase):
    """Consultations and their patients."""

    async def insert_consultation(self, request: NewConsultation, *, clinic_org_id: int, doctor_id: int,
                                  now: dt.datetime, queue: bool = False) -> Consultation:
        """Record a new request with its patient, consent and first event, atomically.

        With `queue` (only allowed when consent is recorded) it is also moved on to `queued` in the same
        write, logged as the two steps it is.
        """
        if queue and not request.consent_by:
            raise TelehealthError(ErrorCode.consent_required,
                                  "record the patient's written consent before the request is queued")
        # Statements built once with their parameters passed apart: this runs for every request, and building
        # a statement from many values each time costs more than the database's own work.
        consent_at = now if request.consent_by else None
        if self.engine.dialect.name == "postgresql":
            return await self._insert_consultation_at_once(request, clinic_org_id, doctor_id, now, queue, consent_at)
        async with self._tx() as conn:
            patient_id = (await conn.execute(_INSERT_PATIENT, {
                "organisation_id": clinic_org_id, "name": request.patient_name, "sex": request.patient_sex,
                "birth_year": request.patient_birth_year, "local_id": request.patient_local_id,
                "created_at": now})).scalar_one()
            row = (await conn.execute(_INSERT_CONSULTATION, {
                "patient_id": patient_id, "clinic_org_id": clinic_org_id, "requesting_doctor_id": doctor_id,
                "accompanying_doctor_id": doctor_id, "specialty": request.specialty,
                "urgency": request.urgency.value, "complex_case": request.complex_case,
                "requested_specialist_id": request.requested_specialist_id,
                "min_title": request.min_title.value if request.min_title else None,
                "title_fallback": request.title_fallback, "reason": request.reason, "purpose": request.purpose,
                "chief_complaint": request.chief_complaint, "history": request.history,
                "consent_by": request.consent_by, "consent_name": request.consent_name,
                "consent_relation": request.consent_relation, "consent_at": consent_at,
                "state": (ConsultationState.queued if queue else ConsultationState.requested).value,
                "version": 1 if queue else 0, "created_at": now, "updated_at": now,
                "queued_at": now if queue else None, "first_queued_at": now if queue else None})).one()
            cid = int(row.id)
            events = [{"consultation_id": cid, "kind": "requested", "actor_id": doctor_id, "at": now,
                       "data": {"specialty": request.specialty, "urgency": request.urgency.value,
                                "consent": bool(request.consent_by)}}]
            doc = request.consent_document
            if doc is not None:
                await conn.execute(_INSERT_ATTACHMENT, {
                    "consultation_id": cid, "sha256": doc.sha256, "content_type": doc.content_type,
                    "size": doc.size, "filename": doc.filename, "kind": "consent", "uploaded_by": doctor_id,
                    "created_at": now})
            if queue:
                events.append({"consultation_id": cid, "kind": "queued", "actor_id": doctor_id, "at": now,
                               "data": {"from": "requested", "to": "queued"}})
            await conn.execute(INSERT_EVENT, events)
        return as_consultation(row)

    async def _insert_consultation_at_once(self, request: NewConsultation, clinic_org_id: int, doctor_id: int,
                                           now: dt.datetime, queue: bool,
                                           consent_at: dt.datetime | None) -> Consultation:
        doc = request.consent_document
        params: dict[str, Any] = {
            "p_organisation_id": clinic_org_id, "p_name": request.patient_name, "p_sex": request.patient_sex,
            "p_birth_year": request.patient_birth_year, "p_local_id": request.patient_local_id,
            "p_created_at": now,
            "c_clinic_org_id": clinic_org_id, "c_requesting_doctor_id": doctor_id,
            "c_accompanying_doctor_id": doctor_id, "c_specialty": request.specialty,
            "c_urgency": request.urgency.value, "c_complex_case": request.complex_case,
            "c_requested_specialist_id": request.requested_specialist_id,
            "c_min_title": request.min_title.value if request.min_title else None,
            "c_title_fallback": request.title_fallback, "c_reason": request.reason, "c_purpose": request.purpose,
            "c_chief_complaint": request.chief_complaint, "c_history": request.history,
            "c_consent_by": request.consent_by, "c_consent_name": request.consent_name,
            "c_consent_relation": request.consent_relation, "c_consent_at": consent_at,
            "c_state": (ConsultationState.queued if queue else ConsultationState.requested).value,
            "c_version": 1 if queue else 0, "c_created_at": now, "c_updated_at": now,
            "c_queued_at": now if queue else None, "c_first_queued_at": now if queue else None,
            "with_document": doc is not None,
            "a_sha256": doc.sha256 if doc else "", "a_content_type": doc.content_type if doc else "",
            "a_size": doc.size if doc else 0, "a_filename": doc.filename if doc else "", "a_kind": "consent",
            "a_uploaded_by": doctor_id, "a_created_at": now,
            "requested_by": doctor_id, "requested_at": now,
            "requested_data": {"specialty": request.specialty, "urgency": request.urgency.value,
                               "consent": bool(request.consent_by)},
            "queued": queue, "queued_data": {"from": "requested", "to": "queued"},
        }
        async with self._tx(single_statement=True) as conn:
            row = (await conn.execute(_INSERT_NEW_CONSULTATION, params)).one()
        return as_consultation(row)

    async def get_consultation(self, consultation_id: int) -> Consultation | None:
        row = await self._first(_CONSULTATION, {"w_id": consultation_id})
        return as_consultation(row) if row else None

    async def get_patient_summary(self, patient_id: int) -> dict[str, Any] | None:
        row = await self._first(sa.select(t.patients).where(t.patients.c.id == patient_id))
        if row is None:
            return None
        return {"name": row.name, "sex": row.sex, "birth_year": row.birth_year, "local_id": row.local_id}

    async def list_consultations(self, *, states: Iterable[ConsultationState] | None = None,
                                 clinic_org_id: int | None = None, specialist_id: int | None = None,
                                 requesting_doctor_id: int | None = None, limit: int = 200) -> list[Consultation]:
        c = t.consultations
        query = sa.select(c).order_by(c.c.id.desc()).limit(limit)
        if states is not None:
            query = query.where(c.c.state.in_([s.value for s in states]))
        if clinic_org_id is not None:
            query = query.where(c.c.clinic_org_id == clinic_org_id)
        if specialist_id is not None:
            query = query.where(c.c.assigned_specialist_id == specialist_id)
        if requesting_doctor_id is not None:
            query = query.where(c.c.requesting_doctor_id == requesting_doctor_id)
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [as_consultation(r) for r in rows]

    async def search_consultations(
        self, *, alliance_id: int | None, start: dt.datetime | None = None, end: dt.datetime | None = None,
        clinic_org_id: int | None = None, specialist_id: int | None = None, specialty: str | None = None,
        urgency: str | None = None, state: str | None = None, limit: int = 50, offset: int = 0,
        before_id: int | None = None, count: bool = True, hospital_org_id: int | None = None,
        end_reason: str | None = None,
    ) -> tuple[list[Consultation], int]:
        """A page of consultations matching the filters (newest first) and how many match in all.

        `alliance_id` None means every alliance (a system administrator).
        """
        c, o = t.consultations, t.organisations
        conditions: list[Any] = []
        if alliance_id is not None:
            conditions.append(c.c.clinic_org_id.in_(sa.select(o.c.id).where(o.c.alliance_id == alliance_id)))
        if start is not None:
            conditions.append(c.c.created_at >= start)
        if end is not None:
            conditions.append(c.c.created_at < end)
        for column, wanted in ((c.c.clinic_org_id, clinic_org_id), (c.c.assigned_specialist_id, specialist_id),
                               (c.c.specialty, specialty), (c.c.urgency, urgency), (c.c.state, state)):
            if wanted is not None:
                conditions.append(column == wanted)
        if hospital_org_id is not None:  # the hospital of the specialist who took it
            u = t.users
            conditions.append(c.c.assigned_specialist_id.in_(
                sa.select(u.c.id).where(u.c.organisation_id == hospital_org_id)))
        if end_reason is not None:  # any of its call sessions ended so
            cs = t.call_sessions
            conditions.append(c.c.id.in_(sa.select(cs.c.consultation_id).where(cs.c.end_reason == end_reason)))
        if before_id is not None:
            conditions.append(c.c.id < before_id)  # keyset paging: steady cost however deep the page
        async with self._tx() as conn:
            total = (await conn.execute(sa.select(sa.func.count()).select_from(c).where(*conditions))).scalar_one() \
                if count else -1
            rows = (await conn.execute(sa.select(c).where(*conditions).order_by(c.c.id.desc())
                                       .limit(limit).offset(offset))).all()
        return [as_consultation(r) for r in rows], int(total)

    async def iter_consultation_pages(self, *, alliance_id: int | None, batch: int = 500,
                                      **filters: Any) -> AsyncIterator[list[tuple[Consultation, list[CallSession]]]]:
        """Every consultation matching the filters, newest first, a batch at a time with its sessions:
        for exports that must not hold the whole set in memory."""
        before: int | None = None
        while True:
            page, _ = await self.search_consultations(alliance_id=alliance_id, limit=batch, before_id=before,
                                                      count=False, **filters)
            if not page:
                return
            s = t.call_sessions
            async with self._tx() as conn:
                rows = (await conn.execute(sa.select(s).where(s.c.consultation_id.in_([c.id for c in page]))
                                           .order_by(s.c.id))).all()
            sessions: dict[int, list[CallSession]] = {}
            for row in rows:
                sessions.setdefault(row.consultation_id, []).append(as_call_session(row))
            yield [(c, sessions.get(c.id, [])) for c in page]
            before = page[-1].id

    async def transition_consultation(
        self, consultation_id: int, target: ConsultationState, *, actor_id: int | None, now: dt.datetime,
        expected: Iterable[ConsultationState] | None = None, assigned_specialist_id: int | None = UNSET,
        event_kind: str | None = None, event_data: dict[str, Any] | None = None, session_id: int | None = None,
        consent: tuple[str, str, str | None] | None = None,
    ) -> Consultation:
        """Move a consultation to `target`, checked against the state machine, stamped and logged as one write.

        `expected` narrows the states the caller is prepared to move from. A concurrent change between
        read and write is caught by the version column; the move is then judged again against the state
        that change left (it may still be legal: a ring logged while the specialist already accepted), and
        only a move that is no longer legal fails.
        """
        expected = list(expected) if expected is not None else None
        for attempt in range(CONFLICT_RETRIES):
            try:
                async with self._tx() as conn:
                    return await self._transition(
                        conn, consultation_id, target, actor_id=actor_id, now=now, expected=expected,
                        assigned_specialist_id=assigned_specialist_id, event_kind=event_kind,
                        event_data=event_data, session_id=session_id, consent=consent)
            except TelehealthError as exc:
                if exc.code is not ErrorCode.conflict or attempt == CONFLICT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    async def _transition(
        self, conn: AsyncConnection, consultation_id: int, target: ConsultationState, *, actor_id: int | None,
        now: dt.datetime, expected: Iterable[ConsultationState] | None, assigned_specialist_id: int | None,
        event_kind: str | None, event_data: dict[str, Any] | None, session_id: int | None,
        consent: tuple[str, str, str | None] | None,
    ) -> Consultation:
        row = (await conn.execute(_LOCK_CONSULTATION, {"w_id": consultation_id})).first()
        if row is None:
            raise TelehealthError(ErrorCode.not_found, "consultation {id} does not exist", id=consultation_id)
        current = ConsultationState(row.state)
        if expected is not None:
            allowed = set(expected)
            if current not in allowed:
                raise TelehealthError(
                    ErrorCode.invalid_transition,
                    "consultation {id} is {state}, expected one of {allowed}", id=consultation_id, state=current,
                    allowed=", ".join(sorted(allowed)))
        check_transition(current, target)
        values: dict[str, Any] = {"state": target.value, "version": row.version + 1, "updated_at": now}
        stamp = _STATE_STAMP.get(target)
        if stamp:
            values[stamp] = now
        if target is ConsultationState.queued and row.first_queued_at is None:
            values["first_queued_at"] = now  # set once: every later return to the queue keeps this place
        if assigned_specialist_id is not UNSET:
            values["assigned_specialist_id"] = assigned_specialist_id
        if consent is not None:
            values.update(consent_by=consent[0], consent_name=consent[1], consent_relation=consent[2],
                          consent_at=now)
        res = await conn.execute(_UPDATE_CONSULTATION, {**values, "w_id": consultation_id, "w_version": row.version})
        if res.rowcount != 1:
            raise TelehealthError(ErrorCode.conflict, "consultation {id} changed meanwhile", id=consultation_id)
        data = {"from": current.value, "to": target.value}
        if event_data:
            data.update(event_data)
        await conn.execute(INSERT_EVENT, {
            "consultation_id": consultation_id, "session_id": session_id, "kind": event_kind or target.value,
            "actor_id": actor_id, "at": now, "data": data})
        # The row as written: the old one with the new values, without reading it back.
        return as_consultation(_Row({**row._mapping, **values}))

    async def close_with_decision(self, consultation_id: int, doctor_id: int, decision: str, note: str, *,
                                  now: dt.datetime) -> Consultation:
        """The clinic doctor records their decision on the signed opinion; the consultation is closed."""
        c = t.consultations
        async with self._tx() as conn:
            await conn.execute(c.update().where(c.c.id == consultation_id, c.c.state == ConsultationState.signed.value)
                               .values(clinic_decision=decision, clinic_decision_note=note, decided_by=doctor_id))
            return await self._transition(
                conn, consultation_id, ConsultationState.closed, actor_id=doctor_id, now=now,
                expected=[ConsultationState.signed], assigned_specialist_id=UNSET, event_kind="acknowledged",
                event_data={"decision": decision}, session_id=None, consent=None)

    async def record_consent(self, consultation_id: int, document: ConsentDocument,
                             consent: tuple[str, str, str | None], *, doctor_id: int,
                             now: dt.datetime) -> Consultation:
        """Consent given after the request: its document kept, and the `requested` consultation queued."""
        async with self._tx() as conn:
            await conn.execute(_INSERT_ATTACHMENT, {
                "consultation_id": consultation_id, "sha256": document.sha256,
                "content_type": document.content_type, "size": document.size, "filename": document.filename,
                "kind": "consent", "uploaded_by": doctor_id, "created_at": now})
            return await self._transition(
                conn, consultation_id, ConsultationState.queued, actor_id=doctor_id, now=now,
                expected=[ConsultationState.requested], assigned_specialist_id=UNSET,
                event_kind="consent_recorded", event_data=None, session_id=None, consent=consent)

    async def update_accompanying_doctor(self, consultation_id: int, doctor_id: int, *, actor_id: int,
                                         now: dt.datetime, session_id: int | None = None) -> int | None:
        """Another doctor of the clinic is now with the patient; during a call they also take the clinic's
        place in it. Recorded as a `handover` event; returns the doctor who handed over (None if no change)."""
        c = t.consultations
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(c.c.accompanying_doctor_id).where(c.c.id == consultation_id))).first()
            if row is None:
                raise TelehealthError(ErrorCode.not_found, "consultation {id} does not exist", id=consultation_id)
            previous = int(row.accompanying_doctor_id)
            if session_id is not None:
                cs = t.call_sessions
                res = await conn.execute(cs.update().where(
                    cs.c.id == session_id, cs.c.consultation_id == consultation_id, cs.c.ended_at.is_(None),
                    cs.c.clinic_user_id != doctor_id).values(clinic_user_id=doctor_id))
                if not res.rowcount:
                    raise TelehealthError(ErrorCode.conflict, "this call has ended or is already yours")
            elif previous == doctor_id:
                return None
            await conn.execute(c.update().where(c.c.id == consultation_id).values(
                accompanying_doctor_id=doctor_id, updated_at=now))
            await conn.execute(t.events.insert().values(
                consultation_id=consultation_id, kind="handover", actor_id=actor_id, at=now, session_id=session_id,
                data={"from_doctor": previous, "to_doctor": doctor_id}))
        return previous

    async def get_recent_service_times(self, specialty: str, limit: int = 50) -> list[float]:
        """Seconds from queued to accepted for the latest accepted requests of a specialty."""
        c = t.consultations
        async with self._tx() as conn:
            rows = (await conn.execute(
                sa.select(c.c.queued_at, c.c.accepted_at).where(
                    c.c.specialty == specialty, c.c.accepted_at.is_not(None), c.c.queued_at.is_not(None))
                .order_by(c.c.accepted_at.desc()).limit(limit))).all()
        return [max(0.0, (r.accepted_at - r.queued_at).total_seconds()) for r in rows]


class _Row:
    """Attribute access over a mapping, in the shape of a result row."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
