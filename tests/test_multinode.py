"""Two real server processes sharing one Redis and one database: matching and signaling across nodes."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from telehealth.records.consent import synthetic_signature
from tests.conftest import PG_URL, TEST_SECRET, create_pg_database
from tests.support.processes import ServerProcess, free_port
from tests.support.wsclient import Node

SIGNATURE = synthetic_signature()
REDIS_URL = "redis://127.0.0.1:6379/0"
CREATE = {
    "patient": {"name": "Sun Li", "sex": "male", "birth_year": 1971}, "specialty": "cardiology",
    "urgency": "routine", "chief_complaint": "exertional chest tightness",
    "consent": {"by": "patient", "name": "Sun Li", "signature": SIGNATURE},
}

pytestmark = pytest.mark.slow


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[list[Node]]:
    prefix = f"mn{uuid.uuid4().hex[:8]}"
    drop = None
    if PG_URL:
        db_url, drop = await create_pg_database()
    else:
        db_url = f"sqlite+aiosqlite:///{tmp_path / 'shared.sqlite3'}"
    env = {"TELEHEALTH_SECRET_KEY": TEST_SECRET, "TELEHEALTH_PROFILE": "test", "TELEHEALTH_REDIS_PREFIX": prefix,
           "TELEHEALTH_MATCHING__RING_TIMEOUT_S": "10"}
    common = ("--database-url", db_url, "--redis-url", REDIS_URL, "--data-dir", str(tmp_path), "--demo")
    if PG_URL:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "telehealth", "migrate", "--database-url", db_url, env={**os.environ, **env})
        assert await proc.wait() == 0
    nodes: list[ServerProcess] = []
    try:
        # The first node seeds the demo alliance; the second finds it there.
        for name in ("node-a", "node-b"):
            node = ServerProcess(name, free_port(), env, tmp_path, *common)
            nodes.append(node)
            await node.wait_ready()
        clients = [Node(n.base) for n in nodes]
        yield clients
        for c in clients:
            await c.close()
    finally:
        for n in nodes:
            n.stop()
        client = aioredis.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(match=f"{{{prefix}}}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        if drop is not None:
            await drop()


async def test_a_clinic_on_one_node_reaches_a_specialist_on_the_other(cluster: list[Node]) -> None:
    a, b = cluster
    specialist = await b.connect("cardio.chief")
    await specialist.ok("presence.set", status="available")
    clinic = await a.connect("village1")
    cid = (await clinic.ok("consultation.create", **CREATE))["consultation"]["id"]
    await specialist.event("offer", consultation_id=cid, timeout=10)
    sid = (await specialist.ok("offer.accept", consultation_id=cid))["session_id"]
    await clinic.event("session_ready", session_id=sid, timeout=10)
    await specialist.ok("session.join", consultation_id=cid)
    await clinic.ok("session.join", consultation_id=cid)
    sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    await specialist.ok("session.signal", session_id=sid, kind="offer", payload={"sdp": sdp})
    got = await clinic.event("signal", session_id=sid, kind="offer", timeout=10)
    assert got["payload"]["sdp"] == sdp
    intruder = await a.connect("med.assoc")
    assert await intruder.error("session.signal", session_id=sid, kind="offer", payload={"sdp": sdp}) == "forbidden"


async def test_specialists_on_both_nodes_race_take_next_and_each_request_goes_once(cluster: list[Node]) -> None:
    a, b = cluster
    clinic = await a.connect("village3")
    created = [(await clinic.ok("consultation.create", **CREATE))["consultation"]["id"] for _ in range(20)]
    racers = [await node.connect(name) for name in ("cardio.chief", "cardio.attending", "med.assoc")
              for node in (a, b)]

    async def drain(peer: object) -> list[int]:
        won = []
        while True:
            result = await peer.ok("consultation.take_next")  # type: ignore[attr-defined]
            if result["consultation"] is None:
                return won
            won.append(result["consultation"]["id"])

    results = await asyncio.gather(*(drain(r) for r in racers))
    taken = [cid for won in results for cid in won]
    assert sorted(taken) == sorted(created)  # every request once, none twice, none left
    assert sum(1 for won in results if won) >= 2  # the work really was shared


@pytest.mark.media
async def test_a_real_call_between_a_clinic_and_a_specialist_on_different_nodes(
        cluster: list[Node], monkeypatch: pytest.MonkeyPatch) -> None:
    import aioice.ice

    from telehealth.media import CallPeer, TelehealthClient
    from telehealth.records.seed import DEMO_PASSWORD

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    a, b = cluster
    specialist = await TelehealthClient.login(b.base, "cardio.chief", DEMO_PASSWORD)
    clinic = await TelehealthClient.login(a.base, "village2", DEMO_PASSWORD)
    peers: list[CallPeer] = []
    try:
        await specialist.call("presence.set", status="available")
        cid = (await clinic.call("consultation.create", **CREATE))["consultation"]["id"]
        await specialist.next_event("offer", consultation_id=cid)
        await specialist.call("offer.accept", consultation_id=cid)
        await clinic.next_event("session_ready", consultation_id=cid)
        peers = [CallPeer(specialist, cid), CallPeer(clinic, cid)]
        for peer in peers:
            await peer.join()
        for peer in peers:
            assert await peer.wait_frames("video", 10) >= 10
            assert await peer.wait_frames("audio", 10) >= 10
    finally:
        for peer in peers:
            await peer.close()
        await specialist.close()
        await clinic.close()
