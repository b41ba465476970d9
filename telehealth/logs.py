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
    """Add correlation fields for the duration of a block (and the tasks it starts).

    A small class rather than a generator-based context manager: it wraps every WebSocket command.
    """

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: Any) -> None:
        self._fields = fields
        self._token: contextvars.Token[dict[str, Any] | None] | None = None

    def __enter__(self) -> None:
        self._token = _context.set(_merged(self._fields))

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _context.reset(self._token)


def _merged(fields: dict[str, Any]) -> dict[str, Any]:
    return {**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}}


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


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = " ".join(f"{k}={v}" for k, v in current().items() if k in CORRELATION_FIELDS)
        return f"{text} [{ids}]" if ids else text


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
