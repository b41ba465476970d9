"""The envelope over a real WebSocket: the protocol version in `hello`, and an oversized message answered by its id."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from telehealth.records.consent import DATA_URL_PREFIX, MAX_SIGNATURE_BYTES, MAX_SIGNATURE_CHARS
from telehealth.signaling.messages import LEADING_CHARS, PROTOCOL_VERSION, peek_leading_id
from tests.conftest import make_settings
from tests.support.wsclient import Node, serve

PAD = "x" * 300_000  # over the default 262,144-byte limit, under the four times that which is not read at all


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with serve(make_settings(tmp_path)) as n:
        yield n


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)  # type: ignore[no-any-return]


async def test_hello_names_the_protocol_version(node: Node) -> None:
    assert PROTOCOL_VERSION == 1
    token = await node.token("village1")
    ws = await node.http.ws_connect(node.url("/ws"), headers={"Authorization": f"Bearer {token}"})
    hello = await receive(ws)
    assert hello["event"] == "hello" and hello["data"]["protocol"] == 1
    await ws.close()
    ws = await node.http.ws_connect(node.url("/ws"))  # the token as the first message instead
    await ws.send_str(json.dumps({"id": 1, "type": "auth", "token": token}))
    assert (await receive(ws))["success"] is True
    hello = await receive(ws)
    assert hello["event"] == "hello" and hello["data"]["protocol"] == 1
    await ws.close()


async def test_an_oversized_command_is_answered_with_its_own_id(node: Node) -> None:
    peer = await node.connect("village1")
    await peer.raw(json.dumps({"id": 5, "type": "ping", "pad": PAD}))
    assert (await peer.result(5))["error"]["code"] == "message_too_large"
    # The id need not come first, as long as what comes before it is short.
    await peer.raw(json.dumps({"type": "consultation.create", "id": 6, "patient": {"name": "李四"}, "pad": PAD}))
    assert (await peer.result(6))["error"]["code"] == "message_too_large"
    await peer.raw('{\n  "id" : 7 ,\n  "type": "ping", "pad": "' + PAD + '"}')
    assert (await peer.result(7))["error"]["code"] == "message_too_large"
    # Past the message's start, or not a valid id: answered with a null id.
    await peer.raw(json.dumps({"type": "ping", "pad": PAD, "id": 8}))
    await peer.raw(json.dumps({"id": "9", "type": "ping", "pad": PAD}))
    peer.next_id = 9
    assert "pong" in await peer.ok("ping")  # id 10: answered after the two refusals, in order
    unnamed = [r for r in peer.results.values() if r["id"] is None]
    assert [r["error"]["code"] for r in unnamed] == ["message_too_large", "message_too_large"]
    assert 8 not in peer.results and 9 not in peer.results


async def test_an_oversized_auth_message_is_answered_with_its_id(node: Node) -> None:
    ws = await node.http.ws_connect(node.url("/ws"))
    await ws.send_str(json.dumps({"id": 3, "type": "auth", "token": PAD}))
    reply = await receive(ws)
    assert reply["id"] == 3 and reply["error"]["code"] == "message_too_large"
    assert (await ws.receive(timeout=5)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == 1008


@pytest.mark.parametrize(("raw", "expected"), [
    ('{"id": 12, "type": "ping"}', 12),
    ('  {"type": "ping", "x": [1, {"id": 99}], "id": 12}', 12),  # a nested id is not the message's
    ('{"id": 0, "type": "ping"}', None),
    ('{"id": true}', None),
    ('{"id": 1.5}', None),
    ('["id", 3]', None),
    ('{"type": "ping" "id": 3}', None),
    ('{"id": 12', None),  # the number may go on beyond what was read
    ("", None),
])
def test_peek_leading_id(raw: str, expected: int | None) -> None:
    assert peek_leading_id(raw) == expected
    assert peek_leading_id(raw.encode()) == expected


def test_peek_leading_id_reads_only_the_start() -> None:
    head = '{"type": "ping", "pad": "' + "y" * (LEADING_CHARS - 40) + '", '
    assert peek_leading_id(head + '"id": 4, "more": "' + "z" * 100_000 + '"}') == 4
    assert peek_leading_id('{"type": "ping", "pad": "' + "y" * LEADING_CHARS + '", "id": 4}') is None


async def test_the_largest_valid_request_fits_one_message(node: Node) -> None:
    """Every text at its longest, in Chinese written as \\uXXXX escapes, and the largest signature allowed:
    accepted over the WebSocket; one byte more of signature is refused by the signature's own rule."""
    png = b"\x89PNG\r\n\x1a\n" + bytes(MAX_SIGNATURE_BYTES - 8)
    signature = DATA_URL_PREFIX + base64.b64encode(png).decode()
    assert len(signature) == MAX_SIGNATURE_CHARS
    han = "脑"
    body = {"patient": {"name": han * 200, "sex": "female", "birth_year": 1962, "local_id": han * 100},
            "specialty": "cardiology", "urgency": "routine", "chief_complaint": han * 1000,
            "history": han * 4000, "reason": han * 4000, "purpose": han * 4000,
            "consent": {"by": "guardian", "name": han * 200, "relation": han * 100, "signature": signature}}
    peer = await node.connect("village1")
    created = await peer.ok("consultation.create", **body)
    assert created["consultation"]["state"] == "queued"
    over = DATA_URL_PREFIX + base64.b64encode(png + b"\0\0\0").decode()
    reply = await peer.call("consultation.create", **{**body, "consent": {**body["consent"], "signature": over}})
    assert reply["error"]["code"] == "invalid_message" and "consent.signature" in reply["error"]["message_en"]
