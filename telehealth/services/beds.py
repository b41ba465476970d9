"""Inpatient beds: administrators publish how many beds each hospital ward has available on a day (a form, or
a CSV table); a city medical group pilot's lead holds one quarter of them for referrals up from its
grassroots members; unbooked reserved beds go back at the cut-off. The pool is shown per ward and day."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from telehealth.domain import SPECIALTIES
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import quota
from telehealth.records.models import BedDay, Organisation
from telehealth.schema import Range, Text, require
from telehealth.services.slots import hospital_rows

if TYPE_CHECKING:
    from telehealth.services.context import Actor, Services

CSV_COLUMNS = ("hospital", "ward", "date", "beds")
MAX_BEDS = 500  # in one ward on one day
POOL_DAYS = 15
# A message and the values it names, translated where it is shown.
Problem = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class BedsInput:
    """A ward's beds available on a local day."""

    hospital_org_id: Annotated[int, Range(1)]
    ward: Annotated[str, Text(1, 100)]
    date: Annotated[str, Text(1, 10)]
    beds: Annotated[int, Range(1, MAX_BEDS)]

    def validate(self) -> None:
        require(self.ward in SPECIALTIES, "choose a ward", field="ward")
        self.day()

    def day(self) -> dt.date:
        try:
            return dt.date.fromisoformat(self.date)
        except ValueError:
            require(False, "{field} must be a date such as 2026-12-01", field="date")
            raise


class BedTableRefused(TelehealthError):
    """A bed table with problems: nothing of it was published; each problem names its line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(ErrorCode.invalid_input, "nothing was imported: the bed table has problems")
        self.problems = problems


@dataclass
class BedTable:
    rows: list[tuple[int, str, dt.date, int]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def parse_bed_table(text: str, hospitals: dict[int, Organisation]) -> BedTable:
    """Check every row of a CSV bed table (columns hospital, ward, date, beds); hospital by name, English or
    Chinese. Problems name their line."""
    out = BedTable()
    for line, row, hospital, problems in hospital_rows(text, hospitals, CSV_COLUMNS, out.problems):
        ward = (row.get("ward") or "").strip()
        if ward not in SPECIALTIES:
            problems.append(("line {line}: the ward must be one of {allowed}",
                             {"line": line, "allowed": ", ".join(SPECIALTIES)}))
        day = None
        try:
            day = dt.date.fromisoformat((row.get("date") or "").strip())
        except ValueError:
            problems.append(("line {line}: the date must look like 2026-12-01", {"line": line}))
        count = 0
        try:
            count = int((row.get("beds") or "").strip())
            if not 1 <= count <= MAX_BEDS:
                raise ValueError
        except ValueError:
            problems.append(("line {line}: beds must be a whole number from 1 to {max}",
                             {"line": line, "max": MAX_BEDS}))
        if problems:
            out.problems.extend(problems)
        elif hospital is not None and day is not None:
            out.rows.append((hospital, ward, day, count))
    if not out.rows and not out.problems:
        out.problems.append(("the file has no beds", {}))
    return out


@dataclass(frozen=True)
class BedPool:
    hospitals: list[Organisation]
    # Each hospital's floor: the share of beds it holds for referrals up, and why.
    floors: dict[int, tuple[float, str]]
    days: list[BedDay]


class Beds:
    def __init__(self, services: Services) -> None:
        self._s = services

    async def hospitals(self, actor: Actor) -> dict[int, Organisation]:
        """The hospitals whose beds this administrator manages (the same as their slots)."""
        return await self._s.slots.hospitals(actor)

    async def pool(self, actor: Actor) -> BedPool:
        """The managed hospitals' beds per ward and day, from today for two weeks."""
        hospitals = await self.hospitals(actor)
        today = self._s.now().astimezone(self._s.settings.slots.tz).date()
        days = await self._s.store.list_bed_days(hospital_org_ids=list(hospitals), start=today,
                                                 end=today + dt.timedelta(days=POOL_DAYS))
        floors = {}
        for h in hospitals.values():
            share, basis = quota.bed_floor(h)
            floors[h.id] = (round(float(share) * 100, 1), basis.value)
        return BedPool(list(hospitals.values()), floors, days)

    async def publish(self, actor: Actor, body: BedsInput) -> tuple[int, int]:
        """(beds created, beds newly reserved)."""
        hospitals = await self.hospitals(actor)
        require(body.hospital_org_id in hospitals, "choose a hospital of your alliance", field="hospital_org_id")
        async with self._s.unit(actor) as unit:
            created, reserved = await self._s.store.publish_beds(
                [(body.hospital_org_id, body.ward, body.day(), body.beds)])
            unit.audit("beds.publish", f"organisation:{body.hospital_org_id}",
                       {"ward": body.ward, "day": body.date, "beds": body.beds, "created": created,
                        "reserved": reserved})
        return created, reserved

    async def import_table(self, actor: Actor, text: str) -> tuple[int, int]:
        """Publish a CSV bed table whole, or nothing of it (`BedTableRefused` lists every problem)."""
        table = parse_bed_table(text, await self.hospitals(actor))
        if table.problems:
            raise BedTableRefused(table.problems)
        async with self._s.unit(actor) as unit:
            created, reserved = await self._s.store.publish_beds(table.rows)
            unit.audit("beds.import", "beds", {"rows": len(table.rows), "created": created, "reserved": reserved})
        return created, reserved

    async def release_unused(self) -> int:
        """Hand reserved beds past their cut-off back to the general pool; idempotent, so every node may run it,
        and a booking racing it is decided by the database."""
        slots = self._s.settings.slots
        return await self._s.store.release_reserved_beds(now=self._s.now(), tz=slots.tz,
                                                         release_hours=slots.release_hours_before)
