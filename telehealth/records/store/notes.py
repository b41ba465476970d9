"""The specialist's note: draft, signature (with the disposition's referral) and signed addenda."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from telehealth.domain import ConsultationState
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import schema as t
from telehealth.records.models import Addendum, NewReferral, Note
from telehealth.records.store.base import new_id
from telehealth.records.store.consultations import UNSET, ConsultationStore
from telehealth.records.store.referrals import ReferralStore
from telehealth.records.store.rows import as_note

NOTE_FIELDS = frozenset({"subjective", "objective", "assessment", "diagnoses", "plan", "disposition"})


class NoteStore(ConsultationStore, ReferralStore):
    """Notes and addenda."""

    async def get_note(self, consultation_id: int) -> Note | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.notes).where(t.notes.c.consultation_id == consultation_id))).first()
        return as_note(row) if row else None

    async def save_note_draft(self, consultation_id: int, author_id: int, fields: dict[str, Any], *,
                              now: dt.datetime) -> Note:
        """Create or update the draft; a signed note is refused here (and by the database's trigger)."""
        n = t.notes
        values = {k: v for k, v in fields.items() if k in NOTE_FIELDS}
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(n).where(n.c.consultation_id == consultation_id)
                                      .with_for_update())).first()
            if row is None:
                await conn.execute(n.insert().values(consultation_id=consultation_id, author_id=author_id,
                                                     draft_saved_at=now, **values))
            else:
                if row.signed_at is not None:
                    raise TelehealthError(ErrorCode.note_signed, "the note is signed; add an addendum instead")
                await conn.execute(n.update().where(n.c.id == row.id, n.c.signed_at.is_(None))
                                   .values(draft_saved_at=now, **values))
            saved = (await conn.execute(sa.select(n).where(n.c.consultation_id == consultation_id))).one()
        return as_note(saved)

    async def sign_note(self, consultation_id: int, signer_id: int, *, now: dt.datetime,
                        store_and_forward: bool, referral: NewReferral | None = None) -> Note:
        """Sign the note, move the consultation to `signed` and open the disposition's referral, in one write."""
        n = t.notes
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(n).where(n.c.consultation_id == consultation_id)
                                      .with_for_update())).first()
            if row is None:
                raise TelehealthError(ErrorCode.invalid_input, "there is no note to sign yet")
            if row.signed_at is not None:
                raise TelehealthError(ErrorCode.note_signed, "the note is already signed")
            if store_and_forward:
                await self._transition(conn, consultation_id, ConsultationState.ended, actor_id=signer_id, now=now,
                                       expected=[ConsultationState.accepted], assigned_specialist_id=UNSET,
                                       event_kind="answered_in_writing", event_data=None, session_id=None,
                                       consent=None)
            await conn.execute(n.update().where(n.c.id == row.id).values(
                signed_at=now, signed_by=signer_id, store_and_forward=store_and_forward))
            await self._transition(conn, consultation_id, ConsultationState.signed, actor_id=signer_id, now=now,
                                   expected=[ConsultationState.ended], assigned_specialist_id=UNSET,
                                   event_kind="note_signed", event_data={"note": row.id}, session_id=None,
                                   consent=None)
            if referral is not None:
                await self._open_referral(conn, consultation_id, referral, signer_id, now)
            signed = (await conn.execute(sa.select(n).where(n.c.id == row.id))).one()
        return as_note(signed)

    async def insert_addendum(self, consultation_id: int, author_id: int, text: str, *, now: dt.datetime) -> Addendum:
        n, a = t.notes, t.addenda
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(n.c.id, n.c.signed_at).where(
                n.c.consultation_id == consultation_id))).first()
            if row is None or row.signed_at is None:
                raise TelehealthError(ErrorCode.invalid_transition, "addenda follow a signed note; edit the draft")
            res = await conn.execute(a.insert().values(note_id=row.id, author_id=author_id, text=text, signed_at=now))
            await conn.execute(t.events.insert().values(
                consultation_id=consultation_id, kind="addendum_signed", actor_id=author_id, at=now,
                data={"note": row.id}))
        return Addendum(new_id(res), row.id, author_id, text, now)

    async def list_addenda(self, note_id: int) -> list[Addendum]:
        a = t.addenda
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(a).where(a.c.note_id == note_id).order_by(a.c.id))).all()
        return [Addendum(r.id, r.note_id, r.author_id, r.text, r.signed_at) for r in rows]
