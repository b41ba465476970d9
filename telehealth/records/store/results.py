"""Test results in patients' records, who the patient's record is shared with (the consultations and the
institutions its referrals went to), and each alliance's mutually recognised items."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from telehealth.records import schema as t
from telehealth.records.models import Consultation, NewResult, Patient, RecognisedItem, Result
from telehealth.records.store.base import StoreBase, new_id
from telehealth.records.store.rows import as_consultation


def _result(row: Any) -> Result:
    return Result(row.id, row.patient_id, row.type_code, row.value, row.unit, row.text, row.performed_on,
                  row.source_org_id, row.source_name, row.consultation_id, row.origin, row.recorded_by,
                  row.recorded_at)


class ResultStore(StoreBase):
    """Results, the patient's sharing, recognised items."""

    async def get_patient(self, patient_id: int) -> Patient | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(t.patients).where(t.patients.c.id == patient_id))).first()
        return Patient(row.id, row.organisation_id, row.name, row.sex, row.birth_year, row.local_id) if row else None

    async def list_patient_consultations(self, patient_id: int, limit: int = 500) -> list[Consultation]:
        c = t.consultations
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(c).where(c.c.patient_id == patient_id)
                                       .order_by(c.c.id.desc()).limit(limit))).all()
        return [as_consultation(r) for r in rows]

    async def list_patient_referral_orgs(self, patient_id: int) -> set[int]:
        """The institutions the patient was referred to, up or down, by any of their consultations."""
        r, c = t.referrals, t.consultations
        query = sa.select(r.c.to_org_id).join(c, c.c.id == r.c.consultation_id).where(c.c.patient_id == patient_id)
        async with self._tx() as conn:
            return {row[0] for row in (await conn.execute(query)).all()}

    async def insert_results(self, patient_id: int, results: Sequence[NewResult], *, recorded_by: int,
                             now: dt.datetime) -> list[Result]:
        """All of them or none (one transaction)."""
        created: list[Result] = []
        async with self._tx() as conn:
            for new in results:
                res = await conn.execute(t.results.insert().values(
                    patient_id=patient_id, type_code=new.type_code, value=new.value, unit=new.unit, text=new.text,
                    performed_on=new.performed_on, source_org_id=new.source_org_id, source_name=new.source_name,
                    consultation_id=new.consultation_id, origin=new.origin, recorded_by=recorded_by,
                    recorded_at=now))
                row = (await conn.execute(sa.select(t.results).where(t.results.c.id == new_id(res)))).one()
                created.append(_result(row))
        return created

    async def list_results(self, patient_id: int, limit: int = 500) -> list[Result]:
        """The patient's results, the latest test first."""
        r = t.results
        query = (sa.select(r).where(r.c.patient_id == patient_id)
                 .order_by(r.c.performed_on.desc(), r.c.id.desc()).limit(limit))
        async with self._tx() as conn:
            return [_result(row) for row in (await conn.execute(query)).all()]

    async def list_recognised_items(self, alliance_id: int) -> list[RecognisedItem]:
        k = t.recognised_items
        async with self._tx() as conn:
            rows = (await conn.execute(sa.select(k).where(k.c.alliance_id == alliance_id)
                                       .order_by(k.c.type_code))).all()
        return [RecognisedItem(row.alliance_id, row.type_code, row.validity_days, row.updated_at) for row in rows]

    async def replace_recognised_items(self, alliance_id: int, items: Iterable[tuple[str, int]], *,
                                       updated_by: int, now: dt.datetime) -> None:
        """The alliance's whole list, as given (an empty list recognises nothing)."""
        k = t.recognised_items
        rows = [{"alliance_id": alliance_id, "type_code": code, "validity_days": days, "updated_by": updated_by,
                 "updated_at": now} for code, days in items]
        async with self._tx() as conn:
            await conn.execute(k.delete().where(k.c.alliance_id == alliance_id))
            if rows:
                await conn.execute(k.insert(), rows)

    async def get_alliance_ids(self) -> set[int]:
        async with self._tx() as conn:
            return {row[0] for row in (await conn.execute(sa.select(t.alliances.c.id))).all()}
