"""Connections under stress and at shutdown: a client too slow to read is cut off alone; shutting down tells
everyone to reconnect and leaves every consultation consistent."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from telehealth.records.consent import synthetic_signature
from telehealth.server import keys
from tests.conftest import TEST_SECRET, make_settings
from tests.support.processes import ServerProcess, free_port
from tests.support.wsclient import Node, serve

CREATE = {
    "patient": {"name": "Qian Yu", "sex": "female", "birth_year": 1990}, "specialty": "paediatrics",
    "urgency": "urgent", "chief_complaint": "fever in an infant", "consent": {"by": "guardian", "name": "Qian Hua",
                                                                             "relation": "mother",
                                                                             "signature": synthetic_signature()},
}


@pytest.fixture
async def tight_node(tmp_path: Path) -> AsyncIterator[Node]:
    settings = make_settings(tmp_path, signaling={"send_queue_size": 8, "rate_per_s": 100000, "rate_burst": 100000})
    async with serve(settings) as node:
        yield node


async def start_call(node: Node) -> tuple[object, object, int, int]:
    specialist = await node.connect("paeds.assoc")
    await specialist.ok("presence.set", status="available")
    clinic = await node.connect("village4")
    cid = (await clinic.ok("consultation.create", **CREATE))["consultation"]["id"]
    await specialist.event("offer", consultation_id=cid)
    sid = (await specialist.ok("offer.accept", consultation_id=cid))["session_id"]
    await specialist.ok("session.join", consultation_id=cid)
    await clinic.ok("session.join", consultation_id=cid)
    return clinic, specialist, cid, sid


async def raw_ws(host: str, port: int, token: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket handshake by hand, so the test controls whether the client ever reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the stall shows sooner
    sock.connect((host, port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Bearer {token}\r\n\r\n").encode())
    await writer.drain()
    status = await reader.readuntil(b"\r\n\r\n")
    assert b" 101 " in status.split(b"\r\n")[0]
    return reader, writer


def masked_text_frame(text: str) -> bytes:
    """A client-to-server WebSocket text frame (clients must mask)."""
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81]) + (bytes([0x80 | len(payload)]) if len(payload) < 126
                              else bytes([0x80 | 126]) + len(payload).to_bytes(2, "big"))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_a_client_too_slow_to_read_is_cut_off_without_slowing_others(tight_node: Node) -> None:
    node = tight_node
    clinic, specialist, cid, sid = await start_call(node)
    # A second tab of the specialist that never reads what it is sent.
    server = node.server
    assert isinstance(server, TestServer)
    _reader, writer = await raw_ws(server.host, server.port, await node.token("paeds.assoc"))
    # It joins the call too (a second tab), so the call's chat is sent to it as well.
    writer.write(masked_text_frame(json.dumps({"id": 1, "type": "session.join", "consultation_id": cid})))
    await writer.drain()
    await asyncio.sleep(0.2)
    bystander = await node.connect("village5")
    text = "x" * 1900
    for i in range(3000):
        reply = await clinic.call("session.chat", session_id=sid, text=f"{i} {text}")  # type: ignore[attr-defined]
        assert reply["success"]
    # The reading tab got every line; the stalled one was closed by the server.
    assert (await bystander.ok("ping"))["pong"]
    await specialist.event("chat", session_id=sid, text=f"2999 {text}", timeout=20)  # type: ignore[attr-defined]
    hub = server.app[keys.HUB]
    specialist_id = specialist.events[0][1]["user"]["id"]  # type: ignore[attr-defined]
    for _ in range(50):
        if len(hub.connections_of(specialist_id)) == 1:
            break
        await asyncio.sleep(0.1)
    assert len(hub.connections_of(specialist_id)) == 1  # the stalled tab is gone, the reading one stays
    writer.transport.abort()


async def test_shutdown_tells_clients_to_reconnect_and_closes_sessions_consistently(tmp_path: Path) -> None:
    env = {"TELEHEALTH_SECRET_KEY": TEST_SECRET, "TELEHEALTH_PROFILE": "test"}
    proc = ServerProcess("lone", free_port(), env, tmp_path, "--demo", "--data-dir", str(tmp_path / "data"))
    await proc.wait_ready()
    node = Node(proc.base)
    try:
        clinic, specialist, cid, sid = await start_call(node)
        exit_code = await asyncio.to_thread(proc.stop, 15)
        assert exit_code == 0
        for peer in (clinic, specialist):
            await peer.event("reconnect", timeout=5)  # type: ignore[attr-defined]
            await asyncio.sleep(0.1)
            assert peer.ws.close_code == aiohttp.WSCloseCode.GOING_AWAY  # type: ignore[attr-defined]
    finally:
        await node.close()
    # Start again on the same data: the session was ended with its reason, the consultation can resume.
    again = ServerProcess("lone-again", free_port(), env, tmp_path, "--data-dir", str(tmp_path / "data"))
    await again.wait_ready()
    node = Node(again.base)
    try:
        token = await node.token("village4")
        resp = await node.http.get(node.url(f"/api/consultations/{cid}"), headers={"Authorization": f"Bearer {token}"})
        body = await resp.json()
        assert body["consultation"]["state"] == "accepted"
        assert body["consultation"]["sessions"][0]["end_reason"] == "server_shutdown"
        clinic = await node.connect("village4")
        rejoined = await clinic.ok("session.join", consultation_id=cid)
        assert rejoined["session_id"] != sid
    finally:
        await node.close()
        again.stop()


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One server-to-client WebSocket frame (unmasked): (opcode, payload)."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return first & 0x0F, await reader.readexactly(length)


async def test_a_client_that_stops_reading_for_a_while_gets_everything_in_order(tmp_path: Path) -> None:
    """Messages are written at once while the socket takes them; once its buffer is full, the send that had to
    wait is finished by the writer, the rest queue behind it, and the client that reads again gets them all, in
    order."""
    settings = make_settings(tmp_path, signaling={"send_queue_size": 5000, "rate_per_s": 100000,
                                                  "rate_burst": 100000})
    async with serve(settings) as node:
        clinic, _specialist, cid, sid = await start_call(node)
        server = node.server
        assert isinstance(server, TestServer)
        reader, writer = await raw_ws(server.host, server.port, await node.token("paeds.assoc"))
        writer.write(masked_text_frame(json.dumps({"id": 1, "type": "session.join", "consultation_id": cid})))
        await writer.drain()
        joined = False
        while not joined:  # hello, then the join's answer (and any event before it)
            _, payload = await read_frame(reader)
            joined = json.loads(payload).get("id") == 1
        # The tab stops reading: 3,000 lines of 1,900 characters are more than the socket buffers hold.
        text = "x" * 1900
        for i in range(3000):
            assert (await clinic.call("session.chat", session_id=sid, text=f"{i} {text}"))["success"]
        hub = server.app[keys.HUB]
        specialist_id = _specialist.events[0][1]["user"]["id"]  # type: ignore[attr-defined]
        stalled = [c for c in hub.connections_of(specialist_id) if c._queue]
        assert stalled, "the stalled tab should have messages waiting in its queue"
        seen: list[int] = []
        while len(seen) < 3000:
            opcode, payload = await asyncio.wait_for(read_frame(reader), 10)
            message = json.loads(payload)
            if opcode == 0x1 and message.get("event") == "chat":
                seen.append(int(message["data"]["text"].split(" ", 1)[0]))
        assert seen == list(range(3000))
        writer.transport.abort()
