"""One client connection: identity, a bounded outgoing queue drained by its own writer task."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Protocol

from telehealth.events import encode_json
from telehealth.records.models import User

log = logging.getLogger("telehealth.signaling")

_ids = itertools.count(1)
encode = encode_json
# The WebSocket text frame's opcode (RFC 6455): messages are written as UTF-8 bytes already encoded.
TEXT_FRAME = 0x1


class Socket(Protocol):
    """What a connection needs of its WebSocket (aiohttp's WebSocketResponse has it)."""

    async def send_frame(self, message: bytes, opcode: Any, compress: int | None = None) -> None: ...

    async def close(self, *, code: int = ..., message: bytes = ..., drain: bool = ...) -> bool: ...

_NONE: frozenset[int] = frozenset()

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_SLOW = 1013
# Access ended (account deactivated, password changed, signed out, token revoked, session expired): the
# close reason names which; the client signs in again instead of reconnecting (docs/protocol.md).
CLOSE_ACCESS_ENDED = 4001
ACCESS_EXPIRED = "session_expired"


class Connection:
    """What the rest of the server knows of a WebSocket: who it is and how to send to it.

    Sending never blocks the caller: messages go into a bounded queue; a client that lets the queue
    fill up is cut off, so one slow phone cannot hold back a broadcast to everyone else. The writer
    task, and the queue, exist only while there is something to send, so an idle connection costs
    neither. The reply to the connection's own command is the exception: its reader writes it at
    once when nothing else waits to go out (see `reply`).
    """

    __slots__ = ("_abort", "_direct", "_queue", "_socket", "_writer", "closed", "credential", "expires", "id",
                 "joined_sessions", "last_ids", "queue_size", "user", "watching")

    def __init__(self, user: User, socket: Socket, queue_size: int, node: str,
                 abort: Callable[[], None] | None = None) -> None:
        self.id = f"{node}-{next(_ids)}"
        self.user = user
        # Which session or token opened this socket (see telehealth.services.accounts.credential_id).
        self.credential = ""
        # When that session or token stops working (POSIX time; 0: never): the hub closes the socket then.
        self.expires = 0.0
        self._socket = socket
        self._abort = abort
        self.queue_size = queue_size
        self._queue: collections.deque[bytes] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._direct = False
        self.closed = False
        # Shared empty sets until first used: most of thousands of idle connections never need their own.
        self.joined_sessions: frozenset[int] | set[int] = _NONE
        self.watching: frozenset[int] | set[int] = _NONE
        self.last_ids = 0

    def join_session(self, session_id: int) -> None:
        if not isinstance(self.joined_sessions, set):
            self.joined_sessions = set()
        self.joined_sessions.add(session_id)

    def leave_session(self, session_id: int) -> None:
        if isinstance(self.joined_sessions, set):
            self.joined_sessions.discard(session_id)

    def watch(self, consultation_id: int) -> None:
        if not isinstance(self.watching, set):
            self.watching = set()
        self.watching.add(consultation_id)

    def unwatch(self, consultation_id: int) -> None:
        if isinstance(self.watching, set):
            self.watching.discard(consultation_id)

    def send(self, message: dict[str, Any]) -> bool:
        return self.send_raw(encode(message))

    def send_raw(self, data: bytes) -> bool:
        """Queue one message (UTF-8 JSON); written at once when nothing waits before it."""
        if self.closed:
            return False
        queue = self._queue
        if queue is None:
            if self._writer is None and not self._direct:
                return self._write_now(data)
            queue = self._queue = collections.deque()
        elif len(queue) >= self.queue_size:
            self._cut_off()
            return False
        queue.append(data)
        if self._writer is None and not self._direct:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        return True

    def _write_now(self, data: bytes) -> bool:
        """Write without a task: an uncompressed frame goes to the transport on the first step of the send
        coroutine, which finishes there unless the transport asks it to wait for its buffer to drain. Then the
        writer task finishes that send, and what is queued meanwhile waits behind it."""
        sending = self._socket.send_frame(data, TEXT_FRAME)
        try:
            waiting = sending.send(None)
        except StopIteration:
            return True
        except (ConnectionError, RuntimeError):
            self.closed = True
            return False
        self._queue = collections.deque()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(_Resumed(sending, waiting)))
        return True

    async def reply(self, data: bytes) -> None:
        """Send the answer to a command of this connection, from the connection's own reader.

        Written at once when nothing else waits to go out, which spares a writer task per command;
        otherwise queued behind what waits, so that order is kept. Waiting here on a client that does not
        read holds up only that client's own commands.
        """
        if self._writer is not None or self._queue or self._direct:
            self.send_raw(data)
            return
        if self.closed:
            return
        self._direct = True
        try:
            await self._socket.send_frame(data, TEXT_FRAME)
        except (ConnectionError, RuntimeError):
            self.closed = True
        finally:
            self._direct = False
        if self._queue and self._writer is None and not self.closed:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def _cut_off(self) -> None:
        log.warning("connection %s (user %s) too slow to drain its queue; cutting it off", self.id, self.user.id)
        self.closed = True
        self._queue = None
        if self._writer is not None:
            self._writer.cancel()
        # A polite close frame would queue behind the data the client is not reading: drop the
        # connection instead. The client reconnects and resumes.
        if self._abort is not None:
            self._abort()
        else:
            asyncio.get_running_loop().create_task(self.close(CLOSE_TOO_SLOW, "too slow"))

    async def _write_loop(self, started: _Resumed | None = None) -> None:
        try:
            if started is not None:
                await started
            while self._queue:
                await self._socket.send_frame(self._queue.popleft(), TEXT_FRAME)
            self._queue = None
        except (ConnectionError, RuntimeError):
            self.closed = True
        finally:
            self._writer = None

    async def stop(self) -> None:
        """Let queued messages go out (briefly), then stop writing."""
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(writer), 2.0)
            writer.cancel()
        self.closed = True

    def end_access(self, reason: str) -> None:
        """The credential behind this socket no longer holds: nothing more goes out, and it closes."""
        if self.closed:
            return
        self.closed = True
        if self._queue:
            self._queue.clear()
        asyncio.get_running_loop().create_task(self._socket.close(code=CLOSE_ACCESS_ENDED, message=reason.encode()))

    async def close(self, code: int, reason: str) -> None:
        self.closed = True
        await self._socket.close(code=code, message=reason.encode())


class _Resumed:
    """Awaiting this finishes a coroutine that was stepped by hand and stopped at `waiting` (what it yielded
    to the event loop: a future to wait for)."""

    __slots__ = ("_coro", "_waiting")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        self._coro = coro
        self._waiting = waiting

    def __await__(self) -> Generator[Any, None, None]:
        coro, waiting = self._coro, self._waiting
        while True:
            try:
                yield waiting
            except BaseException as exc:  # a cancellation goes on into the coroutine
                try:
                    waiting = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting = coro.send(None)
                except StopIteration:
                    return
