"""The WebSocket endpoint: authentication, Origin check, one reader loop, dispatch, and live queue updates."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from telehealth import logs
from telehealth.domain import Role
from telehealth.errors import ErrorCode, TelehealthError, fill
from telehealth.records.models import User
from telehealth.server import keys
from telehealth.server.auth import client_address, public
from telehealth.server.i18n import pick_language
from telehealth.server.proxies import forwarded_host
from telehealth.server.ratelimit import TokenBucket
from telehealth.services.accounts import Identity
from telehealth.signaling import messages
from telehealth.signaling.commands import REGISTRY, Context
from telehealth.signaling.connection import CLOSE_GOING_AWAY, CLOSE_POLICY, Connection, encode
from telehealth.signaling.messages import parse_body

log = logging.getLogger("telehealth.ws")

QUEUE_UPDATE_DELAY_S = 0.05


@dataclass(frozen=True, slots=True)
class Voice:
    """A connection's errors in its user's language, with the English beside them as in the JSON API."""

    translate: Callable[[str], str]

    def refuse(self, msg_id: int | None, code: ErrorCode, template: str, /, **params: Any) -> dict[str, Any]:
        return messages.error(msg_id, code, fill(self.translate(template), params), fill(template, params))

    def refuse_error(self, msg_id: int | None, exc: TelehealthError) -> dict[str, Any]:
        return self.refuse(msg_id, exc.code, exc.template, **exc.params)


def voice_for(request: web.Request, user: User | None) -> Voice:
    app = request.app
    lang = pick_language(request, user.language if user else None, app[keys.SETTINGS].default_language)
    renderer = app[keys.RENDERER]
    return Voice(lambda template: renderer.translate(lang, template))


def origin_allowed(request: web.Request) -> bool:
    """Browsers send Origin; it must be this server's own address or a configured public origin."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser: such clients authenticate with a token, which a page cannot steal
    allowed = set(request.app[keys.SETTINGS].allowed_origins)
    if origin in allowed:
        return True
    parts = urlsplit(origin)
    host = forwarded_host(request)
    return parts.netloc == host


async def _authenticate(request: web.Request, ws: web.WebSocketResponse) -> Identity | None:
    user: User | None = request.get(keys.USER)
    if user is not None:
        return Identity(user, request.get(keys.CREDENTIAL, ""), request.get(keys.CREDENTIAL_EXPIRES, 0.0))
    settings = request.app[keys.SETTINGS]
    # Before the token is read, the language is the browser's or the server's default.
    voice = voice_for(request, None)
    try:
        msg = await ws.receive(timeout=settings.signaling.auth_timeout_s)
    except TimeoutError:
        await ws.send_json(voice.refuse(None, ErrorCode.auth_timeout, "authenticate within {seconds} s",
                                        seconds=f"{settings.signaling.auth_timeout_s:g}"))
        return None
    if msg.type != WSMsgType.TEXT:
        return None
    try:
        env = messages.parse_envelope(msg.data, settings.signaling.max_message_bytes)
    except TelehealthError as exc:
        await ws.send_json(voice.refuse_error(messages.refused_id(msg.data, exc), exc))
        return None
    token = env.body.get("token")
    if env.type != "auth" or not isinstance(token, str):
        await ws.send_json(voice.refuse(env.id, ErrorCode.auth_required,
                                        "the first message must be an auth message with an API token"))
        return None
    found = await request.app[keys.SERVICES].accounts.token_identity(token)
    if found is None:
        await ws.send_json(voice.refuse(env.id, ErrorCode.auth_failed, "the API token is not valid"))
        return None
    await ws.send_json(messages.result(env.id, {"user_id": found.user.id}))
    return found


def user_view(user: User) -> dict[str, Any]:
    return {"id": user.id, "name": user.display_name, "role": user.role.value,
            "title": user.title.value if user.title else None, "specialties": list(user.specialties),
            "organisation_id": user.organisation_id}


@public  # authentication happens inside: cookie at upgrade, or an auth message with an API token
async def handle_ws(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings = app[keys.SETTINGS]
    if not origin_allowed(request):
        raise TelehealthError(ErrorCode.bad_origin, "this page's origin may not open the WebSocket")
    sessions = app[keys.SESSIONS]
    if sessions.draining:
        raise TelehealthError(ErrorCode.unavailable, "this server is shutting down; reconnect")
    sig = settings.signaling
    ws = web.WebSocketResponse(heartbeat=sig.heartbeat_s, compress=False, max_msg_size=sig.max_message_bytes * 4)
    await ws.prepare(request)
    identity = await _authenticate(request, ws)
    if identity is None:
        await ws.close(code=CLOSE_POLICY, message=b"authentication failed")
        return ws
    user = app[keys.HUB].intern_user(identity.user)

    transport = request.transport
    conn = Connection(user, ws, sig.send_queue_size, sessions.node, transport.abort if transport else None)
    conn.credential = identity.credential
    conn.expires = identity.expires
    logs.bind(connection_id=conn.id, user_id=user.id)
    hub = app[keys.HUB]
    await hub.add(conn)
    app[keys.WEBSOCKETS].add(ws)
    ctx = Context(conn, app[keys.SERVICES], sessions, hub, sessions.node, client_address(request))
    conn.send(messages.event("hello", {"protocol": messages.PROTOCOL_VERSION, "user": user_view(user),
                                       "node": sessions.node, "connection_id": conn.id}))
    bucket = TokenBucket(sig.rate_per_s, sig.rate_burst)
    metrics = app[keys.METRICS]
    voice = voice_for(request, user)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                if not bucket.take():
                    metrics.count_error(ErrorCode.rate_limited)
                    conn.send(voice.refuse(messages.peek_id(msg.data), ErrorCode.rate_limited,
                                           "too many messages; slow down"))
                    continue
                reply = await dispatch(ctx, msg.data, sig.max_message_bytes, voice)
                metrics.messages += 1
                if not reply["success"]:
                    metrics.count_error(ErrorCode(reply["error"]["code"]))
                await conn.reply(encode_reply(reply))
            elif msg.type == WSMsgType.BINARY:
                conn.send(voice.refuse(None, ErrorCode.invalid_message, "binary messages are not accepted"))
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        app[keys.WEBSOCKETS].discard(ws)
        # The handler may be cancelled once the client is gone: finish the bookkeeping regardless.
        await asyncio.shield(_after_close(app, conn))
    return ws


async def _after_close(app: web.Application, conn: Connection) -> None:
    hub, sessions, user = app[keys.HUB], app[keys.SESSIONS], conn.user
    await hub.remove(conn)
    await conn.stop()
    if sessions.draining:
        return
    try:
        await sessions.connection_lost(conn)
    except Exception:
        log.warning("could not record the loss of connection %s", conn.id, exc_info=True)
    if user.role is Role.specialist and not hub.connections_of(user.id):
        # The specialist's last tab closed: not available any more (a dead node's presence expires).
        try:
            await app[keys.BROKER].clear_presence(user.id)
        except Exception:
            log.warning("could not clear the presence of user %s", user.id, exc_info=True)


def encode_reply(reply: dict[str, Any]) -> bytes:
    """A command's result as UTF-8 JSON; the empty success (every relayed signal's) is the same text, written
    out."""
    if reply["success"] and not reply["result"] and type(reply["id"]) is int:
        return b'{"id":%d,"type":"result","success":true,"result":{}}' % reply["id"]
    return encode(reply)


async def dispatch(ctx: Context, raw: str, max_bytes: int, voice: Voice) -> dict[str, Any]:
    """Parse, check and run one command; every failure becomes an error result for that id only."""
    try:
        env = messages.parse_envelope(raw, max_bytes)
    except TelehealthError as exc:
        return voice.refuse_error(messages.refused_id(raw, exc), exc)
    # Ids increase on a connection, so remembering the last one is enough to refuse any reuse.
    if env.id <= ctx.conn.last_ids:
        return voice.refuse(env.id, ErrorCode.id_reused,
                            "id {id} is not greater than the last id used on this connection", id=env.id)
    ctx.conn.last_ids = env.id
    command = REGISTRY.get(env.type)
    if command is None:
        return voice.refuse(env.id, ErrorCode.unknown_command, "unknown command type {type}", type=env.type)
    if ctx.user.role not in command.roles:
        return voice.refuse(env.id, ErrorCode.forbidden, "this role may not use the command {type}",
                            type=env.type)
    # The log context of the command: its type and the ids it names (built here, once per message).
    fields: dict[str, Any] = {"command": env.type}
    if type(named := env.body.get("session_id")) is int:
        fields["session_id"] = named
    if type(named := env.body.get("consultation_id")) is int:
        fields["consultation_id"] = named
    started = time.perf_counter()
    with logs.bound(fields):
        try:
            body = parse_body(command.body, env.body)
            value = await command.handler(ctx, body)
        except TelehealthError as exc:
            # A refused command is the client's business, logged quietly with its code.
            level = logging.WARNING if exc.code is ErrorCode.unavailable else logging.INFO
            log.log(level, "command %s refused: %s", env.type, exc.code.value, extra={"outcome": exc.code.value})
            return voice.refuse_error(env.id, exc)
        except Exception:
            log.exception("command %s failed", env.type, extra={"outcome": "internal_error"})
            return voice.refuse(env.id, ErrorCode.internal_error, "the server could not complete this command")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("command %s", env.type, extra={
                "outcome": "ok", "duration_ms": round((time.perf_counter() - started) * 1000, 2)})
    return messages.result(env.id, value)


class QueueUpdates:
    """Coalesces queue changes per specialty and pushes positions to watching clinics, hints to specialists."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._pending: dict[str, asyncio.Task[None]] = {}

    async def on_queue_changed(self, specialty: str) -> None:
        if specialty not in self._pending:
            self._pending[specialty] = asyncio.create_task(self._push(specialty))

    async def _push(self, specialty: str) -> None:
        await asyncio.sleep(QUEUE_UPDATE_DELAY_S)
        self._pending.pop(specialty, None)
        hub = self.app[keys.HUB]
        matcher = self.app[keys.MATCHER]
        store = self.app[keys.STORE]
        for conn in hub.queue_watchers(specialty):
            if conn.user.role is Role.specialist:
                conn.send(messages.event("queue_changed", {"specialty": specialty}))
                continue
            for cid in list(conn.watching):
                consultation = await store.get_consultation(cid)
                if consultation is None or consultation.specialty != specialty:
                    continue
                if not consultation.state.is_waiting:
                    conn.unwatch(cid)
                status = await matcher.status(consultation)
                conn.send(messages.event("queue_position", {
                    "consultation_id": cid, "state": status.state, "position": status.position,
                    "estimated_wait_s": status.estimated_wait_s}))

    async def close(self) -> None:
        for task in self._pending.values():
            task.cancel()
        self._pending.clear()


async def close_all(app: web.Application) -> None:
    """On shutdown: tell every client to reconnect (to another node behind the balancer)."""
    sockets = app[keys.WEBSOCKETS]
    for socket in list(sockets):
        try:
            await socket.send_str(json.dumps(messages.event("reconnect", {"reason": "server_shutdown"})))
            await socket.close(code=CLOSE_GOING_AWAY, message=b"server shutdown")
        except Exception:
            continue
