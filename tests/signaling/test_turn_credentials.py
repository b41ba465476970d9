"""TURN credentials over the real WebSocket: only a participant of a call that is to come (accepted) or in
progress gets them, for the call's expected length (`ice.call_length_s`); anyone else, or at any other time,
gets STUN alone or a refusal with its code."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_settings
from tests.signaling.test_protocol import CREATE
from tests.support.wsclient import Node, Peer, serve

STUN = "stun:127.0.0.1:3478"
TURN = "turn:127.0.0.1:3478?transport=udp"
CALL_LENGTH_S = 1500


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    ice = {"stun_urls": [STUN], "turn_urls": [TURN], "secret": "coturn-static-auth-secret",
           "call_length_s": CALL_LENGTH_S}
    async with serve(make_settings(tmp_path, ice=ice)) as n:
        yield n


def turn_of(servers: list[dict[str, Any]]) -> dict[str, Any] | None:
    relays = [s for s in servers if s["urls"] == [TURN]]
    assert len(relays) <= 1
    return relays[0] if relays else None


async def credential_expiry(peer: Peer, user_id: int, servers_of: Any) -> None:
    """The TURN entry is there, for this user, and expires the call's length after it was given."""
    before = int(time.time())
    servers = await servers_of()
    after = int(time.time())
    assert servers[0] == {"urls": [STUN]}
    turn = turn_of(servers)
    assert turn is not None and turn["credential"]
    expiry, _, user = turn["username"].partition(":")
    assert user == str(user_id)
    assert before + CALL_LENGTH_S <= int(expiry) <= after + CALL_LENGTH_S


async def test_turn_goes_only_to_the_participants_of_an_accepted_or_running_call(node: Node) -> None:
    specialist = await node.connect("cardio.chief")
    await specialist.ok("presence.set", status="available")
    other_specialist = await node.connect("cardio.attending")
    clinic = await node.connect("village1")
    other_clinic = await node.connect("village2")

    created = await clinic.ok("consultation.create", **CREATE)
    cid = created["consultation"]["id"]
    # Waiting: the page makes its connection ready with STUN; nobody is in a call yet.
    assert created["ice_servers"] == [{"urls": [STUN]}]
    assert await clinic.error("call.ice_servers", consultation_id=cid) == "no_call"
    await specialist.event("offer", consultation_id=cid)
    # Rung is not accepted: the specialist is not (yet) in the call.
    assert await specialist.error("call.ice_servers", consultation_id=cid) == "forbidden"
    watched = await clinic.ok("consultation.watch", consultation_id=cid)
    assert turn_of(watched["ice_servers"]) is None

    sid = (await specialist.ok("offer.accept", consultation_id=cid))["session_id"]
    ready_c = await clinic.event("session_ready", session_id=sid)
    ready_s = await specialist.event("session_ready", session_id=sid)
    # The user ids, from the credentials the session gives them.
    clinic_id = int(turn_of(ready_c["ice_servers"])["username"].split(":")[1])  # type: ignore[index]
    specialist_id = int(turn_of(ready_s["ice_servers"])["username"].split(":")[1])  # type: ignore[index]
    assert clinic_id != specialist_id

    # Accepted, the call to come: both participants get TURN, by asking and by watching; nobody else does.
    async def asked(peer: Peer) -> Any:
        return (await peer.ok("call.ice_servers", consultation_id=cid))["ice_servers"]

    async def watching() -> Any:
        return (await clinic.ok("consultation.watch", consultation_id=cid))["ice_servers"]

    await credential_expiry(clinic, clinic_id, lambda: asked(clinic))
    await credential_expiry(specialist, specialist_id, lambda: asked(specialist))
    await credential_expiry(clinic, clinic_id, watching)
    assert await other_specialist.error("call.ice_servers", consultation_id=cid) == "forbidden"
    assert await other_clinic.error("call.ice_servers", consultation_id=cid) == "forbidden"
    assert await clinic.error("call.ice_servers", consultation_id=999999) == "not_found"

    # In progress: the join gives them, and so does asking again (a long call renews its credentials).
    async def joined(peer: Peer) -> Any:
        return (await peer.ok("session.join", consultation_id=cid))["ice_servers"]

    await credential_expiry(specialist, specialist_id, lambda: joined(specialist))
    await credential_expiry(clinic, clinic_id, lambda: joined(clinic))
    await specialist.event("peer_joined", session_id=sid)
    await credential_expiry(clinic, clinic_id, lambda: asked(clinic))
    assert await other_specialist.error("call.ice_servers", consultation_id=cid) == "forbidden"

    # Over: nothing left to relay.
    await clinic.ok("session.hangup", session_id=sid)
    await specialist.event("session_ended", session_id=sid)
    assert await clinic.error("call.ice_servers", consultation_id=cid) == "no_call"
    assert await specialist.error("call.ice_servers", consultation_id=cid) == "no_call"


async def test_the_refusal_is_in_both_languages(node: Node) -> None:
    clinic = await node.connect("village1")
    cid = (await clinic.ok("consultation.create", **CREATE))["consultation"]["id"]
    reply = await clinic.call("call.ice_servers", consultation_id=cid)
    assert not reply["success"] and reply["error"]["code"] == "no_call"
    text = str(reply["error"])
    assert "there is no call to come or in progress" in text and "没有即将开始或正在进行的通话" in text


async def test_the_connection_check_gets_turn_for_as_long_as_a_check_takes(node: Node) -> None:
    from telehealth.services.prechecks import CHECK_SETUP_S

    token = await node.token("village1")
    before = int(time.time())
    async with node.http.get(node.url("/api/precheck/config"), headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200
        config = await resp.json()
    after = int(time.time())
    turn = turn_of(config["ice_servers"])
    assert turn is not None
    expiry = int(turn["username"].split(":")[0])
    # The test profile's check lets media flow 2 s.
    assert before + 2 + CHECK_SETUP_S <= expiry <= after + 2 + CHECK_SETUP_S
