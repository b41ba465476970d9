"""Logging: one JSON object per line (or plain text for a terminal), each line carrying the correlation ids
of what it belongs to: the HTTP request, the WebSocket connection and command, the consultation and the call
session. Log lines never carry patient data: only ids, codes and counts."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import secrets
from typing import Any

FORMATS = ("json", "text")
CORRELATION_FIELDS = ("node", "request_id", "connection_id", "command", "user_id", "consultation_id", "session_id")
_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("telehealth_log_context",
                                                                                default=None)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# The standard attributes of a LogRecord: anything else passed as `extra=` is a field of the line.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def new_request_id(offered: str | None = None) -> str:
    """The caller's X-Request-ID when it is a plain token (so a balancer's id follows the request), else a new one."""
    if offered and _REQUEST_ID.match(offered):
        return offered
    return secrets.token_hex(8)


def current() -> dict[str, Any]:
    return dict(_context.get() or {})


class bound:
    """Add correlation fields for the duration of a block (and the tasks it starts): `bound(a=1)`, or
    `bound(fields)` with a dict the caller built for it (it is kept, not copied).

    A small class rather than a generator-based context manager: it wraps every WebSocket command.
    """

    __slots__ = ("_fields", "_token")

    def __init__(self, fields: dict[str, Any] | None = None, /, **more: Any) -> None:
        self._fields = more if fields is None else {**fields, **more} if more else fields
        self._token: contextvars.Token[dict[str, Any] | None] | None = None

    def __enter__(self) -> None:
        self._token = _context.set(_merged(self._fields))

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _context.reset(self._token)


def _merged(fields: dict[str, Any]) -> dict[str, Any]:
    if None in fields.values():
        fields = {k: v for k, v in fields.items() if v is not None}
    base = _context.get()
    return {**base, **fields} if base else fields


def bind(**fields: Any) -> None:
    """Add correlation fields to the current context from here on (e.g. a connection's user once known)."""
    _context.set(_merged(fields))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage(),
        }
        line.update(current())
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


# Control characters (C0, DEL, C1), line and paragraph separators and the bidirectional overrides: a value
# holding one could start a forged line in a terminal or a text log, or recolour and reorder what follows.
_ESCAPES: dict[int, str] = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
_ESCAPES.update({c: f"\\u{c:04x}" for c in (0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F),
                                             *range(0x2066, 0x206A))})
_KEEP_NEWLINES = {**_ESCAPES}
del _KEEP_NEWLINES[ord("\n")]


def escape_controls(text: str) -> str:
    """`text` on one line, its control characters written as escapes (`\\n`, `\\x1b`, `\\u202e`)."""
    return text if text.isprintable() else text.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [ids]`, one line per record whatever the logged values hold; a traceback
    follows on lines of its own, indented, so that nothing in it can pass for a record."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{self.formatTime(record)} {record.levelname} {record.name}: {escape_controls(record.getMessage())}"
        ids = " ".join(f"{k}={escape_controls(str(v))}" for k, v in current().items() if k in CORRELATION_FIELDS)
        if ids:
            text = f"{text} [{ids}]"
        extra = []
        if record.exc_info:
            extra.append(self.formatException(record.exc_info))
        if record.stack_info:
            extra.append(self.formatStack(record.stack_info))
        for block in extra:
            for line in block.translate(_KEEP_NEWLINES).splitlines():
                text += f"\n  {line}"
        return text


def configure(fmt: str = "text", level: str = "INFO") -> None:
    """Install the chosen formatter on the root logger (replacing any earlier handler)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
