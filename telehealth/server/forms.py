"""HTML form parsing with messages next to each field (the JSON and WebSocket edges use typed bodies)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from telehealth.domain import SPECIALTIES, Title, Urgency
from telehealth.records.models import NewConsultation

SEXES = ("female", "male", "other")
CONSENT_BY = ("patient", "guardian", "relative")


@dataclass
class FormResult:
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    request: NewConsultation | None = None


def _text(form: Mapping[str, Any], name: str, limit: int) -> str:
    value = form.get(name, "")
    return value.strip()[: limit + 1] if isinstance(value, str) else ""


def parse_consultation_form(form: Mapping[str, Any]) -> FormResult:
    """Check a new-consultation form; every problem is reported against its field, in English (translated on
    the page)."""
    names = ("patient_name", "patient_sex", "patient_birth_year", "patient_local_id", "specialty", "urgency",
             "chief_complaint", "history", "reason", "purpose", "requested_specialist_id", "min_title",
             "consent_by", "consent_name", "consent_relation")
    values = {n: _text(form, n, 4000) for n in names}
    values["complex_case"] = "on" if form.get("complex_case") else ""
    values["title_fallback"] = "on" if form.get("title_fallback") else ""
    errors: dict[str, str] = {}
    if not values["patient_name"]:
        errors["patient_name"] = "Enter the patient's name."
    elif len(values["patient_name"]) > 200:
        errors["patient_name"] = "At most 200 characters."
    if values["patient_sex"] not in SEXES:
        errors["patient_sex"] = "Choose the patient's sex."
    year = 0
    try:
        year = int(values["patient_birth_year"])
        if not 1900 <= year <= time.gmtime().tm_year:
            raise ValueError
    except ValueError:
        errors["patient_birth_year"] = "Enter a birth year such as 1958."
    if len(values["patient_local_id"]) > 100:
        errors["patient_local_id"] = "At most 100 characters."
    if values["specialty"] not in SPECIALTIES:
        errors["specialty"] = "Choose a specialty."
    if values["urgency"] not in {u.value for u in Urgency}:
        errors["urgency"] = "Choose how urgent it is."
    if not values["chief_complaint"]:
        errors["chief_complaint"] = "Describe the chief complaint."
    elif len(values["chief_complaint"]) > 1000:
        errors["chief_complaint"] = "At most 1000 characters."
    for name in ("history", "reason", "purpose"):
        if len(values[name]) > 4000:
            errors[name] = "At most 4000 characters."
    named: int | None = None
    if values["requested_specialist_id"]:
        try:
            named = int(values["requested_specialist_id"])
        except ValueError:
            errors["requested_specialist_id"] = "Choose a specialist from the list."
    min_title = None
    if values["min_title"]:
        try:
            min_title = Title(values["min_title"])
        except ValueError:
            errors["min_title"] = "Choose a title from the list."
    if values["consent_by"] not in CONSENT_BY:
        errors["consent_by"] = "Record who gave written consent."
    if not values["consent_name"]:
        errors["consent_name"] = "Enter the name of the person who consented."
    if values["consent_by"] in ("guardian", "relative") and not values["consent_relation"]:
        errors["consent_relation"] = "Enter their relation to the patient."
    result = FormResult(values, errors)
    if not errors:
        result.request = NewConsultation(
            patient_name=values["patient_name"], patient_sex=values["patient_sex"], patient_birth_year=year,
            patient_local_id=values["patient_local_id"], specialty=values["specialty"],
            urgency=Urgency(values["urgency"]), chief_complaint=values["chief_complaint"],
            history=values["history"], reason=values["reason"], purpose=values["purpose"],
            complex_case=bool(values["complex_case"]), requested_specialist_id=named, min_title=min_title,
            title_fallback=bool(values["title_fallback"]), consent_by=values["consent_by"],
            consent_name=values["consent_name"], consent_relation=values["consent_relation"] or None)
    return result
