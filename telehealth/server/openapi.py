"""The OpenAPI 3.0 description of the JSON API, served at `GET /api/openapi.json`.

The WebSocket protocol is described in docs/protocol.md; server-rendered pages are not part of the API.
Every error answers `{"error": {"code", "message", "message_en"}}` with the codes of docs/protocol.md: the
message in the user's language, and in English.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from telehealth import __version__
from telehealth.domain import SPECIALTIES, Title, Urgency
from telehealth.schema import json_schema
from telehealth.server.auth import public
from telehealth.services.appointments import (
    AnswerInput,
    BookInput,
    CancelInput,
    DeskInput,
    HoursInput,
    RescheduleInput,
    Status,
)
from telehealth.services.organisations import AgreementInput, ReasonInput
from telehealth.services.results import RecognisedItemsInput, RecordResult

ERRORS = ("400", "401", "403", "404", "409", "413", "415", "429", "503")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Any], required: tuple[str, ...] = (), *, closed: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


STR = {"type": "string"}
INT = {"type": "integer"}
NULLABLE_STR = {"type": "string", "nullable": True}
ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}

SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({"code": STR, "message": STR, "message_en": STR},
                                  ("code", "message", "message_en"))}, ("error",)),
    "User": _obj({"id": INT, "username": STR, "name": STR, "role": STR}, ("id", "role")),
    "Consultation": _obj({"id": INT, "state": STR, "specialty": STR, "urgency": STR}, ("id", "state")),
    "Note": {"type": "object", "nullable": True, "properties": {
        "assessment": STR, "plan": STR, "signed_at": NULLABLE_STR, "diagnoses": {"type": "array"}}},
    "Slot": _obj({"id": INT, "hospital_org_id": INT, "department": STR, "starts_at": STR}, ("id", "starts_at")),
    "Appointment": _obj({"id": INT, "consultation_id": INT, "status": {"type": "string", "enum": [s.value for s in Status]},
                         "department": STR, "hospital_org_id": INT,
                         "specialist_id": {"type": "integer", "nullable": True}, "starts_at": NULLABLE_STR,
                         "local_time": NULLABLE_STR, "duration_min": INT, "window_start": NULLABLE_STR,
                         "window_end": NULLABLE_STR, "reason": STR, "reschedules": INT},
                        ("id", "consultation_id", "status", "department", "starts_at")),
    "ConsultationHours": _obj({"id": INT, "specialist_id": INT, "hospital_org_id": INT, "department": STR,
                               "starts_at": STR, "ends_at": STR, "local_start": STR, "local_end": STR},
                              ("id", "specialist_id", "starts_at", "ends_at")),
    "Bed": _obj({"id": INT, "hospital_org_id": INT, "ward": STR, "day": STR, "number": INT}, ("id", "day")),
    "Referral": _obj({"id": INT, "direction": STR, "status": STR, "bed_id": {"type": "integer", "nullable": True}},
                     ("id",)),
    "HospitalShare": _obj({"org_id": INT, "name": STR, "leads_alliance": {"type": "boolean"},
                           "city_group_pilot": {"type": "boolean"}, "setting_pct": {"type": "integer", "nullable": True},
                           "floor_pct": {"type": "number"},
                           "floor_basis": {"type": "string", "enum": ["city_group_pilot_lead", "alliance_lead",
                                                                      "every_hospital", "none"]},
                           "share_pct": {"type": "number"},
                           "share_basis": {"type": "string", "enum": ["floor", "hospital", "alliance"]}},
                          ("org_id", "floor_pct", "share_pct")),
    "AllianceRule": _obj({"id": INT, "name": STR, "kind": STR, "member_share_pct": {"type": "integer", "nullable": True}},
                         ("id", "member_share_pct")),
    "Attachment": _obj({"id": INT, "filename": STR, "content_type": STR, "size": INT, "kind": STR, "url": STR},
                       ("id", "content_type")),
    "Result": _obj({"id": INT, "patient_id": INT, "type_code": STR, "type": STR, "type_zh": STR,
                    "kind": {"type": "string", "enum": ["lab", "imaging", "ecg"]},
                    "value": {"type": "number", "nullable": True}, "unit": STR, "text": STR,
                    "performed_on": {"type": "string", "format": "date"},
                    "source_org_id": {"type": "integer", "nullable": True}, "source": STR,
                    "origin": {"type": "string", "enum": ["recorded", "imported"]},
                    "recognised": {"type": "boolean"},
                    "recognition": {"type": "string", "enum": ["recognised", "not_listed", "expired", "outside"]},
                    "valid_until": {"type": "string", "format": "date", "nullable": True}},
                   ("id", "type_code", "performed_on", "recognised", "recognition")),
    "Agreement": _obj({
        "id": INT, "clinic_org_id": INT, "hospital_org_id": INT, "clinic": STR, "hospital": STR,
        "state": {"type": "string", "enum": ["proposed", "clinic_approved", "hospital_approved", "in_effect",
                                             "declined", "ended"]},
        "valid_now": {"type": "boolean"}, "expired": {"type": "boolean"}, "valid_from": STR,
        "valid_to": NULLABLE_STR,
        **{step: {"type": "object", "nullable": True, "properties": {"by": {"type": "integer", "nullable": True},
                                                                      "by_name": STR, "at": STR}}
           for step in ("proposed", "clinic_approved", "hospital_approved")},
        "closed": {"type": "object", "nullable": True, "properties": {
            "by": {"type": "integer", "nullable": True}, "by_name": STR, "at": STR, "reason": STR}},
        "your_sides": {"type": "array", "items": {"type": "string", "enum": ["clinic", "hospital"]}},
        "awaiting": {"type": "array", "items": {"type": "string", "enum": ["clinic", "hospital"]}},
        "may_approve": {"type": "boolean"}, "may_decline": {"type": "boolean"}, "may_end": {"type": "boolean"}},
        ("id", "clinic_org_id", "hospital_org_id", "state", "may_approve", "may_decline", "may_end")),
    "RecognisedItems": _obj({"alliance_id": INT, "items": {"type": "array", "items": _obj(
        {"type_code": STR, "validity_days": INT}, ("type_code", "validity_days"))},
        "types": {"type": "array", "items": _obj({"code": STR, "kind": STR, "name": STR, "name_zh": STR,
                                                  "recognised": {"type": "boolean"}}, ("code", "recognised"))}},
        ("alliance_id", "items", "types")),
    "CreateConsultation": _obj({
        "patient": _obj({"name": {"type": "string", "minLength": 1, "maxLength": 200},
                         "sex": {"type": "string", "enum": ["female", "male", "other"]},
                         "birth_year": {"type": "integer", "minimum": 1900, "maximum": 2100},
                         "local_id": {"type": "string", "maxLength": 100}},
                        ("name", "sex", "birth_year"), closed=True),
        "specialty": {"type": "string", "enum": list(SPECIALTIES)},
        "urgency": {"type": "string", "enum": [u.value for u in Urgency]},
        "chief_complaint": {"type": "string", "minLength": 1, "maxLength": 1000},
        "history": STR, "reason": STR, "purpose": STR, "complex_case": {"type": "boolean"},
        "requested_specialist_id": {"type": "integer", "nullable": True},
        "min_title": {"type": "string", "enum": [t.value for t in Title], "nullable": True},
        "title_fallback": {"type": "boolean"},
        "consent": _obj({"by": {"type": "string", "enum": ["patient", "guardian", "relative"]},
                         "name": {"type": "string", "minLength": 1, "maxLength": 200},
                         "relation": {"type": "string", "nullable": True},
                         "signature": {"type": "string", "description": "data:image/png;base64,... (at most 48 KiB)"}},
                        ("by", "name", "signature"), closed=True),
    }, ("patient", "specialty", "urgency", "chief_complaint"), closed=True),
    "NoteDraft": _obj({
        "subjective": STR, "objective": STR, "assessment": STR, "plan": STR,
        "diagnoses": {"type": "array", "maxItems": 20, "items": _obj({"code": STR}, ("code",), closed=True)},
        "disposition": {"type": "object", "nullable": True, "properties": {
            "kind": {"type": "string", "enum": ["manage_locally", "refer_up", "refer_down", "follow_up"]},
            "details": STR, "follow_up_date": STR, "to_org_id": INT,
            "admission": {"type": "boolean"}, "bed_id": {"type": "integer", "minimum": 0},
            "tasks": {"type": "array", "items": _obj({"text": STR, "due_date": STR}, ("text",), closed=True)}},
            "required": ["kind"], "additionalProperties": False},
    }, closed=True),
}


def _responses(ok: str, schema: dict[str, Any], *, content_type: str = "application/json") -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": "success", "content": {content_type: {"schema": schema}}}}
    for code in ERRORS:
        responses[code] = {"description": "see the error codes in docs/protocol.md",
                           "content": {"application/json": {"schema": _ref("Error")}}}
    return responses


def _op(summary: str, ok: str, schema: dict[str, Any], *, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, auth: bool = True, content_type: str = "application/json",
        body_type: str = "application/json") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": _responses(ok, schema, content_type=content_type)}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {body_type: {"schema": body}}}
    if params:
        op["parameters"] = params
    if not auth:
        op["security"] = []
    return op


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID}


C = [_path_param("consultation_id")]
SHARE_BODY = _obj({"pct": {"type": "integer", "minimum": 0, "maximum": 100, "nullable": True}}, closed=True)
P = [_path_param("patient_id")]
A = [_path_param("alliance_id")]
R = [_path_param("referral_id"), _path_param("task_id")]
G = [_path_param("agreement_id")]
B = [_path_param("appointment_id")]
ONE_APPOINTMENT = _obj({"appointment": _ref("Appointment")}, ("appointment",))


def document() -> dict[str, Any]:
    # The input schemas of the service operations add their own components.
    components: dict[str, Any] = dict(SCHEMAS)
    paths: dict[str, Any] = {
        "/api/tokens": {"post": _op(
            "Exchange a username and password (and, for an account with a second factor, its current code or a "
            "recovery code as `code`) for an API token", "201",
            _obj({"token": STR, "user": _ref("User")}, ("token", "user")), auth=False,
            body=_obj({"username": STR, "password": STR, "label": STR, "code": STR}, ("username", "password"),
                      closed=True))},
        "/api/me": {"get": _op("The signed-in user", "200", _obj({"user": _ref("User")}, ("user",)))},
        "/api/consultations": {
            "get": _op("Consultations of your clinic, or taken by you", "200",
                       _obj({"consultations": {"type": "array", "items": _ref("Consultation")}}, ("consultations",))),
            "post": _op("Ask for a consultation (clinic doctors)", "201",
                        _obj({"consultation": _ref("Consultation")}, ("consultation",)),
                        body=_ref("CreateConsultation"))},
        "/api/consultations/{consultation_id}": {"get": _op(
            "One consultation", "200", _obj({"consultation": _ref("Consultation")}, ("consultation",)), params=C)},
        "/api/consultations/{consultation_id}/events": {"get": _op(
            "Its event log", "200", _obj({"events": {"type": "array"}}, ("events",)), params=C)},
        "/api/consultations/{consultation_id}/note": {
            "get": _op("The opinion report (draft or signed)", "200", _obj({"note": _ref("Note")}, ("note",)),
                       params=C),
            "put": _op("Save the draft (the assigned specialist)", "200", _obj({"note": _ref("Note")}, ("note",)),
                       params=C, body=_ref("NoteDraft"))},
        "/api/consultations/{consultation_id}/note/sign": {"post": _op(
            "Sign the report", "200", _obj({"note": _ref("Note")}, ("note",)), params=C,
            body=_obj({"store_and_forward": {"type": "boolean"}}, closed=True))},
        "/api/consultations/{consultation_id}/note/addenda": {"post": _op(
            "Add a signed addendum", "201", _obj({"note": _ref("Note")}, ("note",)), params=C,
            body=_obj({"text": {"type": "string", "minLength": 1, "maxLength": 4000}}, ("text",), closed=True))},
        "/api/consultations/{consultation_id}/decision": {"post": _op(
            "The clinic's decision on the opinion; closes the consultation", "200",
            _obj({"consultation": _obj({"id": INT, "state": STR}, ("id", "state"))}, ("consultation",)), params=C,
            body=_obj({"decision": {"type": "string", "enum": ["accept_advice", "adapt_advice", "refer_as_suggested"]},
                       "note": STR}, ("decision",), closed=True))},
        "/api/icd10": {"get": _op(
            "Search ICD-10 codes", "200", _obj({"results": {"type": "array"}}, ("results",)),
            params=[{"name": "q", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 100}}])},
        "/api/consultations/{consultation_id}/slots": {"get": _op(
            "Reserved slots open to this referral", "200", _obj({"slots": {"type": "array", "items": _ref("Slot")}},
                                                                ("slots",)),
            params=[*C, {"name": "department", "in": "query", "required": False,
                         "schema": {"type": "string", "enum": list(SPECIALTIES)}}])},
        "/api/consultations/{consultation_id}/beds": {"get": _op(
            "Reserved inpatient beds open to this referral up for admission (signing books the note's bed)", "200",
            _obj({"ward": STR, "beds": {"type": "array", "items": _ref("Bed")},
                  "booking": {**_ref("Bed"), "nullable": True}}, ("ward", "beds")),
            params=[*C, {"name": "ward", "in": "query", "required": False,
                         "schema": {"type": "string", "enum": list(SPECIALTIES)}}])},
        "/api/consultations/{consultation_id}/booking": {
            "get": _op("The booked reserved slot", "200", _obj({"booking": {**_ref("Slot"), "nullable": True}},
                                                               ("booking",)), params=C),
            "put": _op("Book a reserved slot (the assigned specialist)", "200", _obj({"booking": _ref("Slot")},
                                                                                 ("booking",)),
                       params=C, body=_obj({"slot_id": ID}, ("slot_id",), closed=True)),
            "delete": _op("Give the slot back", "200", _obj({"booking": {"nullable": True}, "cancelled":
                                                            {"type": "boolean"}}, ("cancelled",)), params=C)},
        "/api/referrals": {"get": _op(
            "Referrals to your clinic, or made by you", "200",
            _obj({"referrals": {"type": "array", "items": _ref("Referral")}}, ("referrals",)),
            params=[{"name": "all", "in": "query", "required": False, "schema": {"type": "string", "enum": ["1"]}}])},
        "/api/referrals/{referral_id}/tasks/{task_id}/done": {"post": _op(
            "Mark a follow-up task done", "200", _obj({"referral": _ref("Referral")}, ("referral",)), params=R)},
        "/api/referrals/{referral_id}/outcome": {"post": _op(
            "Record the outcome; closes the referral", "200", _obj({"referral": _ref("Referral")}, ("referral",)),
            params=[_path_param("referral_id")],
            body=_obj({"outcome": {"type": "string", "minLength": 1, "maxLength": 2000}}, ("outcome",), closed=True))},
        "/api/consultations/{consultation_id}/fhir": {"get": _op(
            "The record as a FHIR R4 Bundle", "200", _obj({"resourceType": {"type": "string", "enum": ["Bundle"]}},
                                                          ("resourceType",)),
            params=C, content_type="application/fhir+json")},
        "/api/consultations/{consultation_id}/attachments": {
            "get": _op("Attachments", "200", _obj({"attachments": {"type": "array", "items": _ref("Attachment")}},
                                                  ("attachments",)), params=C),
            "post": _op("Upload a photo or PDF (clinic doctors)", "201",
                        _obj({"attachment": _ref("Attachment")}, ("attachment",)), params=C,
                        body=_obj({"file": {"type": "string", "format": "binary"}}, ("file",)),
                        body_type="multipart/form-data")},
        "/api/consultations/{consultation_id}/attachments/{attachment_id}": {"get": _op(
            "The file", "200", {"type": "string", "format": "binary"},
            params=[*C, _path_param("attachment_id")], content_type="application/octet-stream")},
        "/api/admin/statistics": {"get": _op(
            "Policy statistics (administrators; see docs/statistics.md)", "200",
            _obj({"period": {"type": "object"}, "volume": {"type": "object"}, "waiting": {"type": "object"}},
                 ("period", "volume", "waiting")),
            params=[{"name": n, "in": "query", "required": False, "schema": {"type": "string", "format": "date"}}
                    for n in ("from", "to")])},
        "/api/admin/reserved-shares": {"get": _op(
            "Each managed hospital's reserved share of outpatient slots (floor, share and their basis) and each "
            "managed alliance's rule for its other hospitals (administrators; see docs/records.md)", "200",
            _obj({"hospitals": {"type": "array", "items": _ref("HospitalShare")},
                  "alliances": {"type": "array", "items": _ref("AllianceRule")},
                  "floor_for_every_hospital": {"type": "boolean"}}, ("hospitals", "alliances")))},
        "/api/admin/organisations/{org_id}/reserved-share": {"put": _op(
            "Set a hospital's reserved share in percent (null: its alliance's rule or the floor); audited", "200",
            _obj({"hospital": _ref("HospitalShare"), "newly_reserved": INT}, ("hospital", "newly_reserved")),
            params=[_path_param("org_id")], body=SHARE_BODY)},
        "/api/admin/alliances/{alliance_id}/member-share": {"put": _op(
            "Set the alliance's rule: the share its hospitals that do not lead it reserve (null: no rule); audited",
            "200", _obj({"alliance": _ref("AllianceRule"), "newly_reserved": INT}, ("alliance", "newly_reserved")),
            params=[_path_param("alliance_id")], body=SHARE_BODY)},
        "/api/precheck/config": {"get": _op(
            "ICE servers and duration of the pre-call connection check (clinic doctors)", "200",
            _obj({"ice_servers": {"type": "array"}, "seconds": {"type": "number"}}, ("ice_servers", "seconds")))},
        "/api/precheck": {"post": _op(
            "Start a connection check: the client's SDP offer, with its candidates", "201",
            _obj({"id": STR, "sdp": STR, "seconds": {"type": "number"}, "warmup_s": {"type": "number"}}, ("id", "sdp")),
            body=_obj({"sdp": {"type": "string", "maxLength": 32768}}, ("sdp",), closed=True))},
        "/api/precheck/{check_id}/report": {"post": _op(
            "Report the client's side; the verdict", "200",
            _obj({"verdict": {"type": "string", "enum": ["video_ok", "audio_only", "cannot_connect"]},
                  "cause": STR}, ("verdict", "cause")),
            params=[{"name": "check_id", "in": "path", "required": True,
                     "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}],
            body=_obj({"connected": {"type": "boolean"}, "camera": {"type": "boolean"},
                       "candidate_types": {"type": "array", "items": {
                           "type": "string", "enum": ["host", "srflx", "prflx", "relay"]}},
                       "down": {"type": "object", "nullable": True, "properties": {
                           "kbps": {"type": "number", "minimum": 0}, "loss_pct": {"type": "number", "minimum": 0,
                                                                                  "maximum": 100},
                           "jitter_ms": {"type": "number", "nullable": True},
                           "rtt_ms": {"type": "number", "nullable": True},
                           "video_frames": {"type": "integer", "minimum": 0},
                           "audio_frames": {"type": "integer", "minimum": 0}}, "additionalProperties": False}},
                      ("connected",), closed=True))},
        "/api/patients/{patient_id}/results": {
            "get": _op("The patient's test results, as your alliance recognises them today", "200",
                       _obj({"patient_id": INT, "alliance_id": {"type": "integer", "nullable": True},
                             "today": {"type": "string", "format": "date"},
                             "results": {"type": "array", "items": _ref("Result")}}, ("results",)), params=P),
            "post": _op("Record a test result (clinicians the record is shared with)", "201",
                        _obj({"result": _ref("Result")}, ("result",)), params=P,
                        body=json_schema(RecordResult, components))},
        "/api/patients/{patient_id}/results/fhir": {"post": _op(
            "Import a FHIR R4 Bundle of Observation and DiagnosticReport resources, all or none "
            "(sent as application/json or application/fhir+json)", "201",
            _obj({"imported": INT, "results": {"type": "array", "items": _ref("Result")}}, ("imported", "results")),
            params=P, body=_obj({"resourceType": {"type": "string", "enum": ["Bundle"]}, "type": STR,
                                 "entry": {"type": "array", "items": {"type": "object"}}}, ("resourceType", "entry")))},
        "/api/alliances/{alliance_id}/recognised-items": {
            "get": _op("The alliance's mutually recognised items (互认), with validity days per test type", "200",
                       _ref("RecognisedItems"), params=A),
            "put": _op("Set the whole list (the alliance's administrator)", "200", _ref("RecognisedItems"),
                       params=A, body=json_schema(RecognisedItemsInput, components))},
        "/api/admin/agreements": {
            "get": _op("Remote-care agreements either side of which is yours, with each step and what you may do "
                       "(administrators; see docs/records.md)", "200",
                       _obj({"agreements": {"type": "array", "items": _ref("Agreement")}}, ("agreements",))),
            "post": _op("Propose an agreement with an institution outside the alliance: your side has approved it, "
                        "it waits for the other side's administrator; audited", "201",
                        _obj({"agreement": _ref("Agreement")}, ("agreement",)),
                        body=json_schema(AgreementInput, components))},
        "/api/admin/agreements/{agreement_id}/approve": {"post": _op(
            "Your side approves a waiting invitation; the second side's approval puts it in effect; audited", "200",
            _obj({"agreement": _ref("Agreement")}, ("agreement",)), params=G)},
        "/api/admin/agreements/{agreement_id}/decline": {"post": _op(
            "Your side declines a waiting invitation, saying why (told to the other side); audited", "200",
            _obj({"agreement": _ref("Agreement")}, ("agreement",)), params=G,
            body=json_schema(ReasonInput, components))},
        "/api/admin/agreements/{agreement_id}/end": {"post": _op(
            "Your side ends an agreement in effect, saying why: no new offer goes there from this moment on any "
            "node (calls in progress go on); audited", "200",
            _obj({"agreement": _ref("Agreement")}, ("agreement",)), params=G,
            body=json_schema(ReasonInput, components))},
        "/api/appointments": {
            "get": _op("Booked consultations: the clinic's (with the hours it may book), or a specialist's with those "
                       "of the desks they keep and their department's requested windows (docs/scheduling.md)", "200",
                       _obj({"appointments": {"type": "array", "items": _ref("Appointment")},
                             "hours": {"type": "array", "items": _ref("ConsultationHours")},
                             "desks": {"type": "array"}}, ("appointments", "hours"))),
            "post": _op("Book a consultation (clinic doctors): a time with a named specialist or a department, or a "
                        "window for the desk to answer; the request carries the patient's consent", "201",
                        ONE_APPOINTMENT, body=json_schema(BookInput, components))},
        "/api/appointments/{appointment_id}/answer": {"post": _op(
            "Answer a requested window (the department's desk or a specialist of it): a time inside books it, "
            "another time with a reason is a proposal", "200", ONE_APPOINTMENT, params=B,
            body=json_schema(AnswerInput, components))},
        "/api/appointments/{appointment_id}/accept": {"post": _op(
            "The clinic accepts the proposed time", "200", ONE_APPOINTMENT, params=B)},
        "/api/appointments/{appointment_id}/reschedule": {"post": _op(
            "A new time, with the reason (either side; the clinic also books a missed one again)", "200",
            ONE_APPOINTMENT, params=B, body=json_schema(RescheduleInput, components))},
        "/api/appointments/{appointment_id}/cancel": {"post": _op(
            "Cancel, with the reason (either side); the consultation is cancelled too", "200", ONE_APPOINTMENT,
            params=B, body=json_schema(CancelInput, components))},
        "/api/appointments/{appointment_id}/on-demand": {"post": _op(
            "Turn a missed booked consultation into an on-demand request (the clinic)", "200", ONE_APPOINTMENT,
            params=B)},
        "/api/consultation-hours": {
            "get": _op("Consultation hours from now on: at the clinic's partner hospitals (`department` narrows "
                       "them), or the specialist's own", "200",
                       _obj({"hours": {"type": "array", "items": _ref("ConsultationHours")}}, ("hours",)),
                       params=[{"name": "department", "in": "query", "required": False,
                                "schema": {"type": "string", "enum": list(SPECIALTIES)}}]),
            "post": _op("Publish consultation hours (a specialist; the department's desk for one of its "
                        "specialists)", "201", _obj({"hours": _ref("ConsultationHours")}, ("hours",)),
                        body=json_schema(HoursInput, components))},
        "/api/consultation-hours/{hours_id}": {"delete": _op(
            "Withdraw consultation hours (booked times stay booked)", "200",
            _obj({"withdrawn": {"type": "boolean"}}, ("withdrawn",)), params=[_path_param("hours_id")])},
        "/api/admin/desks": {"put": _op(
            "Name an account of a managed hospital to a department's remote-consultation desk; audited", "200",
            _obj({"granted": {"type": "boolean"}}, ("granted",)), body=json_schema(DeskInput, components))},
        "/api/admin/desks/revoke": {"post": _op(
            "Take an account off a department's desk; audited", "200",
            _obj({"revoked": {"type": "boolean"}}, ("revoked",)), body=json_schema(DeskInput, components))},
        "/healthz": {"get": _op("The process answers", "200", _obj({"status": STR}, ("status",)), auth=False)},
        "/readyz": {"get": _op("Database and broker reachable (503 otherwise)", "200",
                               _obj({"status": STR, "checks": {"type": "object"}}, ("status",)), auth=False)},
    }
    # Downloads answer with the stored type; the attachment itself may be any accepted photo or a PDF.
    download = paths["/api/consultations/{consultation_id}/attachments/{attachment_id}"]["get"]["responses"]["200"]
    download["content"] = {t: {"schema": {"type": "string", "format": "binary"}}
                           for t in ("image/jpeg", "image/png", "image/webp", "application/pdf")}
    return {
        "openapi": "3.0.3",
        "info": {"title": "telehealth", "version": __version__,
                 "description": "Remote consultations between grassroots clinics and hospital specialists. "
                                "Get a token at /api/tokens and send it as `Authorization: Bearer <token>`."},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }


@public
async def handle_openapi(request: web.Request) -> web.StreamResponse:
    return web.json_response(document())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", handle_openapi)
