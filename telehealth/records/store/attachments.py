"""Attachments of a consultation (photos, documents, the signed consent form); the files are kept apart."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from telehealth.records import schema as t
from telehealth.records.store.base import StoreBase, new_id


class AttachmentStore(StoreBase):
    """Attachment rows."""

    async def insert_attachment(self, consultation_id: int, sha256: str, content_type: str, size: int,
                                filename: str, uploaded_by: int, *, now: dt.datetime) -> dict[str, Any]:
        a = t.attachments
        async with self._tx() as conn:
            res = await conn.execute(a.insert().values(
                consultation_id=consultation_id, sha256=sha256, content_type=content_type, size=size,
                filename=filename, uploaded_by=uploaded_by, created_at=now))
            await conn.execute(t.events.insert().values(
                consultation_id=consultation_id, kind="attachment_added", actor_id=uploaded_by, at=now,
                data={"content_type": content_type, "size": size}))
        return {"id": new_id(res), "consultation_id": consultation_id, "sha256": sha256,
                "content_type": content_type, "size": size, "filename": filename, "created_at": now}

    async def list_attachments(self, consultation_id: int) -> list[dict[str, Any]]:
        a = t.attachments
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(a).where(a.c.consultation_id == consultation_id)
                                       .order_by(a.c.id))).all()
        return [dict(r._mapping) for r in rows]

    async def get_attachment(self, consultation_id: int, attachment_id: int) -> dict[str, Any] | None:
        a = t.attachments
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(a).where(a.c.id == attachment_id,
                                                         a.c.consultation_id == consultation_id))).first()
        return dict(row._mapping) if row else None
