"""The audit log: an append-only, hash-chained record of who did what.

Each entry carries the hash of the one before it. Entries written since hash version 2 are keyed: their hash
is an HMAC-SHA256 with the audit key, which the database does not hold, so whoever edits a row cannot compute
the hashes again. Entries of version 1, written before, keep their plain SHA-256 and are checked as such; none
may follow a keyed one. After each commit the chain's head goes to the anchor (`records/anchor.py`), outside
the table, which is what finds a removed tail.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from telehealth.records import schema as t
from telehealth.records.anchor import AuditAnchor
from telehealth.records.store.base import StoreBase

GENESIS_HASH = "0" * 64
# Version 1: SHA-256 of the entry, unkeyed. Version 2: HMAC-SHA256 with the audit key, over the entry's number too.
LEGACY_HASH_VERSION = 1
KEYED_HASH_VERSION = 2


def audit_entry_hash(prev_hash: str, at: dt.datetime, actor_id: int | None, action: str, target: str,
                     remote: str, detail: dict[str, Any]) -> str:
    """The version 1 (unkeyed) hash of one audit entry, as entries written before the key had it."""
    return hashlib.sha256(_payload(prev_hash, at, actor_id, action, target, remote, detail)).hexdigest()


def keyed_entry_hash(key: bytes, seq: int, prev_hash: str, at: dt.datetime, actor_id: int | None, action: str,
                     target: str, remote: str, detail: dict[str, Any]) -> str:
    """The version 2 hash of the `seq`-th audit entry: an HMAC only the holder of the audit key can compute."""
    body = _payload(prev_hash, at, actor_id, action, target, remote, detail, KEYED_HASH_VERSION, seq)
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _payload(prev_hash: str, at: dt.datetime, actor_id: int | None, action: str, target: str, remote: str,
             detail: dict[str, Any], *versioned: int) -> bytes:
    return json.dumps(
        [*versioned, prev_hash, at.astimezone(dt.UTC).isoformat(timespec="microseconds"), actor_id, action, target,
         remote, detail],
        sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class AuditChainCheck:
    """The outcome of recomputing the chain."""

    # Entries whose link and hash are right, in order from the first.
    checked: int
    # The first entry that is wrong, and why; None when every entry is right.
    broken_id: int | None = None
    problem: str = ""
    # Of the checked entries, those hashed the old, unkeyed way.
    legacy: int = 0
    # The hash of the last checked entry (GENESIS_HASH for none).
    head_hash: str = GENESIS_HASH


class AuditStore(StoreBase):
    """Audit entries and the check of their chain."""

    def __init__(self, engine: AsyncEngine, *, audit_key: bytes = b"", anchor: AuditAnchor | None = None) -> None:
        super().__init__(engine)
        self._audit_key = audit_key
        self._anchor = anchor

    @property
    def audit_anchor(self) -> AuditAnchor | None:
        return self._anchor

    async def insert_audit(self, action: str, *, actor_id: int | None, target: str, remote: str,
                           now: dt.datetime, detail: dict[str, Any] | None = None) -> None:
        """Append one keyed, hash-chained audit entry; once committed, its number and hash go to the anchor.
        Entries are serialised so the chain never forks."""
        if not self._audit_key:
            raise RuntimeError("the store was built without an audit key; audit entries cannot be written")
        a = t.audit_log
        detail = detail or {}
        joined = self.in_transaction
        async with self._tx() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7411)"))
            else:
                # Take SQLite's write lock before reading the chain's end.
                await conn.execute(sa.text("UPDATE alembic_version SET version_num = version_num"))
            last = (await conn.execute(sa.select(a.c.hash, a.c.seq).order_by(a.c.id.desc()).limit(1))).first()
            prev = last.hash if last else GENESIS_HASH
            if last is None:
                seq = 1
            elif last.seq is not None:
                seq = last.seq + 1
            else:
                # The first keyed entry after the unkeyed ones: numbered after all of them, counted once.
                seq = int((await conn.execute(sa.select(sa.func.count()).select_from(a))).scalar_one()) + 1
            entry_hash = keyed_entry_hash(self._audit_key, seq, prev, now, actor_id, action, target, remote, detail)
            await conn.execute(a.insert().values(at=now, actor_id=actor_id, action=action, target=target,
                                                 remote=remote, detail=detail, prev_hash=prev, hash=entry_hash,
                                                 hash_version=KEYED_HASH_VERSION, seq=seq))
        anchor = self._anchor
        if anchor is not None:
            def write_anchor() -> None:
                anchor.append(seq, entry_hash, now)

            if joined:
                self._on_commit(write_anchor)
            else:
                write_anchor()

    async def check_audit_chain(self) -> AuditChainCheck:
        """Recompute every entry's hash (keyed ones with the audit key) and link, up to the first wrong one."""
        a = t.audit_log
        checked = legacy = 0
        prev = GENESIS_HASH
        async with self.engine.connect() as conn:
            result = await conn.stream(sa.select(a).order_by(a.c.id))
            async for row in result:
                position = checked + 1
                problem = ""
                if row.prev_hash != prev:
                    problem = "its link to the entry before is wrong (an entry was removed or edited)"
                elif row.hash_version == LEGACY_HASH_VERSION:
                    if checked > legacy:
                        problem = "it is hashed the old, unkeyed way after keyed entries (rewritten without the key)"
                    elif row.hash != audit_entry_hash(prev, row.at, row.actor_id, row.action, row.target,
                                                      row.remote, dict(row.detail)):
                        problem = "its hash does not match its content (the entry was edited)"
                elif row.hash_version != KEYED_HASH_VERSION:
                    problem = f"its hash version {row.hash_version} is unknown"
                elif row.seq != position:
                    problem = f"it is numbered {row.seq} but is entry {position} (entries were removed or added)"
                elif not self._audit_key:
                    problem = "it is keyed and no audit key was given"
                elif not hmac.compare_digest(row.hash, keyed_entry_hash(
                        self._audit_key, position, prev, row.at, row.actor_id, row.action, row.target, row.remote,
                        dict(row.detail))):
                    problem = ("its keyed hash does not match its content: the entry was edited, "
                               "or the audit key is not the one it was written with")
                if problem:
                    return AuditChainCheck(checked, row.id, problem, legacy, prev)
                if row.hash_version == LEGACY_HASH_VERSION:
                    legacy += 1
                prev = row.hash
                checked += 1
        return AuditChainCheck(checked, None, "", legacy, prev)

    async def list_audit_hashes(self, seqs: Sequence[int]) -> dict[int, str]:
        """The hashes of the keyed entries with these numbers (those the log holds)."""
        a = t.audit_log
        async with self._tx(single_statement=True) as conn:
            rows = await conn.execute(sa.select(a.c.seq, a.c.hash).where(a.c.seq.in_(list(seqs))))
            return {int(r.seq): r.hash for r in rows}

    async def verify_audit_chain(self) -> tuple[int, int | None]:
        """(entries checked, id of the first entry whose hash or link is wrong, or None)."""
        check = await self.check_audit_chain()
        return check.checked, check.broken_id

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
