"""Test results in the patient's record: recorded at the clinic or at an upper hospital, or imported from a
FHIR Bundle; they travel with a referral, and the receiving side sees each marked as recognised (互认) when its
alliance recognises the test type and the result is still within the validity the alliance set for it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from telehealth.domain import Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.fhir_import import read_results_bundle
from telehealth.records.models import (
    Alliance,
    Consultation,
    NewResult,
    Organisation,
    Patient,
    RecognisedItem,
    Result,
)
from telehealth.records.result_types import BY_CODE, RESULT_TYPES, ResultType, result_type
from telehealth.schema import Items, Range, Text, require

if TYPE_CHECKING:
    from telehealth.services.context import Actor, Services

# The longest validity an alliance may give a test type: ten years.
MAX_VALIDITY_DAYS = 3650


@dataclass(frozen=True)
class RecordResult:
    """One test result: a laboratory value (`value`, in the type's unit) or a report (`text`)."""

    type_code: Annotated[str, Text(1, 20)]
    performed_on: Annotated[str, Text(10, 10)]
    value: Annotated[float, Range(0, 1_000_000)] | None = None
    text: Annotated[str, Text(0, 4000)] = ""
    # The institution that did the test: one known here, or only a name; the recorder's own when neither.
    source_org_id: Annotated[int, Range(1)] | None = None
    source_name: Annotated[str, Text(0, 200)] = ""

    def validate(self) -> None:
        kind = result_type(self.type_code)
        require(kind is not None, "{field} must be one of: {allowed}", field="type_code",
                allowed=", ".join(BY_CODE))
        require(_date(self.performed_on) is not None, "{field} must be a date (YYYY-MM-DD)", field="performed_on")
        assert kind is not None
        if kind.is_report:
            require(bool(self.text.strip()), "{field} is required for an imaging or ECG report", field="text")
            require(self.value is None, "{field} is for laboratory values only", field="value")
        else:
            require(self.value is not None, "{field} is required for a laboratory result", field="value")

    @property
    def day(self) -> dt.date:
        day = _date(self.performed_on)
        assert day is not None
        return day


def _date(text: str) -> dt.date | None:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None
    return day if 1900 <= day.year <= 2999 else None


@dataclass(frozen=True)
class RecognisedItemInput:
    type_code: Annotated[str, Text(1, 20)]
    validity_days: Annotated[int, Range(1, MAX_VALIDITY_DAYS)]


@dataclass(frozen=True)
class RecognisedItemsInput:
    """The alliance's whole list of mutually recognised items (it replaces the one before)."""

    items: Annotated[list[RecognisedItemInput], Items(len(RESULT_TYPES))]

    def validate(self) -> None:
        codes = [i.type_code for i in self.items]
        require(all(c in BY_CODE for c in codes), "{field} must be one of: {allowed}", field="items",
                allowed=", ".join(BY_CODE))
        require(len(set(codes)) == len(codes), "{field} names a test type twice", field="items")


@dataclass(frozen=True)
class Recognition:
    """How one result stands for one alliance on one day."""

    recognised: bool
    # recognised | not_listed (the alliance does not recognise the type) | expired | outside (not done by a
    # member unit of the alliance)
    reason: str
    valid_until: dt.date | None


def recognition(result: Result, items: dict[str, int], members: set[int], today: dt.date) -> Recognition:
    """The rule: the alliance lists the test type, a member unit of the alliance did the test, and today is
    within the validity days after the day of the test (the last day included)."""
    days = items.get(result.type_code)
    if days is None:
        return Recognition(False, "not_listed", None)
    valid_until = result.performed_on + dt.timedelta(days=days)
    if result.source_org_id is None or result.source_org_id not in members:
        return Recognition(False, "outside", valid_until)
    if today > valid_until:
        return Recognition(False, "expired", valid_until)
    return Recognition(True, "recognised", valid_until)


@dataclass(frozen=True)
class JudgedResult:
    result: Result
    type: ResultType | None
    recognition: Recognition
    source: Organisation | None


@dataclass(frozen=True)
class PatientResults:
    patient_id: int
    # The alliance whose list judged them (the viewer's own; the patient's clinic's for a system administrator).
    alliance_id: int | None
    today: dt.date
    results: list[JudgedResult]


@dataclass(frozen=True)
class RecognisedList:
    alliance_id: int
    items: list[RecognisedItem]


class Results:
    def __init__(self, services: Services) -> None:
        self._s = services

    def _today(self, now: dt.datetime) -> dt.date:
        return now.astimezone(self._s.settings.slots.tz).date()

    async def authorize_record(self, actor: Actor, patient_id: int) -> Patient:
        return await self._s.access.patient_results(actor, patient_id, write=True)

    async def record(self, actor: Actor, patient_id: int, body: RecordResult,
                     consultation_id: int | None = None) -> JudgedResult:
        patient = await self.authorize_record(actor, patient_id)
        store = self._s.store
        now = self._s.now()
        if body.day > self._today(now):
            raise TelehealthError(ErrorCode.invalid_input, "the test is dated after today")
        source_id = body.source_org_id
        if source_id is None:
            # Named: an institution known here by that name, else one outside; not named: the recorder's own.
            source_id = (await self._known_names()).get(body.source_name.strip()) if body.source_name.strip() \
                else actor.user.organisation_id
        source = await store.get_organisation(source_id) if source_id is not None else None
        if source_id is not None and source is None:
            raise TelehealthError(ErrorCode.not_found, "no such organisation")
        kind = BY_CODE[body.type_code]
        new = NewResult(body.type_code, body.day, body.value, "" if kind.is_report else kind.unit, body.text.strip(),
                        source.id if source else None, source.name if source else body.source_name.strip(),
                        consultation_id)
        async with self._s.unit(actor, now) as unit:
            [created] = await store.insert_results(patient.id, [new], recorded_by=actor.id, now=unit.now)
            unit.audit("result.record", f"patient:{patient.id}", {"result": created.id, "type": created.type_code})
        [judged] = await self._judged_only(actor, patient, {created.id}, now)
        return judged

    async def _judged_only(self, actor: Actor, patient: Patient, ids: set[int],
                           now: dt.datetime) -> list[JudgedResult]:
        return [r for r in (await self.judged(actor, patient, now)).results if r.result.id in ids]

    async def authorize_consultation(self, actor: Actor, consultation_id: int) -> Consultation:
        """A consultation from whose page the actor may record a result: one they take part in."""
        return await self._s.access.participant_consultation(actor, consultation_id)

    async def record_for_consultation(self, actor: Actor, consultation_id: int, body: RecordResult) -> JudgedResult:
        """A result recorded from a consultation's page, into the record of its patient."""
        consultation = await self.authorize_consultation(actor, consultation_id)
        return await self.record(actor, consultation.patient_id, body, consultation.id)

    async def import_bundle(self, actor: Actor, patient_id: int, bundle: Any) -> list[JudgedResult]:
        """Every result of a FHIR Bundle into the patient's record, or none: the Bundle is checked whole first."""
        patient = await self.authorize_record(actor, patient_id)
        store = self._s.store
        now = self._s.now()
        imported = read_results_bundle(bundle, tz=self._s.settings.slots.tz, today=self._today(now))
        known = await self._known_names()
        new = [NewResult(r.type.code, r.performed_on, r.value, r.unit, r.text, known.get(r.source_name),
                         r.source_name, origin="imported") for r in imported]
        async with self._s.unit(actor, now) as unit:
            created = await store.insert_results(patient.id, new, recorded_by=actor.id, now=unit.now)
            unit.audit("result.import", f"patient:{patient.id}", {"results": len(created)})
        return await self._judged_only(actor, patient, {r.id for r in created}, now)

    async def _known_names(self) -> dict[str, int]:
        """Institutions known here, by their name and their Chinese name."""
        known: dict[str, int] = {}
        for org in await self._s.store.list_organisations():
            known[org.name] = org.id
            if org.name_zh:
                known.setdefault(org.name_zh, org.id)
        return known

    async def list_for_patient(self, actor: Actor, patient_id: int) -> PatientResults:
        patient = await self._s.access.patient_results(actor, patient_id, write=False)
        await self._s.audit(actor, "result.view", f"patient:{patient.id}")
        return await self.judged(actor, patient)

    async def for_consultation(self, actor: Actor, consultation: Consultation) -> PatientResults:
        """The results of a consultation's patient, for a page the actor was let in to already."""
        patient = await self._s.store.get_patient(consultation.patient_id)
        if patient is None:
            raise TelehealthError(ErrorCode.internal_error, "the record refers to a missing patient")
        return await self.judged(actor, patient)

    async def judged(self, actor: Actor, patient: Patient, now: dt.datetime | None = None) -> PatientResults:
        """The patient's results as the actor's alliance recognises them on the local day of `now`."""
        store = self._s.store
        today = self._today(now or self._s.now())
        orgs = {o.id: o for o in await store.list_organisations()}
        mine = orgs.get(actor.user.organisation_id) if actor.user.organisation_id is not None else None
        clinic = orgs.get(patient.organisation_id)
        alliance_id = mine.alliance_id if mine is not None else clinic.alliance_id if clinic else None
        items: dict[str, int] = {}
        members: set[int] = set()
        if alliance_id is not None:
            items = {i.type_code: i.validity_days for i in await store.list_recognised_items(alliance_id)}
            members = {o.id for o in orgs.values() if o.alliance_id == alliance_id}
        judged = [JudgedResult(r, result_type(r.type_code), recognition(r, items, members, today),
                               orgs.get(r.source_org_id) if r.source_org_id is not None else None)
                  for r in await store.list_results(patient.id)]
        return PatientResults(patient.id, alliance_id, today, judged)

    async def list_results(self, consultation: Consultation) -> tuple[list[Result], dict[int, Organisation]]:
        """The patient's results as they go into the record's export, with the institutions that did them."""
        store = self._s.store
        results = await store.list_results(consultation.patient_id)
        ids = {r.source_org_id for r in results if r.source_org_id is not None}
        return results, {o.id: o for o in await store.list_organisations() if o.id in ids}

    # -- the alliance's recognised items --------------------------------------------------------------

    async def _alliance(self, alliance_id: int) -> int:
        if alliance_id not in await self._s.store.get_alliance_ids():
            raise TelehealthError(ErrorCode.not_found, "no such alliance")
        return alliance_id

    async def recognised_items(self, actor: Actor, alliance_id: int) -> RecognisedList:
        """Any signed-in user may read an alliance's list: it is what its member units agreed, not patient data."""
        if actor.user.role not in (Role.clinic_doctor, Role.specialist, Role.admin):
            raise TelehealthError(ErrorCode.forbidden, "your role may not do this")
        await self._alliance(alliance_id)
        return RecognisedList(alliance_id, await self._s.store.list_recognised_items(alliance_id))

    async def authorize_items(self, actor: Actor, alliance_id: int) -> int:
        """The alliance's administrator (or a system administrator) sets its list."""
        mine = await self._s.access.admin_alliance(actor)
        if mine is not None and mine != alliance_id:
            raise TelehealthError(ErrorCode.forbidden, "only this alliance's administrator sets its recognised items")
        return await self._alliance(alliance_id)

    async def set_recognised_items(self, actor: Actor, alliance_id: int, body: RecognisedItemsInput) -> RecognisedList:
        await self.authorize_items(actor, alliance_id)
        async with self._s.unit(actor) as unit:
            await self._s.store.replace_recognised_items(
                alliance_id, [(i.type_code, i.validity_days) for i in body.items], updated_by=actor.id, now=unit.now)
            unit.audit("result.recognised_items", f"alliance:{alliance_id}",
                       {"items": {i.type_code: i.validity_days for i in body.items}})
        return RecognisedList(alliance_id, await self._s.store.list_recognised_items(alliance_id))

    async def managed_list(self, actor: Actor, alliance_id: int | None) -> tuple[list[Alliance], RecognisedList]:
        """The alliances an administrator sets lists for (their own; every one for a system administrator),
        with the list of `alliance_id` among them (else of the first)."""
        mine = await self._s.access.admin_alliance(actor)
        alliances = [a for a in await self._s.store.list_alliances() if mine is None or a.id == mine]
        if not alliances:
            raise TelehealthError(ErrorCode.not_found, "no such alliance")
        chosen = alliance_id if alliance_id in {a.id for a in alliances} else alliances[0].id
        return alliances, RecognisedList(chosen, await self._s.store.list_recognised_items(chosen))
