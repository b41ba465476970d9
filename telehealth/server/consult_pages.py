"""Consultation pages: the clinic's request form, waiting and call view; the specialist's dashboard and call view."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from telehealth.domain import SPECIALTIES, Role, Title, Urgency
from telehealth.errors import ErrorCode, TelehealthError, fill
from telehealth.records.consent import decode_signature, store_form
from telehealth.records.result_types import RESULT_TYPES
from telehealth.schema import InputError, parse
from telehealth.server import keys
from telehealth.server.api import path_id
from telehealth.server.auth import actor_of, page
from telehealth.server.forms import parse_consultation_form, read_form, text, worded
from telehealth.server.pages import render, translator
from telehealth.services.consultations import ConsentInput
from telehealth.services.results import RecordResult
from telehealth.views import appointment_view, bed_view, result_view, slot_view


async def _specialist_choices(request: web.Request) -> list[dict[str, Any]]:
    """Specialists a clinic may name: those of hospitals it has an agreement with (its alliance included)."""
    orgs, specialists = await request.app[keys.SERVICES].organisations.request_choices(actor_of(request))
    return [{"id": s.id, "name": s.display_name, "title": s.title.value if s.title else "",
             "specialties": list(s.specialties), "org": orgs[s.organisation_id].name if s.organisation_id else "",
             "org_zh": orgs[s.organisation_id].name_zh if s.organisation_id else ""} for s in specialists]


def _form_context(choices: list[dict[str, Any]], values: dict[str, str], errors: dict[str, str],
                  refusal: str = "") -> dict[str, Any]:
    return {"values": values, "errors": errors, "refusal": refusal, "specialties": SPECIALTIES,
            "urgencies": [u.value for u in Urgency], "titles": [t.value for t in Title], "specialists": choices}


# Refusals of a well-formed request that the clinic can act on: said on the form, not as an error page.
FORM_REFUSALS = frozenset({ErrorCode.no_agreement, ErrorCode.not_eligible})


CONSENT_MISSING = "Let the patient sign on the screen, or add a photo of the signed consent form."
CONSENT_UNREADABLE = "The signature or the photo of the form could not be read: sign again or choose another file."


async def _chunks(upload: web.FileField) -> AsyncIterator[bytes]:
    # The form's file waits in a temporary file (up to uploads.max_bytes): read it off the event loop.
    while chunk := await asyncio.to_thread(upload.file.read, 64 * 1024):
        yield chunk


@page(Role.clinic_doctor)
async def handle_new_consultation_form(request: web.Request) -> web.StreamResponse:
    choices = await _specialist_choices(request)
    defaults = {"urgency": "routine", "consent_by": "patient"}
    return render(request, "clinic/new.html", _form_context(choices, defaults, {}))


@page(Role.clinic_doctor)
async def handle_create_consultation_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    result = parse_consultation_form(form, translator(request))
    signature = form.get("consent_signature")
    upload = form.get("consent_form")
    has_form = isinstance(upload, web.FileField) and bool(upload.filename)
    if not (isinstance(signature, str) and signature) and not has_form:
        result.errors["consent_signature"] = CONSENT_MISSING
    document = None
    drawn = signature if isinstance(signature, str) and signature else ""
    if not result.errors and result.body is not None:
        try:
            if drawn:
                decode_signature(drawn)  # unreadable: said beside the pad, not as an error page
            elif isinstance(upload, web.FileField):
                document = await store_form(request.app[keys.SERVICES].files, _chunks(upload), upload.filename,
                                            request.app[keys.SETTINGS].uploads.max_bytes)
        except TelehealthError:
            result.errors["consent_signature"] = CONSENT_UNREADABLE
    if result.body is None or result.errors:
        choices = await _specialist_choices(request)
        return render(request, "clinic/new.html", _form_context(choices, result.values, result.errors), status=400)
    body = result.body
    if drawn and body.consent is not None:
        body = dataclasses.replace(body, consent=dataclasses.replace(body.consent, signature=drawn))
    try:
        consultation, _ = await request.app[keys.SERVICES].consultations.create(actor_of(request), body,
                                                                               consent_document=document)
    except TelehealthError as exc:
        if exc.code not in FORM_REFUSALS:
            raise
        message = fill(translator(request)(exc.template), exc.params)
        errors = {"requested_specialist_id": message} if exc.code is ErrorCode.not_eligible else {}
        choices = await _specialist_choices(request)
        return render(request, "clinic/new.html", _form_context(choices, result.values, errors, message),
                      status=exc.http_status)
    raise web.HTTPSeeOther(f"/clinic/consultations/{consultation.id}")


@page(Role.clinic_doctor)
async def handle_record_consent_form(request: web.Request) -> web.StreamResponse:
    """Consent given after the request, on the clinic's consultation page: a drawn signature or a photo."""
    consultations = request.app[keys.SERVICES].consultations
    actor, cid = actor_of(request), path_id(request)
    await consultations.authorize_consent(actor, cid)
    form = await request.post()
    signature = form.get("consent_signature")
    drawn = signature if isinstance(signature, str) else ""
    upload = form.get("consent_form")
    errors: dict[str, str] = {}
    body = None
    try:
        body = parse(ConsentInput, {"by": text(form, "consent_by"), "name": text(form, "consent_name"),
                                    "relation": text(form, "consent_relation") or None, "signature": drawn})
    except InputError as exc:
        errors[f"consent_{exc.field}" if exc.field else "consent_name"] = worded(exc, translator(request))
    document = None
    if body is not None:
        try:
            if drawn:
                decode_signature(drawn)
            elif isinstance(upload, web.FileField) and upload.filename:
                document = await store_form(request.app[keys.SERVICES].files, _chunks(upload), upload.filename,
                                            request.app[keys.SETTINGS].uploads.max_bytes)
            else:
                errors["consent_signature"] = CONSENT_MISSING
        except TelehealthError:
            errors["consent_signature"] = CONSENT_UNREADABLE
    if body is None or errors:
        context = await _clinic_context(request)
        return render(request, "clinic/consultation.html",
                      {**context, "consent_errors": errors, "values": {k: text(form, k) for k in CONSENT_FIELDS}},
                      status=400)
    await consultations.record_consent(actor, cid, body, consent_document=document)
    raise web.HTTPSeeOther(f"/clinic/consultations/{cid}")


CONSENT_FIELDS = ("consent_by", "consent_name", "consent_relation")


async def _call_context(request: web.Request) -> dict[str, Any]:
    view = await request.app[keys.SERVICES].consultations.page(actor_of(request), path_id(request))
    booking = view.booking
    return {
        "consultation": view.consultation, "patient": view.patient, "clinic": view.clinic,
        "specialist": view.specialist, "status": view.status, "note": view.note, "addenda": view.addenda,
        "booking": slot_view(booking, view.organisations, request.app[keys.SETTINGS].slots.tz) if booking else None,
        "bed": bed_view(view.bed, view.organisations) if view.bed else None,
        "appointment": appointment_view(view.appointment, request.app[keys.SETTINGS].slots.tz)
        if view.appointment else None,
    }


async def _with_results(request: web.Request, *, form: bool) -> dict[str, Any]:
    """A consultation page: the call, and the patient's test results (on the clinic's, with the form for one
    more)."""
    context = await _call_context(request)
    listed = await request.app[keys.SERVICES].results.for_consultation(actor_of(request), context["consultation"])
    return {**context, "results": {"results": [result_view(r) for r in listed.results]},
            "result_types": RESULT_TYPES, "result_form": form}


async def _clinic_context(request: web.Request) -> dict[str, Any]:
    return await _with_results(request, form=True)


@page(Role.clinic_doctor)
async def handle_clinic_consultation(request: web.Request) -> web.StreamResponse:
    return render(request, "clinic/consultation.html", await _clinic_context(request))


RESULT_FIELDS = ("type_code", "performed_on", "value", "text", "source_name")


@page(Role.clinic_doctor)
async def handle_record_result_form(request: web.Request) -> web.StreamResponse:
    """A test result recorded on the clinic's consultation page, into the patient's record."""
    results, actor, cid = request.app[keys.SERVICES].results, actor_of(request), path_id(request)
    await results.authorize_consultation(actor, cid)
    form = await request.post()
    values = {k: text(form, k) for k in RESULT_FIELDS}
    value: Any = None
    if values["value"]:
        try:
            value = float(values["value"].replace(",", "."))
        except ValueError:
            value = values["value"]  # the schema says a number is wanted
    data = {"type_code": values["type_code"], "performed_on": values["performed_on"], "value": value,
            "text": values["text"], "source_name": values["source_name"]}
    body, errors = read_form(RecordResult, data, translator(request))
    if body is not None and not errors:
        try:
            await results.record_for_consultation(actor, cid, body)
        except TelehealthError as exc:
            if exc.code is not ErrorCode.invalid_input:
                raise
            errors = {"performed_on": fill(translator(request)(exc.template), exc.params)}
    if body is None or errors:
        context = await _clinic_context(request)
        return render(request, "clinic/consultation.html",
                      {**context, "result_errors": errors, "result_values": values}, status=400)
    raise web.HTTPSeeOther(f"/clinic/consultations/{cid}#results")


@page(Role.specialist)
async def handle_specialist_consultation(request: web.Request) -> web.StreamResponse:
    return render(request, "specialist/consultation.html", await _with_results(request, form=False))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/clinic/consultations/new", handle_new_consultation_form)
    r.add_post("/clinic/consultations", handle_create_consultation_form)
    r.add_get("/clinic/consultations/{consultation_id}", handle_clinic_consultation)
    r.add_post("/clinic/consultations/{consultation_id}/consent", handle_record_consent_form)
    r.add_post("/clinic/consultations/{consultation_id}/results", handle_record_result_form)
    r.add_get("/specialist/consultations/{consultation_id}", handle_specialist_consultation)
