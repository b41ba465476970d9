"""A protocol-level WebSocket client for tests: numbered commands, results by id, buffered events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from telehealth.config import Settings
from telehealth.records.seed import DEMO_PASSWORD
from telehealth.server.app import create_app


class Peer:
    """A protocol-level client: numbered commands, results matched by id, events collected."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.results: dict[int, dict[str, Any]] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.reader = asyncio.create_task(self._read())
        self.changed = asyncio.Event()

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if data.get("type") == "result":
                self.results[data["id"] if data["id"] is not None else -len(self.results) - 1] = data
            else:
                self.events.append((data["event"], data["data"]))
            self.changed.set()

    async def raw(self, text: str) -> None:
        await self.ws.send_str(text)

    async def call(self, type_: str, **body: Any) -> dict[str, Any]:
        self.next_id += 1
        msg_id = self.next_id
        await self.ws.send_str(json.dumps({"id": msg_id, "type": type_, **body}))
        return await self.result(msg_id)

    async def result(self, msg_id: int, timeout: float = 5) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            while msg_id not in self.results:
                self.changed.clear()
                await self.changed.wait()
            return self.results[msg_id]

        return await asyncio.wait_for(wait(), timeout)

    async def ok(self, type_: str, **body: Any) -> dict[str, Any]:
        reply = await self.call(type_, **body)
        assert reply["success"], reply
        return reply["result"]  # type: ignore[no-any-return]

    async def error(self, type_: str, **body: Any) -> str:
        reply = await self.call(type_, **body)
        assert not reply["success"], reply
        return reply["error"]["code"]  # type: ignore[no-any-return]

    async def event(self, name: str, timeout: float = 5, **match: Any) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            seen = 0
            while True:
                for ev, data in self.events[seen:]:
                    if ev == name and all(data.get(k) == v for k, v in match.items()):
                        return data
                seen = len(self.events)
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    def has_event(self, name: str, **match: Any) -> bool:
        return any(ev == name and all(d.get(k) == v for k, v in match.items()) for ev, d in self.events)

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


class Node:
    """One server (a TestServer, or a base URL of a server process) and the clients connected to it."""

    def __init__(self, server: TestServer | str) -> None:
        self.server = server
        self.base = server.rstrip("/") if isinstance(server, str) else str(server.make_url("")).rstrip("/")
        self.http = aiohttp.ClientSession()
        self.peers: list[Peer] = []

    def url(self, path: str) -> str:
        return self.base + path

    async def token(self, username: str) -> str:
        resp = await self.http.post(self.url("/api/tokens"), json={"username": username, "password": DEMO_PASSWORD})
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["token"])

    async def connect(self, username: str) -> Peer:
        token = await self.token(username)
        ws = await self.http.ws_connect(self.url("/ws"), headers={"Authorization": f"Bearer {token}"})
        peer = Peer(ws)
        self.peers.append(peer)
        hello = await peer.event("hello")
        assert hello["user"]["name"]
        return peer

    async def close(self) -> None:
        for peer in self.peers:
            await peer.close()
        await self.http.close()


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Node]:
    """A real server on a loopback port, built by the app factory, and a Node to talk to it."""
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    node = Node(server)
    try:
        yield node
    finally:
        await node.close()
        await server.close()
