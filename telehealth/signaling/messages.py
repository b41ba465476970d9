"""The WebSocket envelope: parsing client commands and building results and events, validated at the edge."""

from __future__ import annotations

import json
from typing import Any, NamedTuple, TypeVar

__all__ = ["MAX_INT", "PROTOCOL_VERSION", "Envelope", "error", "event", "parse_body", "parse_envelope", "peek_id",
           "peek_leading_id", "refused_id", "require", "result"]

from telehealth.errors import ErrorCode, TelehealthError
from telehealth.schema import MAX_INT, parse, require
from telehealth.strict_input import json_loads

T = TypeVar("T")
MAX_ID = 2**53 - 1
# Sent in `hello`; raised when a change would break a client written for the previous version.
PROTOCOL_VERSION = 1
# How much of an oversized message is read for its id: enough for the members a client writes before it.
LEADING_CHARS = 4096
_DECODER = json.JSONDecoder()


class Envelope(NamedTuple):
    """A command as the envelope gives it (a tuple: one is built for every message)."""

    id: int
    type: str
    body: dict[str, Any]


def parse_envelope(raw: str | bytes, max_bytes: int) -> Envelope:
    """Check size, JSON, and the envelope fields; the body is checked by the command's own schema."""
    # A character is at most 4 bytes in UTF-8: most messages need no encoding to know they fit.
    size = len(raw) if isinstance(raw, bytes) or len(raw) * 4 <= max_bytes else len(raw.encode())
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
    del data["id"], data["type"]  # the document is this call's own: what is left is the body
    return Envelope(msg_id, msg_type, data)


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


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def peek_leading_id(raw: str | bytes) -> int | None:
    """The id of an oversized message, read from the top-level members at its start without parsing the rest
    (the members before `id` must fit in the first `LEADING_CHARS` characters)."""
    text = raw[:LEADING_CHARS]
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="ignore")  # a character cut at the end is dropped
    pos = _skip_space(text, 0)
    if not text.startswith("{", pos):
        return None
    pos += 1
    while True:
        try:
            key, pos = _DECODER.raw_decode(text, _skip_space(text, pos))
            pos = _skip_space(text, pos)
            if not isinstance(key, str) or not text.startswith(":", pos):
                return None
            value, pos = _DECODER.raw_decode(text, _skip_space(text, pos + 1))
        except ValueError:
            return None
        pos = _skip_space(text, pos)
        if pos >= len(text):
            return None  # the value may have been cut where the reading stopped
        if key == "id":
            return int(value) if _is_id(value) else None
        if not text.startswith(",", pos):
            return None
        pos += 1


def result(msg_id: int, value: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": msg_id, "type": "result", "success": True, "result": value or {}}


def error(msg_id: int | None, code: ErrorCode, message: str, message_en: str | None = None) -> dict[str, Any]:
    """An error result; `message` in the user's language, with the English beside it when that differs from
    it, as the JSON API's errors carry it, for logs and integrations to match on."""
    detail = {"code": code.value, "message": message}
    if message_en is not None:
        detail["message_en"] = message_en
    return {"id": msg_id, "type": "result", "success": False, "error": detail}


def refused_id(raw: str | bytes, exc: TelehealthError) -> int | None:
    """The id to answer for a message the envelope refused, when one can be read (an oversized message is not
    parsed whole: its id is read from its start)."""
    peek = peek_leading_id if exc.code is ErrorCode.message_too_large else peek_id
    return peek(raw)


def event(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "event", "event": name, "data": data}


def parse_body(cls: type[T], body: dict[str, Any], prefix: str = "") -> T:
    """A command's body by its schema (see `telehealth.schema`)."""
    return parse(cls, body, prefix)
