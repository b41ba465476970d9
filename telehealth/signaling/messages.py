"""The WebSocket envelope: parsing client commands and building results and events, validated at the edge."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["MAX_INT", "Envelope", "error", "event", "parse_body", "parse_envelope", "peek_id", "require", "result"]

from telehealth.errors import ErrorCode, TelehealthError
from telehealth.schema import MAX_INT, parse, require
from telehealth.strict_input import json_loads

T = TypeVar("T")
MAX_ID = 2**53 - 1


@dataclass(frozen=True)
class Envelope:
    id: int
    type: str
    body: dict[str, Any]


def parse_envelope(raw: str | bytes, max_bytes: int) -> Envelope:
    """Check size, JSON, and the envelope fields; the body is checked by the command's own schema."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode())
    if size > max_bytes:
        raise TelehealthError(ErrorCode.message_too_large, "messages are limited to {max} bytes", max=max_bytes)
    data = json_loads(raw)
    if not isinstance(data, dict):
        raise TelehealthError(ErrorCode.invalid_message, "a message must be a JSON object")
    msg_id = data.get("id")
    if not isinstance(msg_id, int) or isinstance(msg_id, bool) or not 0 < msg_id <= MAX_ID:
        raise TelehealthError(ErrorCode.invalid_message, "`id` must be a positive integer")
    msg_type = data.get("type")
    if not isinstance(msg_type, str) or not msg_type or len(msg_type) > 64:
        raise TelehealthError(ErrorCode.invalid_message, "`type` must be a non-empty string")
    body = {k: v for k, v in data.items() if k not in ("id", "type")}
    return Envelope(msg_id, msg_type, body)


def peek_id(raw: str | bytes) -> int | None:
    """The id of a message that failed parsing, if one can be read, so the error can answer it."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict):
        msg_id = data.get("id")
        if isinstance(msg_id, int) and not isinstance(msg_id, bool) and 0 < msg_id <= MAX_ID:
            return msg_id
    return None


def result(msg_id: int, value: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": msg_id, "type": "result", "success": True, "result": value or {}}


def error(msg_id: int | None, code: ErrorCode, message: str) -> dict[str, Any]:
    return {"id": msg_id, "type": "result", "success": False, "error": {"code": code.value, "message": message}}


def event(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "event", "event": name, "data": data}


def parse_body(cls: type[T], body: dict[str, Any], prefix: str = "") -> T:
    """A command's body by its schema (see `telehealth.schema`)."""
    return parse(cls, body, prefix)
