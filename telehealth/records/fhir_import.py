"""Test results from a FHIR R4 Bundle, as a receiving system sends them: every entry is checked against the
FHIR models (fhir.resources) and against what a result in the record needs (a known LOINC test type, the
day of the test, the institution that did it, a value or a report's conclusion) before anything is kept.
One entry wrong refuses the whole Bundle."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.result_types import LOINC, ResultType, result_type

MAX_ENTRIES = 100
# What the Bundle may hold: the results, and the patient and institutions they refer to.
ACCEPTED = ("Observation", "DiagnosticReport", "Organization", "Patient")
FINAL = ("final", "amended", "corrected")
# The Bundle types that carry resources to keep (a search result or a history is not a record to import).
BUNDLE_TYPES = ("collection", "document", "transaction", "batch")


@dataclass(frozen=True)
class ImportedResult:
    type: ResultType
    performed_on: dt.date
    value: float | None
    unit: str
    text: str
    source_name: str


def _refuse(index: int, message: str, **params: Any) -> TelehealthError:
    return TelehealthError(ErrorCode.invalid_input, message, index=index, **params)


def _detail(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return ""
    where = ".".join(str(p) for p in errors[0]["loc"])
    return f"{where}: {errors[0]['msg']}"[:300]


def read_results_bundle(bundle: Any, *, tz: ZoneInfo, today: dt.date) -> list[ImportedResult]:
    """The results a Bundle carries; `TelehealthError(invalid_input)` naming the first entry at fault."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise TelehealthError(ErrorCode.invalid_input, "the body must be a FHIR Bundle")
    if bundle.get("type") not in BUNDLE_TYPES:
        raise TelehealthError(ErrorCode.invalid_input, "the Bundle's type must be one of: {allowed}",
                              allowed=", ".join(BUNDLE_TYPES))
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise TelehealthError(ErrorCode.invalid_input, "the Bundle holds no entries")
    if len(entries) > MAX_ENTRIES:
        raise TelehealthError(ErrorCode.invalid_input, "a Bundle may hold at most {max} entries", max=MAX_ENTRIES)
    resources: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if not isinstance(resource, dict) or kind not in ACCEPTED:
            raise _refuse(index, "Bundle entry {index}: only Observation, DiagnosticReport, Organization and "
                                 "Patient resources can be imported")
        try:
            get_fhir_model_class(kind).model_validate(resource)
        except ValidationError as exc:
            raise _refuse(index, "Bundle entry {index} is not a valid FHIR {type}: {detail}", type=kind,
                          detail=_detail(exc)) from None
        if kind == "Organization" and isinstance(entry.get("fullUrl"), str):
            names[entry["fullUrl"]] = str(resource.get("name") or "")
        resources.append(resource)
    try:
        # The envelope too (type, fullUrl, timestamp), now that each resource is known to be sound.
        get_fhir_model_class("Bundle").model_validate(bundle)
    except ValidationError as exc:
        raise TelehealthError(ErrorCode.invalid_input, "the Bundle is not a valid FHIR Bundle: {detail}",
                              detail=_detail(exc)) from None
    results = [_result(index, r, names, tz, today) for index, r in enumerate(resources)
               if r["resourceType"] in ("Observation", "DiagnosticReport")]
    if not results:
        raise TelehealthError(ErrorCode.invalid_input, "the Bundle holds no Observation or DiagnosticReport")
    return results


def _result(index: int, resource: dict[str, Any], names: dict[str, str], tz: ZoneInfo,
            today: dt.date) -> ImportedResult:
    report = resource["resourceType"] == "DiagnosticReport"
    if resource.get("status") not in FINAL:
        raise _refuse(index, "Bundle entry {index}: only a final result can be kept (status final, amended or "
                             "corrected)")
    codes = [c.get("code") for c in resource.get("code", {}).get("coding", []) if c.get("system") == LOINC]
    kind = next((k for k in map(result_type, [c for c in codes if isinstance(c, str)]) if k is not None), None)
    if kind is None:
        raise _refuse(index, "Bundle entry {index}: the code is none of the LOINC test types this record keeps")
    if kind.is_report != report:
        raise _refuse(index, "Bundle entry {index}: a laboratory value comes as an Observation, an imaging or ECG "
                             "report as a DiagnosticReport")
    performed_on = _day(resource.get("effectiveDateTime"), tz)
    if performed_on is None:
        raise _refuse(index, "Bundle entry {index}: effectiveDateTime must give the day of the test")
    if performed_on > today:
        raise _refuse(index, "Bundle entry {index}: the test is dated after today")
    source = ""
    for performer in resource.get("performer", []):
        source = str(performer.get("display") or names.get(str(performer.get("reference", "")), ""))
        if source:
            break
    if not source:
        raise _refuse(index, "Bundle entry {index}: the performer must name the institution that did the test")
    if report:
        text = str(resource.get("conclusion") or "").strip()
        if not text:
            raise _refuse(index, "Bundle entry {index}: a report needs its conclusion")
        return ImportedResult(kind, performed_on, None, "", text[:4000], source[:200])
    quantity = resource.get("valueQuantity") or {}
    if not isinstance(quantity.get("value"), int | float) or isinstance(quantity.get("value"), bool):
        raise _refuse(index, "Bundle entry {index}: a laboratory result needs valueQuantity with its value")
    note = " ".join(str(n.get("text", "")) for n in resource.get("note", []) if isinstance(n, dict)).strip()
    return ImportedResult(kind, performed_on, float(quantity["value"]), str(quantity.get("unit") or kind.unit)[:20],
                          note[:4000], source[:200])


def _day(value: Any, tz: ZoneInfo) -> dt.date | None:
    """The local day of a FHIR date or dateTime; None for a year or a month alone."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        if len(value) == 10:
            return dt.date.fromisoformat(value)
        stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp.astimezone(tz).date() if stamp.tzinfo else stamp.date()
