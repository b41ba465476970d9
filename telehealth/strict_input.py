"""Text from clients, read strictly: JSON as RFC 8259 defines it, and strings every database can store."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from telehealth.errors import ErrorCode, TelehealthError

NOT_JSON = "the text is not valid JSON"
NOT_A_NUMBER = "NaN and Infinity are not JSON numbers"
TOO_DEEP = "the JSON is nested too deeply"
UNSTORABLE = "text may not hold NUL characters or unpaired surrogates"

_SURROGATE = re.compile("[\ud800-\udfff]")


class _Refused(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _refuse_constant(name: str) -> Any:
    raise _Refused(NOT_A_NUMBER)


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):  # 1e400: a number no database column holds
        raise _Refused(NOT_A_NUMBER)
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite)


def storable(text: str) -> bool:
    """No NUL (PostgreSQL refuses it in text) and no unpaired surrogate (not UTF-8, so no database stores it)."""
    return "\x00" not in text and (text.isascii() or _SURROGATE.search(text) is None)


def _all_storable(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not storable(item):
                return False
        elif isinstance(item, dict):
            for key, inner in item.items():
                if not storable(key):
                    return False
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)
    return True


def json_loads(raw: str | bytes) -> Any:
    """A JSON document from a client: UTF-8 only, no NaN or Infinity (nor a number too large to be finite), no
    NUL and no unpaired surrogate in any string or key. Syntax errors are `invalid_json`, the rest
    `invalid_message`. A `str` must come from a strict UTF-8 decoding (as aiohttp's WebSocket text does).

    orjson reads every valid document (it is RFC 8259 strict: it refuses NaN, Infinity, numbers that overflow
    a double, unpaired surrogates and nesting past 1024); a document it refuses is read again by the standard
    library's decoder, which says why. An integer past 64 bits comes back as a float, which every schema here
    refuses as it would the integer (ids and counts are bounded far below that)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        _explain_refusal(raw)
        raise TelehealthError(ErrorCode.invalid_message, TOO_DEEP) from None  # only orjson's depth limit is left
    # NUL can only be written as a \u escape in valid JSON: look only when one is there.
    escaped_nul = b"\\u0000" in raw if isinstance(raw, bytes | bytearray) else "\\u0000" in raw
    if escaped_nul and not _all_storable(data):
        raise TelehealthError(ErrorCode.invalid_message, UNSTORABLE)
    return data


def _explain_refusal(raw: str | bytes) -> None:
    """Raise the error that names what is wrong with a document orjson refused."""
    if isinstance(raw, bytes | bytearray):
        try:
            text = raw.decode("utf-8")  # strict: json.loads(bytes) would let encoded surrogates through
        except UnicodeDecodeError:
            raise TelehealthError(ErrorCode.invalid_json, NOT_JSON) from None
    else:
        text = raw
    try:
        data = _DECODER.decode(text)
    except _Refused as exc:
        raise TelehealthError(ErrorCode.invalid_message, exc.message) from None
    except ValueError:
        raise TelehealthError(ErrorCode.invalid_json, NOT_JSON) from None
    except RecursionError:
        raise TelehealthError(ErrorCode.invalid_message, TOO_DEEP) from None
    if "\\u" in text and not _all_storable(data):
        raise TelehealthError(ErrorCode.invalid_message, UNSTORABLE)
