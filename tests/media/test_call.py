"""Real calls between two aiortc peers through the server: direct, relayed by coturn, across a WebSocket drop."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from telehealth.media import CallPeer, ProtocolError, TelehealthClient
from telehealth.records.consent import synthetic_signature
from telehealth.records.seed import DEMO_PASSWORD
from tests.media.conftest import Turn, start_server

SIGNATURE = synthetic_signature()
pytestmark = pytest.mark.media

CREATE = {
    "patient": {"name": "Zhou Wen", "sex": "male", "birth_year": 1966}, "specialty": "cardiology",
    "urgency": "urgent", "chief_complaint": "palpitations", "consent": {"by": "patient", "name": "Zhou Wen", "signature": SIGNATURE},
}


async def login(server: TestServer, username: str) -> TelehealthClient:
    return await TelehealthClient.login(str(server.make_url("")), username, DEMO_PASSWORD)


async def accepted(server: TestServer) -> tuple[TelehealthClient, TelehealthClient, int]:
    """Clinic asks, specialist accepts; nobody has joined the call yet. Returns (clinic, specialist, consultation)."""
    specialist = await login(server, "cardio.chief")
    await specialist.call("presence.set", status="available")
    clinic = await login(server, "village1")
    cid = (await clinic.call("consultation.create", **CREATE))["consultation"]["id"]
    await specialist.next_event("offer", consultation_id=cid)
    await specialist.call("offer.accept", consultation_id=cid)
    return clinic, specialist, cid


async def connect_call(server: TestServer, *, force_relay: bool = False) -> tuple[CallPeer, CallPeer, int]:
    """Clinic asks, specialist accepts; both join with real media. Returns (clinic, specialist, consultation)."""
    clinic, specialist, cid = await accepted(server)
    await clinic.next_event("session_ready", consultation_id=cid)
    s_peer = CallPeer(specialist, cid, force_relay=force_relay)
    c_peer = CallPeer(clinic, cid, force_relay=force_relay)
    await s_peer.join()
    await c_peer.join()
    return c_peer, s_peer, cid


async def finish(*peers: CallPeer) -> None:
    for peer in peers:
        await peer.close()
        await peer.client.close()


async def test_the_clinic_offers_before_the_specialist_has_joined(server: TestServer) -> None:
    """The clinic joins and offers at once; the server keeps the offer and hands it over with the specialist's join."""
    clinic, specialist, cid = await accepted(server)
    c_peer, s_peer = CallPeer(clinic, cid), CallPeer(specialist, cid)
    try:
        joined_c = await c_peer.join()
        assert joined_c["role"] == "offerer" and joined_c["peer_expected"] is True
        joined_s = await s_peer.join()
        assert [k["kind"] for k in joined_s["signals"]][:1] == ["offer"]
        for peer in (c_peer, s_peer):
            assert await peer.wait_frames("audio", 10) >= 10
    finally:
        await finish(c_peer, s_peer)


async def test_the_peer_joining_while_the_offer_is_being_made_gets_one_offer(tmp_path: Path) -> None:
    """The specialist joins while the clinic is still gathering candidates for its offer (a STUN server that
    never answers holds the gathering for seconds): the clinic makes no second offer."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    server = await start_server(tmp_path, matching={"ring_timeout_s": 20},
                                ice={"stun_urls": [f"stun:127.0.0.1:{silent.getsockname()[1]}"]})
    clinic, specialist, cid = await accepted(server)
    offer_ids: set[str] = set()
    specialist.listeners.append(
        lambda name, data: offer_ids.add(data["id"]) if name == "signal" and data["kind"] == "offer" else None)
    c_peer, s_peer = CallPeer(clinic, cid), CallPeer(specialist, cid)
    try:
        clinic_joining = asyncio.create_task(c_peer.join())
        await asyncio.sleep(0.5)
        assert not clinic_joining.done()  # still gathering for its offer
        joined_s = await s_peer.join()
        await clinic_joining
        for peer in (c_peer, s_peer):
            assert await peer.wait_frames("audio", 10, timeout=30) >= 10
        offer_ids.update(k["id"] for k in joined_s["signals"] if k["kind"] == "offer")
        assert len(offer_ids) == 1
    finally:
        await finish(c_peer, s_peer)
        await server.close()
        silent.close()


async def test_an_answerer_whose_offer_never_comes_asks_for_one(server: TestServer) -> None:
    clinic, specialist, cid = await accepted(server)
    # The clinic joins but its offer is lost: it never sends one.
    sid = (await clinic.call("session.join", consultation_id=cid))["session_id"]
    s_peer = CallPeer(specialist, cid, offer_wait_s=0.3)
    try:
        await s_peer.join()
        asked = await clinic.next_event("signal", session_id=sid, kind="restart_request", timeout=5)
        assert asked["from"] != 0
        # An offer now (as the clinic's page makes on this request) is answered.
        c_peer = CallPeer(clinic, cid)
        await c_peer.join()
        assert await c_peer.wait_frames("audio", 10) >= 10
        await c_peer.close()
    finally:
        await finish(s_peer)
        await clinic.close()


async def test_a_full_call_with_media_both_ways(server: TestServer) -> None:
    clinic, specialist, _cid = await connect_call(server)
    try:
        for peer in (clinic, specialist):
            assert await peer.wait_frames("video", 10) >= 10
            assert await peer.wait_frames("audio", 10) >= 10
        assert not clinic.relayed()
        await specialist.hangup()
        ended = await clinic.client.next_event("session_ended", session_id=clinic.session_id)
        assert ended["reason"] == "hangup" and ended["consultation_state"] == "ended"
    finally:
        await finish(clinic, specialist)


async def test_a_call_forced_through_coturn(tmp_path: Path, coturn: Turn) -> None:
    server = await start_server(tmp_path, ice={"turn_urls": (coturn.url,), "secret": coturn.secret})
    clinic, specialist, _ = await connect_call(server, force_relay=True)
    try:
        assert clinic.ice_servers[0]["username"].endswith(":" + str(clinic.client.user["id"]))
        for peer in (clinic, specialist):
            assert await peer.wait_frames("video", 10, timeout=30) >= 10
        assert clinic.relayed() and specialist.relayed()
    finally:
        await finish(clinic, specialist)
        await server.close()


async def test_media_flows_through_a_websocket_drop_and_the_session_resumes(server: TestServer) -> None:
    clinic, specialist, _ = await connect_call(server)
    try:
        await clinic.wait_frames("video", 10)
        await clinic.client.drop()
        left = await specialist.client.next_event("peer_left", session_id=specialist.session_id)
        assert left["reason"] == "connection_lost"
        during = clinic.frames["video"]
        await clinic.wait_frames("video", during + 10)  # peer to peer, with no signaling connection
        await clinic.client.connect()
        resumed = await clinic.resume()
        assert resumed["resumed"] is True and resumed["session_id"] == clinic.session_id
        await specialist.client.next_event("peer_joined", session_id=specialist.session_id, resumed=True)
        after = specialist.frames["video"]
        await specialist.wait_frames("video", after + 10)
    finally:
        await finish(clinic, specialist)


async def test_a_third_users_signaling_is_refused(server: TestServer) -> None:
    clinic, specialist, cid = await connect_call(server)
    outsiders = [await login(server, "med.assoc"), await login(server, "village2")]
    try:
        for outsider in outsiders:
            with pytest.raises(ProtocolError) as info:
                await outsider.call("session.signal", session_id=clinic.session_id, kind="offer",
                                    payload={"sdp": "v=0\r\n"})
            assert info.value.code == "forbidden"
            with pytest.raises(ProtocolError) as info:
                await outsider.call("session.join", consultation_id=cid)
            assert info.value.code == "forbidden"
        await asyncio.sleep(0.2)
        assert await clinic.wait_frames("video", 5) >= 5  # the call went on untouched
    finally:
        for outsider in outsiders:
            await outsider.close()
        await finish(clinic, specialist)
