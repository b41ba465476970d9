"""The audit log: an append-only, hash-chained record of who did what."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from telehealth.records import schema as t
from telehealth.records.store.base import StoreBase

GENESIS_HASH = "0" * 64


def audit_entry_hash(prev_hash: str, at: dt.datetime, actor_id: int | None, action: str, target: str,
                     remote: str, detail: dict[str, Any]) -> str:
    """The chained hash of one audit entry; `telehealth audit verify` recomputes it."""
    payload = json.dumps(
        [prev_hash, at.astimezone(dt.UTC).isoformat(timespec="microseconds"), actor_id, action, target, remote,
         detail],
        sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


class AuditStore(StoreBase):
    """Audit entries and the check of their chain."""

    async def insert_audit(self, action: str, *, actor_id: int | None, target: str, remote: str,
                           now: dt.datetime, detail: dict[str, Any] | None = None) -> None:
        """Append one hash-chained audit entry. Entries are serialised so the chain never forks."""
        a = t.audit_log
        detail = detail or {}
        async with self._tx() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7411)"))
            else:
                # Take SQLite's write lock before reading the chain's end.
                await conn.execute(sa.text("UPDATE alembic_version SET version_num = version_num"))
            last = (await conn.execute(sa.select(a.c.hash).order_by(a.c.id.desc()).limit(1))).first()
            prev = last.hash if last else GENESIS_HASH
            entry_hash = audit_entry_hash(prev, now, actor_id, action, target, remote, detail)
            await conn.execute(a.insert().values(at=now, actor_id=actor_id, action=action, target=target,
                                                 remote=remote, detail=detail, prev_hash=prev, hash=entry_hash))

    async def verify_audit_chain(self) -> tuple[int, int | None]:
        """(entries checked, id of the first entry whose hash or link is wrong, or None)."""
        a = t.audit_log
        checked = 0
        prev = GENESIS_HASH
        async with self.engine.connect() as conn:
            result = await conn.stream(sa.select(a).order_by(a.c.id))
            async for row in result:
                expected = audit_entry_hash(prev, row.at, row.actor_id, row.action, row.target, row.remote,
                                            dict(row.detail))
                if row.prev_hash != prev or row.hash != expected:
                    return checked, row.id
                prev = row.hash
                checked += 1
        return checked, None

    async def list_audit(self, *, limit: int = 100, actor_id: int | None = None,
                         action: str | None = None) -> list[dict[str, Any]]:
        a = t.audit_log
        query = sa.select(a).order_by(a.c.id.desc()).limit(limit)
        if actor_id is not None:
            query = query.where(a.c.actor_id == actor_id)
        if action:
            query = query.where(a.c.action == action)
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [dict(r._mapping) for r in rows]

    async def search_audit(self, *, actor_ids: Iterable[int] | None = None, action: str | None = None,
                           target: str | None = None, start: dt.datetime | None = None,
                           end: dt.datetime | None = None, limit: int = 50,
                           offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Audit entries, newest first, filtered: by actors, by action (`note.` matches every note action),
        by target, by time. Returns (one page, the number of matching entries)."""
        a = t.audit_log
        conditions: list[Any] = []
        if actor_ids is not None:
            conditions.append(a.c.actor_id.in_(list(actor_ids)))
        if action:
            conditions.append(a.c.action.startswith(action, autoescape=True) if action.endswith(".")
                              else a.c.action == action)
        if target:
            conditions.append(a.c.target == target)
        if start is not None:
            conditions.append(a.c.at >= start)
        if end is not None:
            conditions.append(a.c.at < end)
        async with self._tx() as conn:
            total = int((await conn.execute(sa.select(sa.func.count()).select_from(a).where(*conditions))).scalar_one())
            rows = (await conn.execute(sa.select(a).where(*conditions).order_by(a.c.id.desc())
                                       .limit(limit).offset(offset))).all()
        return [dict(r._mapping) for r in rows], total

    async def list_audit_actions(self) -> list[str]:
        a = t.audit_log
        async with self._tx() as conn:
            return [r[0] for r in await conn.execute(sa.select(a.c.action).distinct().order_by(a.c.action))]
