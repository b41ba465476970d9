"""Second factors: an account's authenticator app (TOTP) and its recovery codes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa

from telehealth.records import schema as t
from telehealth.records.models import SecondFactor
from telehealth.records.store.base import StoreBase


class SecondFactorStore(StoreBase):
    """One authenticator per account, confirmed or still waiting for its first code, and recovery codes."""

    async def get_second_factor(self, user_id: int) -> SecondFactor | None:
        f, r = t.second_factors, t.recovery_codes
        left = (sa.select(sa.func.count()).select_from(r)
                .where(r.c.user_id == f.c.user_id, r.c.used_at.is_(None)).scalar_subquery())
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(f, left.label("left")).where(f.c.user_id == user_id))).first()
        if row is None:
            return None
        return SecondFactor(row.user_id, row.secret, row.created_at, row.enrolled_at, row.last_step, int(row.left))

    async def insert_second_factor(self, user_id: int, secret: str, *, now: dt.datetime) -> None:
        """A new enrolment waiting for its first code, in place of one that never got it."""
        f = t.second_factors
        async with self._tx() as conn:
            await conn.execute(f.delete().where(f.c.user_id == user_id, f.c.enrolled_at.is_(None)))
            await conn.execute(f.insert().values(user_id=user_id, secret=secret, created_at=now))

    async def update_second_factor_enrolled(self, user_id: int, step: int, *, now: dt.datetime) -> bool:
        """Confirm a waiting enrolment with the step of its first code; False if it was confirmed already."""
        f = t.second_factors
        async with self._tx() as conn:
            res = await conn.execute(f.update().where(f.c.user_id == user_id, f.c.enrolled_at.is_(None))
                                     .values(enrolled_at=now, last_step=step))
        return bool(res.rowcount)

    async def update_second_factor_step(self, user_id: int, step: int) -> bool:
        """Take a code's step: False when it, or a later one, was taken already (a replay, or a race)."""
        f = t.second_factors
        async with self._tx() as conn:
            res = await conn.execute(
                f.update().where(f.c.user_id == user_id, f.c.enrolled_at.is_not(None),
                                 sa.or_(f.c.last_step.is_(None), f.c.last_step < step))
                .values(last_step=step))
        return bool(res.rowcount)

    async def delete_second_factor(self, user_id: int) -> bool:
        """Remove the account's authenticator and its recovery codes; False if it had none."""
        f, r = t.second_factors, t.recovery_codes
        async with self._tx() as conn:
            await conn.execute(r.delete().where(r.c.user_id == user_id))
            res = await conn.execute(f.delete().where(f.c.user_id == user_id))
        return bool(res.rowcount)

    async def insert_recovery_codes(self, user_id: int, code_hashes: Iterable[str], *, now: dt.datetime) -> None:
        """A new set of recovery codes in place of the old ones, used or not."""
        r = t.recovery_codes
        async with self._tx() as conn:
            await conn.execute(r.delete().where(r.c.user_id == user_id))
            await conn.execute(r.insert(), [{"user_id": user_id, "code_hash": h, "created_at": now}
                                            for h in code_hashes])

    async def list_recovery_code_hashes(self, user_id: int) -> list[tuple[int, str]]:
        """(id, hash) of the account's unused recovery codes."""
        r = t.recovery_codes
        async with self._tx() as conn:
            rows = await conn.execute(sa.select(r.c.id, r.c.code_hash)
                                      .where(r.c.user_id == user_id, r.c.used_at.is_(None)).order_by(r.c.id))
        return [(row.id, row.code_hash) for row in rows]

    async def update_recovery_code_used(self, code_id: int, *, now: dt.datetime) -> bool:
        """Spend a recovery code; False if it was spent already (two tabs at once)."""
        r = t.recovery_codes
        async with self._tx() as conn:
            res = await conn.execute(r.update().where(r.c.id == code_id, r.c.used_at.is_(None)).values(used_at=now))
        return bool(res.rowcount)
