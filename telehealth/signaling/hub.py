"""The node's switchboard: which local connections belong to which user, fed by broker channels."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable

from telehealth.events import queue_channel, route_of, user_channel
from telehealth.matching.broker import Broker, Message, Subscription
from telehealth.records.models import User
from telehealth.signaling.connection import ACCESS_EXPIRED, Connection

log = logging.getLogger("telehealth.signaling")

# Events meant for the tab in the call, not every tab of the user.
SESSION_SCOPED = frozenset({"signal", "chat", "peer_joined", "peer_left"})
# Events the node itself looks into before passing them on (the rest are forwarded unparsed).
HOOKED = frozenset({"session_ended"})
EXPIRY_SWEEP_S = 1.0
# A credential of the user ended: the sockets opened with it close, and the event goes no further.
ACCESS_REVOKED = "access_revoked"

EventHook = Callable[[Connection, str, dict[str, object]], Awaitable[None]]
QueueHook = Callable[[str], Awaitable[None]]


class Hub:
    """Delivers channel messages to local connections; subscribes to a channel only while someone here needs it."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._by_user: dict[int, set[Connection]] = defaultdict(set)
        self._queue_watchers: dict[str, set[Connection]] = defaultdict(set)
        self._subscription: Subscription | None = None
        self._expiry: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._users: weakref.WeakValueDictionary[int, User] = weakref.WeakValueDictionary()
        # Called for each event a local connection receives, before it is sent (sessions use it to
        # keep their view of who is in a call current).
        self.event_hooks: list[EventHook] = []
        self.queue_hooks: list[QueueHook] = []
        self.delivered = 0

    async def start(self) -> None:
        self._subscription = await self.broker.subscribe(self._on_message, at_once=self._deliver_at_once)
        self._expiry = asyncio.get_running_loop().create_task(self._close_expired(), name="socket-expiry")

    async def _close_expired(self) -> None:
        """A socket lives no longer than the session or token it was opened with (one sweep a second for the
        node, not a timer per socket)."""
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_S)
            now = time.time()
            for conns in list(self._by_user.values()):
                for conn in list(conns):
                    if 0 < conn.expires <= now:
                        conn.end_access(ACCESS_EXPIRED)

    async def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    @property
    def connection_count(self) -> int:
        return sum(len(c) for c in self._by_user.values())

    def intern_user(self, user: User) -> User:
        """The one copy of this account's record that this node's connections share (if it is unchanged)."""
        known = self._users.get(user.id)
        if known == user:
            return known
        self._users[user.id] = user
        return user

    def connections_of(self, user_id: int) -> set[Connection]:
        return set(self._by_user.get(user_id, ()))

    def all_connections(self) -> list[Connection]:
        return [c for conns in self._by_user.values() for c in conns]

    async def add(self, conn: Connection) -> None:
        async with self._lock:
            first = not self._by_user.get(conn.user.id)
            self._by_user[conn.user.id].add(conn)
            if first and self._subscription is not None:
                await self._subscription.add(user_channel(conn.user.id))

    async def remove(self, conn: Connection) -> None:
        async with self._lock:
            conns = self._by_user.get(conn.user.id)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self._by_user[conn.user.id]
                    if self._subscription is not None:
                        await self._subscription.remove(user_channel(conn.user.id))
            for specialty in [s for s, watchers in self._queue_watchers.items() if conn in watchers]:
                await self._unwatch_locked(conn, specialty)

    async def watch_queue(self, conn: Connection, specialty: str) -> None:
        async with self._lock:
            first = not self._queue_watchers.get(specialty)
            self._queue_watchers[specialty].add(conn)
            if first and self._subscription is not None:
                await self._subscription.add(queue_channel(specialty))

    async def unwatch_queue(self, conn: Connection, specialty: str) -> None:
        async with self._lock:
            await self._unwatch_locked(conn, specialty)

    async def _unwatch_locked(self, conn: Connection, specialty: str) -> None:
        watchers = self._queue_watchers.get(specialty)
        if watchers is None:
            return
        watchers.discard(conn)
        if not watchers:
            del self._queue_watchers[specialty]
            if self._subscription is not None:
                await self._subscription.remove(queue_channel(specialty))

    def queue_watchers(self, specialty: str) -> set[Connection]:
        return set(self._queue_watchers.get(specialty, ()))

    @staticmethod
    def _end_access(conns: set[Connection], data: dict[str, object]) -> None:
        """`credential`: only sockets opened with it; `keep`: all but those; neither: every socket."""
        reason = str(data.get("reason") or "access_ended")
        only, keep = data.get("credential"), data.get("keep")
        for conn in list(conns):
            if (only and conn.credential != only) or (keep and conn.credential == keep):
                continue
            conn.end_access(reason)

    def _deliver_at_once(self, message: Message) -> bool:
        """The quick path for what most messages are (a signal or an offer for a user here): sent on the spot.
        Events the node looks into, and queue channels, go to `_on_message` (False)."""
        channel = message.channel
        if not channel.startswith("user:"):
            return False
        try:
            name, session_id, body = route_of(message.data)
        except ValueError:
            return False  # `_on_message` logs it
        if name in HOOKED or name == ACCESS_REVOKED:
            return False
        conns = self._by_user.get(int(channel[5:]))
        if conns:
            self._send(conns, name, session_id, body)
        return True

    def _send(self, conns: set[Connection], name: str, session_id: int | None, body: bytes) -> None:
        scoped = name in SESSION_SCOPED
        for conn in list(conns):
            if scoped and session_id not in conn.joined_sessions:
                continue  # another tab of the same user, not in this call
            conn.send_raw(body)
            self.delivered += 1

    async def _on_message(self, message: Message) -> None:
        try:
            name, session_id, body = route_of(message.data)
            text = body.decode()
        except (ValueError, UnicodeDecodeError):
            log.warning("dropping a malformed broker message on %s", message.channel)
            return
        if message.channel.startswith("user:"):
            user_id = int(message.channel[5:])
            conns = self._by_user.get(user_id)
            if not conns:
                return
            if name == ACCESS_REVOKED:
                self._end_access(conns, json.loads(text)["data"])
                return
            if name in HOOKED and self.event_hooks:
                data = dict(json.loads(text)["data"])
                for conn in list(conns):
                    for hook in self.event_hooks:
                        try:
                            await hook(conn, name, data)
                        except Exception:
                            log.exception("event hook failed for %s", name)
            self._send(conns, name, session_id, body)
        elif message.channel.startswith("queue:"):
            specialty = message.channel[6:]
            for queue_hook in self.queue_hooks:
                try:
                    await queue_hook(specialty)
                except Exception:
                    log.exception("queue hook failed for %s", specialty)
