"""Two real server processes sharing one Redis and one database: matching and signaling across nodes."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
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
async def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[list[Node]]:
    prefix = f"mn{uuid.uuid4().hex[:8]}"
    marker = request.node.get_closest_marker("ring_timeout")
    ring = str(marker.args[0]) if marker else "10"
    drop = None
    if PG_URL:
        db_url, drop = await create_pg_database()
    else:
        db_url = f"sqlite+aiosqlite:///{tmp_path / 'shared.sqlite3'}"
    env = {"TELEHEALTH_SECRET_KEY": TEST_SECRET, "TELEHEALTH_PROFILE": "test", "TELEHEALTH_REDIS_PREFIX": prefix,
           "TELEHEALTH_MATCHING__RING_TIMEOUT_S": ring, "TELEHEALTH_MATCHING__SWEEP_INTERVAL_S": "0.2"}
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


@pytest.mark.ring_timeout(1.5)
async def test_accept_ring_timeout_and_cancel_at_the_same_instant(cluster: list[Node]) -> None:
    """The rung specialist accepts right at the end of the ring, the clinic cancels at that moment and
    colleagues on the other node try to take it: each consultation ends with one owner or none, and its
    event log says how."""
    a, b = cluster
    clinic = await a.connect("village4")
    specialists = {"cardio.chief": await a.connect("cardio.chief"),
                   "cardio.attending": await b.connect("cardio.attending")}
    for peer in specialists.values():
        await peer.ok("presence.set", status="available")
    outcomes: dict[int, dict[str, object]] = {}
    for i in range(16):
        cid = (await clinic.ok("consultation.create", **CREATE))["consultation"]["id"]
        offer, rung = None, None
        waited = time.time()
        while offer is None:
            assert time.time() - waited < 20, (i, "no offer")
            for name, peer in specialists.items():
                if peer.has_event("offer", consultation_id=cid):
                    offer, rung = await peer.event("offer", consultation_id=cid), name
            await asyncio.sleep(0.02)
        other = next(n for n in specialists if n != rung)
        # From 150 ms before the ring's end to 150 ms after it, in steps.
        await asyncio.sleep(max(0.0, float(offer["deadline"]) - time.time() - 0.15 + 0.02 * i))
        moves = [specialists[rung].call("offer.accept", consultation_id=cid)]
        if i % 2 == 0:
            moves.append(clinic.call("consultation.cancel", consultation_id=cid))
        if i % 3 == 0:
            moves.append(specialists[other].call("consultation.take", consultation_id=cid))
        replies = await asyncio.gather(*moves)
        outcomes[cid] = {"accept": replies[0]["success"],
                         "cancel": replies[1]["success"] if i % 2 == 0 else None,
                         "take": replies[-1]["success"] if i % 3 == 0 else None, "rung": rung, "other": other}
        # Tidy up so the next round starts with an empty queue and everyone available: a request nobody
        # got is withdrawn (it would otherwise be rung again ahead of the next one).
        await clinic.call("consultation.cancel", consultation_id=cid)
        for peer in specialists.values():
            await peer.ok("presence.set", status="available")


    ids = {name: (await a.token(name)) for name in ("village4",)}
    owners = {"cardio.chief": None, "cardio.attending": None}
    async with aiohttp.ClientSession() as http:
        for name in owners:
            async with http.get(a.url("/api/me"), headers={"Authorization": f"Bearer {await a.token(name)}"}) as r:
                owners[name] = (await r.json())["user"]["id"]
        for cid, o in outcomes.items():
            headers = {"Authorization": f"Bearer {ids['village4']}"}
            async with http.get(a.url(f"/api/consultations/{cid}/events"), headers=headers) as r:
                events = (await r.json())["events"]
            async with http.get(a.url(f"/api/consultations/{cid}"), headers=headers) as r:
                state = (await r.json())["consultation"]
            kinds = [e["kind"] for e in events]
            winners = [str(o[w]) for w, ok in (("rung", o["accept"]), ("other", o["take"])) if ok]
            accepted = [e for e in events if e["kind"] == "accepted"]
            # Never two owners: one claim at most got through, to the store and to its specialist.
            assert len(winners) <= 1 and len(accepted) <= 1, (cid, o, kinds)
            if winners:
                assert accepted and accepted[0]["actor_id"] == owners[winners[0]], (cid, o, kinds)
            if state["state"] == "cancelled":
                # Withdrawn, possibly right after a specialist's claim (the log then shows both, in order).
                assert kinds[-1] == "cancelled" or "cancelled" in kinds, (cid, kinds)
            else:
                assert state["state"] in ("accepted", "in_call"), (cid, state)
                assert len(accepted) == 1 and "cancelled" not in kinds, (cid, kinds)
                assert state.get("assigned_specialist_id") == accepted[0]["actor_id"], (cid, state, accepted)
            if not accepted:
                # Nobody got it: the log says why (the ring ran out, or the clinic withdrew first).
                assert "ring_timeout" in kinds or "cancelled" in kinds, (cid, o, kinds)
