"""Pre-call connection checks: what each check measured and its verdict."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from telehealth.records import schema as t
from telehealth.records.store.base import StoreBase


class PrecheckStore(StoreBase):
    """Connection check results."""

    async def insert_precheck(self, check_id: str, org_id: int, user_id: int, now: dt.datetime) -> None:
        async with self._tx() as conn:
            await conn.execute(t.precheck_results.insert().values(id=check_id, org_id=org_id, user_id=user_id,
                                                                  started_at=now))

    async def set_precheck_uplink(self, check_id: str, uplink: dict[str, Any]) -> None:
        p = t.precheck_results
        async with self._tx() as conn:
            await conn.execute(p.update().where(p.c.id == check_id).values(uplink=uplink))

    async def finish_precheck(self, check_id: str, *, downlink: dict[str, Any], verdict: str, cause: str,
                              now: dt.datetime) -> None:
        p = t.precheck_results
        async with self._tx() as conn:
            await conn.execute(p.update().where(p.c.id == check_id).values(
                downlink=downlink, verdict=verdict, cause=cause, finished_at=now))

    async def get_precheck(self, check_id: str) -> dict[str, Any] | None:
        p = t.precheck_results
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(p).where(p.c.id == check_id))).first()
        return dict(row._mapping) if row else None

    async def list_prechecks(self, *, org_ids: Iterable[int] | None, limit: int = 200) -> list[dict[str, Any]]:
        """Finished checks, newest first."""
        p = t.precheck_results
        query = sa.select(p).where(p.c.finished_at.is_not(None)).order_by(p.c.finished_at.desc()).limit(limit)
        if org_ids is not None:
            query = query.where(p.c.org_id.in_(list(org_ids)))
        async with self._tx() as conn:
            return [dict(r._mapping) for r in (await conn.execute(query)).all()]
