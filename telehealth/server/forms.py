"""HTML forms read into the same input schemas as the JSON and WebSocket bodies, with each problem reported
beside its field."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from telehealth.errors import fill
from telehealth.schema import InputError, beside_field, parse_all
from telehealth.services.consultations import CreateConsultation

T = TypeVar("T")
Translate = Callable[[str], str] | None

# The request form's controls, and the schema field each one fills ("patient.name" <- patient_name).
CONSULTATION_FIELDS = ("patient_name", "patient_sex", "patient_birth_year", "patient_local_id", "specialty",
                       "urgency", "chief_complaint", "history", "reason", "purpose", "requested_specialist_id",
                       "min_title", "consent_by", "consent_name", "consent_relation")
_INTEGERS = frozenset({"patient_birth_year", "requested_specialist_id"})
_OPTIONAL = frozenset({"requested_specialist_id", "min_title", "consent_relation"})
# Every form field's text is cut at this length before it is checked: a limit above any field's own.
_READ_LIMIT = 8000


@dataclass
class FormResult:
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    body: CreateConsultation | None = None


def _value(name: str, text: str) -> Any:
    if name in _OPTIONAL and not text:
        return None
    if name in _INTEGERS:
        try:
            return int(text)
        except ValueError:
            return text  # the schema says what it expected
    return text


def parse_consultation_form(form: Mapping[str, Any], translate: Any = None) -> FormResult:
    """Check a new-consultation form against `CreateConsultation`; every problem is reported against its
    field, worded for the place beside it (and translated by `translate(text)` when given)."""
    values = {}
    for name in CONSULTATION_FIELDS:
        raw = form.get(name, "")
        values[name] = raw.strip()[:_READ_LIMIT] if isinstance(raw, str) else ""
    values["complex_case"] = "on" if form.get("complex_case") else ""
    values["title_fallback"] = "on" if form.get("title_fallback") else ""
    data: dict[str, Any] = {"patient": {}, "consent": {"signature": ""}}
    for name in CONSULTATION_FIELDS:
        group, _, rest = name.partition("_")
        if group in ("patient", "consent"):
            data[group][rest] = _value(name, values[name])
        else:
            data[name] = _value(name, values[name])
    data["complex_case"] = bool(values["complex_case"])
    data["title_fallback"] = bool(values["title_fallback"])
    body, problems = parse_all(CreateConsultation, data)
    result = FormResult(values, body=body)
    for path, error in problems.items():
        result.errors[path.replace(".", "_") or "form"] = worded(error, translate)
    return result


def worded(error: InputError, translate: Any) -> str:
    template, params = beside_field(error)
    return fill(translate(template) if translate else template, params)


def text(form: Mapping[str, Any], name: str) -> str:
    """A form field's text, cut at a length above any field's own limit (the schema reports the limit)."""
    value = form.get(name, "")
    return value.strip()[:_READ_LIMIT] if isinstance(value, str) else ""


def integer(form: Mapping[str, Any], name: str) -> int | str | None:
    """A number field: empty is None; text that is no number is left for the schema to refuse."""
    value = text(form, name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def read_form(cls: type[T], data: Mapping[str, Any], translate: Translate = None,
              controls: Mapping[str, str] | None = None) -> tuple[T | None, dict[str, str]]:
    """Check a form's values against an input schema; each problem worded for the place beside its control
    (`controls` maps a schema field to the control's name where they differ)."""
    body, problems = parse_all(cls, data)
    errors: dict[str, str] = {}
    for error in problems.values():
        errors.update(beside(error, translate, controls))
    return body, errors


def beside(error: InputError, translate: Translate = None,
           controls: Mapping[str, str] | None = None) -> dict[str, str]:
    """{control: message} for an input error, from the schema or from a service operation's rule."""
    path = error.field
    control = (controls or {}).get(path, path.replace(".", "_")) or "form"
    return {control: worded(error, translate)}
