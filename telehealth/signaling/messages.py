"""The WebSocket envelope: parsing client commands and building results and events, validated at the edge."""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
import typing
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from telehealth.errors import ErrorCode, TelehealthError

T = TypeVar("T")
MAX_ID = 2**53 - 1
# Integers in message bodies (record ids, counts) fit the database's 32-bit integer columns.
MAX_INT = 2**31 - 1


@dataclass(frozen=True)
class Envelope:
    id: int
    type: str
    body: dict[str, Any]


def parse_envelope(raw: str | bytes, max_bytes: int) -> Envelope:
    """Check size, JSON, and the envelope fields; the body is checked by the command's own schema."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode())
    if size > max_bytes:
        raise TelehealthError(ErrorCode.message_too_large, f"messages are limited to {max_bytes} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise TelehealthError(ErrorCode.invalid_json, "the message is not valid JSON") from None
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


def _check(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(value, arg, where)
            except TelehealthError as exc:
                errors.append(exc.message)
        raise TelehealthError(ErrorCode.invalid_message, errors[0] if errors else f"`{where}` is invalid")
    if hint is Any:
        return value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in hint)
            raise TelehealthError(ErrorCode.invalid_message, f"`{where}` must be one of: {allowed}") from None
    if hint is bool:
        if not isinstance(value, bool):
            raise TelehealthError(ErrorCode.invalid_message, f"`{where}` must be true or false")
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) > MAX_INT:
            raise TelehealthError(ErrorCode.invalid_message, f"`{where}` must be an integer")
        return value
    if hint is float:
        if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
            raise TelehealthError(ErrorCode.invalid_message, f"`{where}` must be a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise TelehealthError(ErrorCode.invalid_message, f"`{where}` must be a string")
        return value
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise TelehealthError(ErrorCode.invalid_message, f"`{where}` must be an object")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise TelehealthError(ErrorCode.invalid_message, f"`{where}` must be a list")
        return [_check(item, args[0], f"{where}[]") for item in value] if args else value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise TelehealthError(ErrorCode.invalid_message, f"`{where}` must be an object")
        return parse_body(typing.cast(type[Any], hint), value, prefix=f"{where}.")
    raise TypeError(f"unsupported field type {hint!r}")  # a programming error, not a client error


@functools.cache
def _schema(cls: type[Any]) -> tuple[dict[str, Any], frozenset[str], tuple[dataclasses.Field[Any], ...]]:
    """A body class's field types, computed once per class (this runs for every message)."""
    fields = dataclasses.fields(cls)
    return typing.get_type_hints(cls), frozenset(f.name for f in fields), fields


def parse_body(cls: type[T], body: dict[str, Any], prefix: str = "") -> T:
    """Build a frozen dataclass from a JSON object: required fields present, types exact, no unknown fields.

    Dataclasses may add a `validate()` method for rules beyond types (lengths, ranges).
    """
    hints, names, fields = _schema(typing.cast(Hashable, cls))
    unknown = sorted(set(body) - names)
    if unknown:
        raise TelehealthError(ErrorCode.invalid_message, f"unknown field(s): {', '.join(prefix + u for u in unknown)}")
    kwargs: dict[str, Any] = {}
    for f in fields:
        where = prefix + f.name
        if f.name not in body:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise TelehealthError(ErrorCode.invalid_message, f"`{where}` is required")
            continue
        kwargs[f.name] = _check(body[f.name], hints[f.name], where)
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate()
    return obj


def require(condition: bool, message: str) -> None:
    if not condition:
        raise TelehealthError(ErrorCode.invalid_message, message)
