"""Outpatient slots: administrators publish a hospital's slots (a day's series, or a CSV timetable) and set
its reserved share; the pool is shown per department and day."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from telehealth.domain import SPECIALTIES
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records import quota
from telehealth.records.models import Alliance, Organisation, SlotDay
from telehealth.schema import Range, Text, require

if TYPE_CHECKING:
    from telehealth.services.context import Actor, Services

MAX_CSV_ROWS = 20_000
CSV_COLUMNS = ("hospital", "department", "date", "time")
# A message and the values it names, translated where it is shown.
Problem = tuple[str, dict[str, Any]]
POOL_DAYS = 15
MAX_SERIES = 200


@dataclass(frozen=True)
class PublishInput:
    """A day's series of slots: from `first` to `last` (local times, inclusive), one every `every` minutes."""

    hospital_org_id: Annotated[int, Range(1)]
    department: Annotated[str, Text(1, 100)]
    date: Annotated[str, Text(1, 10)]
    first: Annotated[str, Text(1, 8)]
    last: Annotated[str, Text(1, 8)]
    every: Annotated[int, Range(5, 240)] = 30
    location: Annotated[str, Text(0, 200)] = ""

    def validate(self) -> None:
        require(self.department in SPECIALTIES, "choose a department", field="department")
        self.starts(dt.UTC)

    def starts(self, tz: Any) -> list[dt.datetime]:
        day: dt.date | None = None
        first: dt.time | None = None
        last: dt.time | None = None
        try:
            day = dt.date.fromisoformat(self.date)
            first, last = dt.time.fromisoformat(self.first), dt.time.fromisoformat(self.last)
        except ValueError:
            pass
        ok = day is not None and first is not None and last is not None and first <= last
        require(ok, "give a date, a first and a last start time, and minutes between slots (5 to 240)",
                field="date")
        assert day is not None and first is not None and last is not None
        starts: list[dt.datetime] = []
        at = dt.datetime.combine(day, first, tz)
        while at.time() <= last and at.date() == day and len(starts) < MAX_SERIES:
            starts.append(at.astimezone(dt.UTC))
            at += dt.timedelta(minutes=self.every)
        return starts


@dataclass(frozen=True)
class ShareInput:
    """A reserved share in percent: a hospital's (None returns it to its alliance's rule or the policy's
    floor), or an alliance's rule for the hospitals that do not lead it (None: no rule)."""

    pct: Annotated[int, Range(0, 100)] | None = None


class TimetableRefused(TelehealthError):
    """A timetable with problems: nothing of it was published; each problem names its line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(ErrorCode.invalid_input, "nothing was imported: the timetable has problems")
        self.problems = problems


@dataclass
class Timetable:
    rows: list[tuple[int, str, dt.datetime, int, str]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def hospital_rows(text: str, hospitals: dict[int, Organisation], columns: tuple[str, ...],
                  problems_out: list[Problem]) -> Iterator[tuple[int, dict[str, str], int | None, list[Problem]]]:
    """The rows of a CSV table published per hospital (slots, beds): each as (line, row, the hospital's id by
    its English or Chinese name or None, the row's problems so far). A header without `columns` or a table past
    `MAX_CSV_ROWS` puts its problem in `problems_out` and stops."""
    by_name = {name.strip().lower(): o.id for o in hospitals.values() for name in (o.name, o.name_zh) if name}
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    if missing:
        problems_out.append(("line {line}: the header needs the columns {columns} (missing: {missing})",
                             {"line": 1, "columns": ", ".join(columns), "missing": ", ".join(missing)}))
        return
    for line, row in enumerate(reader, start=2):
        if line - 1 > MAX_CSV_ROWS:
            problems_out.append(("more than {max} rows: split the timetable", {"max": MAX_CSV_ROWS}))
            return
        problems: list[Problem] = []
        hospital = by_name.get((row.get("hospital") or "").strip().lower())
        if hospital is None:
            problems.append(("line {line}: unknown hospital (or not in your alliance)", {"line": line}))
        yield line, row, hospital, problems


def parse_timetable(text: str, hospitals: dict[int, Organisation], tz: Any) -> Timetable:
    """Check every row of a CSV timetable (columns hospital, department, date, time, and optionally
    duration_min and location); hospital by name, English or Chinese. Problems name their line."""
    out = Timetable()
    for line, row, hospital, problems in hospital_rows(text, hospitals, CSV_COLUMNS, out.problems):
        department = (row.get("department") or "").strip()
        if department not in SPECIALTIES:
            problems.append(("line {line}: the department must be one of {allowed}",
                             {"line": line, "allowed": ", ".join(SPECIALTIES)}))
        starts_at = None
        try:
            day = dt.date.fromisoformat((row.get("date") or "").strip())
            at = dt.time.fromisoformat((row.get("time") or "").strip())
            starts_at = dt.datetime.combine(day, at, tz).astimezone(dt.UTC)
        except ValueError:
            problems.append(("line {line}: date and time must look like 2026-12-01 and 08:30", {"line": line}))
        minutes = 30
        if (row.get("duration_min") or "").strip():
            try:
                minutes = int(row["duration_min"])
                if not 5 <= minutes <= 240:
                    raise ValueError
            except ValueError:
                problems.append(("line {line}: duration_min must be a whole number of minutes from 5 to 240",
                                 {"line": line}))
        location = (row.get("location") or "").strip()
        if len(location) > 200:
            problems.append(("line {line}: the location is limited to 200 characters", {"line": line}))
        if problems:
            out.problems.extend(problems)
        elif hospital is not None and starts_at is not None:
            out.rows.append((hospital, department, starts_at, minutes, location))
    if not out.rows and not out.problems:
        out.problems.append(("the file has no slots", {}))
    return out


@dataclass(frozen=True)
class HospitalShare:
    """A hospital's reserved share as the policy counts it, for a page or the JSON API."""

    hospital: Organisation
    share: quota.Share

    def view(self) -> dict[str, Any]:
        h = self.hospital
        return {"org_id": h.id, "name": h.name, "name_zh": h.name_zh, "level": h.level.value,
                "alliance_id": h.alliance_id, "leads_alliance": quota.leads_alliance(h),
                "city_group_pilot": h.city_group_pilot, "setting_pct": h.reserved_share_pct,
                "floor_pct": _pct(self.share.floor), "floor_basis": self.share.floor_basis.value,
                "share_pct": _pct(self.share.share), "share_basis": self.share.share_basis.value}


def _pct(share: Any) -> float:
    return round(float(share) * 100, 1)


@dataclass(frozen=True)
class Pool:
    hospitals: list[Organisation]
    shares: dict[int, HospitalShare]
    alliances: list[Alliance]
    days: list[SlotDay]


class Slots:
    def __init__(self, services: Services) -> None:
        self._s = services

    async def hospitals(self, actor: Actor) -> dict[int, Organisation]:
        """The hospitals whose slots this administrator manages."""
        _, orgs = await self._s.accounts.managed_organisations(actor)
        return {i: o for i, o in orgs.items() if o.level.is_hospital}

    async def pool(self, actor: Actor) -> Pool:
        """The reserved pool of the managed hospitals, per department and day, from today for two weeks."""
        hospitals = await self.hospitals(actor)
        tz = self._s.settings.slots.tz
        start = dt.datetime.combine(self._s.now().astimezone(tz).date(), dt.time(), tz).astimezone(dt.UTC)
        days = await self._s.store.list_slot_days(hospital_org_ids=list(hospitals), start=start,
                                             end=start + dt.timedelta(days=POOL_DAYS), tz=tz)
        shares = await self._shares(hospitals)
        alliances = await self.managed_alliances(actor)
        return Pool(list(hospitals.values()), shares, list(alliances.values()), days)

    async def _shares(self, hospitals: dict[int, Organisation]) -> dict[int, HospitalShare]:
        alliances = {a.id: a for a in await self._s.store.list_alliances()}
        policy = self._s.settings.slots.share_policy
        return {h.id: HospitalShare(h, quota.reserved_share(h, alliances.get(h.alliance_id or 0), policy))
                for h in hospitals.values()}

    async def shares(self, actor: Actor) -> list[HospitalShare]:
        """Every managed hospital's reserved share: the floor, the share, and where each comes from."""
        return list((await self._shares(await self.hospitals(actor))).values())

    async def managed_alliances(self, actor: Actor) -> dict[int, Alliance]:
        """The alliances whose rule this administrator sets: their own, or every one for a system administrator."""
        alliance_id, _ = await self._s.accounts.managed_organisations(actor)
        return {a.id: a for a in await self._s.store.list_alliances()
                if alliance_id is None or a.id == alliance_id}

    async def publish(self, actor: Actor, body: PublishInput) -> tuple[int, int]:
        """(slots created, slots newly reserved)."""
        hospitals = await self.hospitals(actor)
        require(body.hospital_org_id in hospitals, "choose a hospital of your alliance", field="hospital_org_id")
        tz = self._s.settings.slots.tz
        async with self._s.unit(actor) as unit:
            created, reserved = await self._s.store.publish_slots(
                body.hospital_org_id, body.department, body.starts(tz), duration_min=body.every,
                location=body.location.strip(), tz=tz, policy=self._s.settings.slots.share_policy)
            unit.audit("slots.publish", f"organisation:{body.hospital_org_id}",
                       {"created": created, "reserved": reserved})
        return created, reserved

    async def import_timetable(self, actor: Actor, text: str) -> tuple[int, int]:
        """Publish a CSV timetable whole, or nothing of it (`TimetableRefused` lists every problem)."""
        hospitals = await self.hospitals(actor)
        tz = self._s.settings.slots.tz
        table = parse_timetable(text, hospitals, tz)
        if table.problems:
            raise TimetableRefused(table.problems)
        async with self._s.unit(actor) as unit:
            created, reserved = await self._s.store.publish_timetable(
                table.rows, tz=tz, policy=self._s.settings.slots.share_policy)
            unit.audit("slots.import", "slots", {"rows": len(table.rows), "created": created, "reserved": reserved})
        return created, reserved

    async def managed_hospital(self, actor: Actor, org_id: int) -> Organisation:
        hospital = (await self.hospitals(actor)).get(org_id)
        if hospital is None:
            raise TelehealthError(ErrorCode.forbidden, "this hospital is not in your alliance")
        return hospital

    async def set_share(self, actor: Actor, org_id: int, body: ShareInput) -> tuple[HospitalShare, int]:
        """Set a hospital's reserved share (never below its floor: a lower setting reserves the floor);
        returns the share as it now counts and how many slots were newly reserved."""
        await self.managed_hospital(actor, org_id)
        slots = self._s.settings.slots
        async with self._s.unit(actor) as unit:
            reserved = await self._s.store.set_reserved_share(org_id, body.pct, now=unit.now, tz=slots.tz,
                                                              policy=slots.share_policy)
            unit.audit("organisation.reserved_share", f"organisation:{org_id}", {"pct": body.pct})
        hospital = await self.managed_hospital(actor, org_id)
        return (await self._shares({org_id: hospital}))[org_id], reserved

    async def managed_alliance(self, actor: Actor, alliance_id: int) -> Alliance:
        alliance = (await self.managed_alliances(actor)).get(alliance_id)
        if alliance is None:
            raise TelehealthError(ErrorCode.forbidden, "this alliance is not yours to manage")
        return alliance

    async def set_member_share(self, actor: Actor, alliance_id: int, body: ShareInput) -> tuple[Alliance, int]:
        """Set an alliance's rule for the reserved share of its hospitals that do not lead it; returns the
        alliance and how many slots were newly reserved."""
        await self.managed_alliance(actor, alliance_id)
        slots = self._s.settings.slots
        async with self._s.unit(actor) as unit:
            reserved = await self._s.store.set_member_share(alliance_id, body.pct, now=unit.now, tz=slots.tz,
                                                            policy=slots.share_policy)
            unit.audit("alliance.member_share", f"alliance:{alliance_id}", {"pct": body.pct})
        alliance = (await self.managed_alliances(actor))[alliance_id]
        return alliance, reserved

    async def release_unused(self) -> int:
        """Hand reserved slots past their cut-off back to the general pool; idempotent, so every node may run
        it, and a booking racing it is decided by the database."""
        slots = self._s.settings.slots
        return await self._s.store.release_reserved_slots(now=self._s.now(), tz=slots.tz,
                                                          release_hours=slots.release_hours_before)
