"""Error codes a client may see, and the one exception that carries them."""

from __future__ import annotations

import enum
from typing import Any


class ErrorCode(enum.StrEnum):
    # envelope and transport
    invalid_json = "invalid_json"
    invalid_message = "invalid_message"
    message_too_large = "message_too_large"
    unknown_command = "unknown_command"
    id_reused = "id_reused"
    rate_limited = "rate_limited"
    auth_required = "auth_required"
    auth_failed = "auth_failed"
    auth_timeout = "auth_timeout"
    bad_origin = "bad_origin"
    # access
    forbidden = "forbidden"
    not_found = "not_found"
    csrf_failed = "csrf_failed"
    login_rate_limited = "login_rate_limited"
    second_factor_required = "second_factor_required"
    second_factor_enrolment_required = "second_factor_enrolment_required"
    # domain
    invalid_input = "invalid_input"
    invalid_transition = "invalid_transition"
    conflict = "conflict"
    already_claimed = "already_claimed"
    not_eligible = "not_eligible"
    offer_gone = "offer_gone"
    session_ended = "session_ended"
    not_in_session = "not_in_session"
    consent_required = "consent_required"
    no_agreement = "no_agreement"
    note_signed = "note_signed"
    slot_taken = "slot_taken"
    bed_taken = "bed_taken"
    time_taken = "time_taken"
    colleague_in_call = "colleague_in_call"
    no_call = "no_call"
    too_large = "too_large"
    unsupported_type = "unsupported_type"
    busy = "busy"
    # infrastructure
    unavailable = "unavailable"
    internal_error = "internal_error"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.invalid_json: 400,
    ErrorCode.invalid_message: 400,
    ErrorCode.invalid_input: 400,
    ErrorCode.message_too_large: 413,
    ErrorCode.too_large: 413,
    ErrorCode.unsupported_type: 415,
    ErrorCode.unknown_command: 400,
    ErrorCode.id_reused: 400,
    ErrorCode.rate_limited: 429,
    ErrorCode.login_rate_limited: 429,
    ErrorCode.second_factor_required: 401,
    ErrorCode.second_factor_enrolment_required: 403,
    ErrorCode.busy: 503,
    ErrorCode.auth_required: 401,
    ErrorCode.auth_failed: 401,
    ErrorCode.auth_timeout: 401,
    ErrorCode.bad_origin: 403,
    ErrorCode.forbidden: 403,
    ErrorCode.csrf_failed: 403,
    ErrorCode.not_found: 404,
    ErrorCode.invalid_transition: 409,
    ErrorCode.conflict: 409,
    ErrorCode.already_claimed: 409,
    ErrorCode.not_eligible: 403,
    ErrorCode.offer_gone: 409,
    ErrorCode.session_ended: 409,
    ErrorCode.not_in_session: 403,
    ErrorCode.consent_required: 409,
    ErrorCode.no_agreement: 409,
    ErrorCode.note_signed: 409,
    ErrorCode.slot_taken: 409,
    ErrorCode.bed_taken: 409,
    ErrorCode.time_taken: 409,
    ErrorCode.colleague_in_call: 409,
    ErrorCode.no_call: 409,
    ErrorCode.unavailable: 503,
    ErrorCode.internal_error: 500,
}


class TelehealthError(Exception):
    """An error whose code and message are meant for the client that caused it.

    `message` is English; it may name `{params}` that are filled in after the message is translated, so
    that one catalog entry serves every value (`"consultation {id} does not exist"`, id=5).
    """

    def __init__(self, code: ErrorCode, message: str, /, **params: Any) -> None:
        self.code = code
        self.template = message
        self.params = params
        self.message = fill(message, params)
        super().__init__(f"{code}: {self.message}")

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 400)


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, params: dict[str, Any]) -> str:
    """The template with its named values; a brace that names nothing is left as it is."""
    if not params:
        return template
    try:
        return template.format_map(_Keep(params))
    except (ValueError, IndexError, AttributeError):
        return template
