"""A Python client of the WebSocket protocol (docs/protocol.md): for tests, benchmarks and integrations."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import aiohttp


class ProtocolError(Exception):
    """The server answered a command with an error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class TelehealthClient:
    """One WebSocket connection: numbered commands matched to their results, and every event buffered.

    Events are kept in order, so `next_event` never misses one that arrived before it was called.
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.user: dict[str, Any] = {}
        # The node that greeted this connection (behind a balancer, whichever it picked).
        self.node = ""
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._seen = 0
        self._changed = asyncio.Event()
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []

    @classmethod
    async def login(cls, base_url: str, username: str, password: str, *, code: str = "",
                    **kwargs: Any) -> TelehealthClient:
        """Get an API token with a username and password (and, for an account with a second factor, the
        authenticator app's current code or a recovery code), then connect."""
        credentials = {"username": username, "password": password, "label": "python client"}
        if code:
            credentials["code"] = code
        async with aiohttp.ClientSession() as http:
            async with http.post(base_url.rstrip("/") + "/api/tokens", json=credentials) as resp:
                body = await resp.json()
                if resp.status != 201:
                    error = body.get("error", {})
                    raise ProtocolError(error.get("code", "auth_failed"), error.get("message", "login failed"))
        client = cls(base_url, body["token"], **kwargs)
        await client.connect()
        return client

    async def connect(self) -> dict[str, Any]:
        """Open the WebSocket and wait for the server's hello."""
        if self._http is None:
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        ws_url = self.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"
        self._ws = await self._http.ws_connect(ws_url, headers={"Authorization": f"Bearer {self.token}"},
                                               heartbeat=20, autoping=True)
        self._reader = asyncio.create_task(self._read(self._ws), name="telehealth-client-reader")
        hello = await self.next_event("hello")
        self.user = hello["user"]
        self.node = str(hello.get("node", ""))
        return hello

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if data.get("type") == "result":
                future = self._pending.pop(data.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif data.get("type") == "event":
                self._events.append((data["event"], data["data"]))
                for listener in list(self.listeners):
                    listener(data["event"], data["data"])
                self._changed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ProtocolError("disconnected", "the connection closed"))
        self._pending.clear()
        self._changed.set()

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed

    async def call(self, type_: str, **fields: Any) -> dict[str, Any]:
        """Send a command and return its result; raise ProtocolError with the server's code on failure."""
        if self._ws is None or self._ws.closed:
            raise ProtocolError("disconnected", "not connected")
        self._next_id += 1
        msg_id = self._next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        await self._ws.send_str(json.dumps({"id": msg_id, "type": type_, **fields}))
        reply = await asyncio.wait_for(future, self.timeout)
        if not reply.get("success"):
            error = reply.get("error", {})
            raise ProtocolError(error.get("code", "unknown"), error.get("message", ""))
        return dict(reply.get("result", {}))

    async def next_event(self, name: str, timeout: float | None = None, **match: Any) -> dict[str, Any]:
        """The first not yet consumed event of this name whose data has the given values."""
        async def wait() -> dict[str, Any]:
            while True:
                for index in range(len(self._events)):
                    event, data = self._events[index]
                    if event == name and all(data.get(k) == v for k, v in match.items()):
                        del self._events[index]
                        return data
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout or self.timeout)

    async def drop(self) -> None:
        """Close the WebSocket as a network failure would (the session stays; see `connect`)."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def close(self) -> None:
        await self.drop()
        if self._http is not None:
            await self._http.close()
            self._http = None
