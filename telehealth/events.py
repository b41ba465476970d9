"""The one way events leave the server: channel names, the wire encoding, and publishing after commit.

A service operation collects its events in its unit of work; they go out only once its transaction has
committed, so nothing is announced for a write that rolled back. A broker failure while publishing is
logged and the event dropped: it never turns a committed write into an error. Dropping is safe because
every event is a hint to re-read state that the store already holds: a client re-reads a consultation
when it (re)connects or watches it, offers are repaired by the matcher's sweep, and queue views refresh.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

log = logging.getLogger("telehealth.events")

Publish = Callable[[str, bytes], Awaitable[Any]]
# The standard library's encoder with the same output, for what orjson does not take (integers past 64 bits).
_fallback = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
# Dates and dataclasses go through `str`, as the standard library's `default=str` gave them before.
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, as every message to clients and every event is written."""
    try:
        return orjson.dumps(value, default=str, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return _fallback(value).encode()


def user_channel(user_id: int) -> str:
    return f"user:{user_id}"


def queue_channel(specialty: str) -> str:
    return f"queue:{specialty}"


def encode_event(event: str, data: dict[str, Any]) -> bytes:
    """A channel message: `event|session id|` then the WebSocket event exactly as clients receive it.

    The routing header lets a node decide which connections get it, and pass the bytes on, without
    parsing or re-encoding the JSON for every recipient.
    """
    session = data.get("session_id")
    header = f"{event}|{session if type(session) is int else ''}|".encode()
    return header + encode_json({"type": "event", "event": event, "data": data})


def route_of(raw: bytes) -> tuple[str, int | None, bytes]:
    """(event name, session id or None, the WebSocket message as UTF-8) of a channel message."""
    name, session, body = raw.split(b"|", 2)
    return name.decode(), int(session) if session else None, body


def split_event(raw: bytes) -> tuple[str, int | None, str]:
    """(event name, session id or None, the WebSocket text) of a channel message."""
    name, session, body = route_of(raw)
    return name, session, body.decode()


def decode_event(raw: bytes) -> tuple[str, dict[str, Any]]:
    name, _, text = split_event(raw)
    return name, dict(json.loads(text)["data"])


class EventPublisher:
    """Publishes on the broker's channels; never raises (see the module's rule)."""

    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    async def publish(self, channel: str, event: str, data: dict[str, Any]) -> None:
        try:
            await self._publish(channel, encode_event(event, data))
        except Exception:
            log.warning("event %s on %s dropped: the broker did not take it", event, channel, exc_info=True)

    async def to_user(self, user_id: int, event: str, data: dict[str, Any]) -> None:
        await self.publish(user_channel(user_id), event, data)

    async def to_queue(self, specialty: str, event: str, data: dict[str, Any]) -> None:
        await self.publish(queue_channel(specialty), event, data)


@dataclass
class Outbox:
    """Events held until the transaction that caused them has committed."""

    pending: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def to_user(self, user_id: int, event: str, data: dict[str, Any]) -> None:
        self.pending.append((user_channel(user_id), event, data))

    def to_queue(self, specialty: str, event: str, data: dict[str, Any]) -> None:
        self.pending.append((queue_channel(specialty), event, data))

    async def flush(self, publisher: EventPublisher) -> None:
        pending, self.pending = self.pending, []
        for channel, event, data in pending:
            await publisher.publish(channel, event, data)
