"""The WebSocket protocol over real sockets: auth, envelope errors, the consultation flow, relay rules, reconnect."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from telehealth.records.consent import synthetic_signature
from telehealth.records.seed import DEMO_PASSWORD
from telehealth.server import keys
from tests.conftest import csrf_from, make_settings
from tests.support.wsclient import Node, Peer, serve

SIGNATURE = synthetic_signature()
SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with serve(make_settings(tmp_path)) as n:
        yield n


CREATE = {
    "patient": {"name": "李四", "sex": "female", "birth_year": 1962, "local_id": "DC-7"},
    "specialty": "cardiology", "urgency": "urgent", "chief_complaint": "palpitations since morning",
    "consent": {"by": "patient", "name": "李四", "signature": SIGNATURE},
}


async def accepted(node: Node) -> tuple[Peer, Peer, int, int]:
    """Clinic asks, the chief cardiologist takes it; nobody has joined the call. (clinic, specialist, cid, sid)"""
    specialist = await node.connect("cardio.chief")
    await specialist.ok("presence.set", status="available")
    clinic = await node.connect("village1")
    cid = (await clinic.ok("consultation.create", **CREATE))["consultation"]["id"]
    await specialist.event("offer", consultation_id=cid)
    sid = (await specialist.ok("offer.accept", consultation_id=cid))["session_id"]
    return clinic, specialist, cid, sid


async def start_call(node: Node) -> tuple[Peer, Peer, int, int]:
    """Clinic asks, the chief cardiologist is rung and accepts; both join. (clinic, specialist, consultation, session)"""
    specialist = await node.connect("cardio.chief")
    await specialist.ok("presence.set", status="available")
    clinic = await node.connect("village1")
    created = await clinic.ok("consultation.create", **CREATE)
    cid = created["consultation"]["id"]
    assert isinstance(created["ice_servers"], list)  # the waiting page gets its connection ready
    offer = await specialist.event("offer", consultation_id=cid)
    assert offer["urgency"] == "urgent" and offer["chief_complaint"] == "palpitations since morning"
    accepted = await specialist.ok("offer.accept", consultation_id=cid)
    sid = accepted["session_id"]
    await clinic.event("consultation_state", consultation_id=cid, state="accepted")
    ready = await clinic.event("session_ready", session_id=sid, role="offerer")
    assert isinstance(ready["ice_servers"], list)
    joined_s = await specialist.ok("session.join", consultation_id=cid)
    joined_c = await clinic.ok("session.join", consultation_id=cid)
    assert joined_s["role"] == "answerer" and joined_c["role"] == "offerer"
    assert joined_s["peer_expected"] is True and joined_s["signals"] == []
    assert joined_c["peer_present"] is True and joined_c["peer_expected"] is False
    assert isinstance(joined_c["ice_servers"], list)
    return clinic, specialist, cid, sid


async def test_cookie_auth_and_origin_check(node: Node) -> None:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        page = await http.get(node.url("/login"))
        token = csrf_from(await page.text())
        await http.post(node.url("/login"), data={"username": "village1", "password": DEMO_PASSWORD,
                                                  "csrf_token": token})
        origin = f"http://{node.server.host}:{node.server.port}"
        ws = await http.ws_connect(node.url("/ws"), origin=origin)
        hello = json.loads((await ws.receive()).data)
        assert hello["event"] == "hello" and hello["data"]["user"]["role"] == "clinic_doctor"
        await ws.close()
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(node.url("/ws"), origin="https://evil.example")
        assert info.value.status == 403
    finally:
        await http.close()


async def test_token_auth_phase(node: Node) -> None:
    token = await node.token("village1")
    ws = await node.http.ws_connect(node.url("/ws"))
    await ws.send_str(json.dumps({"id": 1, "type": "auth", "token": "wrong"}))
    reply = json.loads((await ws.receive()).data)
    assert reply["error"]["code"] == "auth_failed"
    assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    ws = await node.http.ws_connect(node.url("/ws"))
    await ws.send_str(json.dumps({"id": 1, "type": "auth", "token": token}))
    assert json.loads((await ws.receive()).data)["success"] is True
    assert json.loads((await ws.receive()).data)["event"] == "hello"
    await ws.close()


async def test_no_auth_within_the_deadline_closes(node: Node) -> None:
    ws = await node.http.ws_connect(node.url("/ws"))
    reply = json.loads((await ws.receive(timeout=5)).data)
    assert reply["error"]["code"] == "auth_timeout"


async def test_bad_messages_get_their_codes_and_change_nothing(node: Node) -> None:
    peer = await node.connect("village1")
    await peer.raw("{not json")
    await peer.raw(json.dumps([1, 2]))
    await peer.raw(json.dumps({"id": "x", "type": "ping"}))
    await asyncio.sleep(0.2)
    codes = [r["error"]["code"] for r in peer.results.values()]
    assert codes == ["invalid_json", "invalid_message", "invalid_message"]
    assert await peer.error("no.such.command") == "unknown_command"
    assert await peer.error("presence.set", status="available") == "forbidden"  # a clinic has no presence
    assert await peer.error("consultation.create", specialty="cardiology") == "invalid_message"
    assert await peer.error("consultation.create", **{**CREATE, "urgency": "whenever"}) == "invalid_message"
    assert await peer.error("consultation.create", **{**CREATE, "extra": 1}) == "invalid_message"
    assert await peer.error("session.signal", session_id=1, kind="offer", payload={"sdp": "garbage"}) \
        == "invalid_message"
    await peer.raw(json.dumps({"id": 1, "type": "ping"}))  # id 1 was used already
    await asyncio.sleep(0.1)
    assert peer.results[1]["error"]["code"] == "id_reused"
    peer.next_id = 100
    await peer.raw(json.dumps({"id": 100, "type": "ping", "pad": "x" * 300_000}))
    await asyncio.sleep(0.2)
    assert any(r.get("error", {}).get("code") == "message_too_large" for r in peer.results.values())
    peer.next_id = 200
    assert "pong" in await peer.ok("ping")  # the connection survived all of it
    listing = await node.http.get(node.url("/api/consultations"),
                                  headers={"Authorization": f"Bearer {await node.token('village1')}"})
    assert (await listing.json())["consultations"] == []  # nothing was created by the bad messages


async def test_rate_limit(node: Node) -> None:
    peer = await node.connect("village1")
    for i in range(1, 260):
        await peer.ws.send_str(json.dumps({"id": i, "type": "ping"}))
    await asyncio.sleep(1.0)
    codes = [r.get("error", {}).get("code") for r in peer.results.values()]
    assert "rate_limited" in codes
    assert codes.count(None) >= 200


async def test_a_whole_consultation_over_the_protocol(node: Node) -> None:
    clinic, specialist, cid, sid = await start_call(node)
    await clinic.ok("session.signal", session_id=sid, kind="offer", payload={"sdp": SDP})
    got = await specialist.event("signal", session_id=sid, kind="offer")
    assert got["payload"]["sdp"] == SDP and got["id"]
    await specialist.ok("session.signal", session_id=sid, kind="answer", payload={"sdp": SDP})
    await clinic.event("signal", session_id=sid, kind="answer")
    await clinic.ok("session.signal", session_id=sid, kind="candidate",
                    payload={"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0"})
    await specialist.event("signal", session_id=sid, kind="candidate")
    await clinic.ok("session.ice_state", session_id=sid, state="connected")
    await clinic.ok("session.quality", session_id=sid, rtt_ms=12.5, loss_pct=0.0, bitrate_kbps=820)
    await clinic.ok("session.chat", session_id=sid, text="血压 150/95")
    chat = await specialist.event("chat", session_id=sid)
    assert chat["text"] == "血压 150/95"
    await specialist.ok("session.hangup", session_id=sid)
    ended = await clinic.event("session_ended", session_id=sid)
    assert ended["reason"] == "hangup" and ended["consultation_state"] == "ended"
    assert await clinic.error("session.signal", session_id=sid, kind="offer", payload={"sdp": SDP}) \
        == "session_ended"
    events = await node.http.get(node.url(f"/api/consultations/{cid}/events"),
                                 headers={"Authorization": f"Bearer {await node.token('village1')}"})
    kinds = [e["kind"] for e in (await events.json())["events"]]
    for kind in ("requested", "queued", "offered", "accepted", "call_started", "session_opened", "joined",
                 "sdp_offer", "sdp_answer", "ice_state", "quality", "session_ended", "call_ended"):
        assert kind in kinds, kind
    assert "李四" not in json.dumps((await events.json())["events"])
    record = await node.http.get(node.url(f"/api/consultations/{cid}"),
                                 headers={"Authorization": f"Bearer {await node.token('village1')}"})
    durations = (await record.json())["consultation"]["durations"]
    assert durations["waiting_s"] >= 0 and durations["ringing_s"] >= 0
    assert durations["talking_s"] > 0  # connected (ice state reported) until the hang-up


async def test_only_the_two_participants_may_signal(node: Node) -> None:
    clinic, specialist, cid, sid = await start_call(node)
    other_clinic = await node.connect("village2")
    other_specialist = await node.connect("med.assoc")
    for outsider in (other_clinic, other_specialist):
        assert await outsider.error("session.signal", session_id=sid, kind="offer",
                                    payload={"sdp": SDP}) == "forbidden"
        assert await outsider.error("session.join", consultation_id=cid) == "forbidden"
        assert await outsider.error("session.hangup", session_id=sid) == "forbidden"
    assert await other_specialist.error("offer.accept", consultation_id=cid) in ("already_claimed", "not_eligible")
    await asyncio.sleep(0.2)
    assert not clinic.has_event("signal") and not specialist.has_event("signal")


async def test_signaling_before_joining_is_refused(node: Node) -> None:
    _clinic, specialist, _cid, sid = await accepted(node)
    assert await specialist.error("session.signal", session_id=sid, kind="offer", payload={"sdp": SDP}) \
        == "not_in_session"


async def test_a_dropped_connection_resumes_within_the_grace_period(node: Node) -> None:
    clinic, specialist, cid, sid = await start_call(node)
    await clinic.close()
    left = await specialist.event("peer_left", session_id=sid)
    assert left["reason"] == "connection_lost"
    clinic2 = await node.connect("village1")
    joined = await clinic2.ok("session.join", consultation_id=cid)
    assert joined["session_id"] == sid and joined["resumed"] is True
    back = await specialist.event("peer_joined", session_id=sid, resumed=True)
    assert back["user_id"] == joined["session_id"] or back["resumed"]
    await clinic2.ok("session.signal", session_id=sid, kind="offer", payload={"sdp": SDP, "ice_restart": True})
    await specialist.event("signal", session_id=sid, kind="offer")


async def test_signals_sent_before_the_peer_first_joins_come_with_its_join(node: Node) -> None:
    clinic, specialist, cid, sid = await accepted(node)
    # The clinic joins and offers at once, while the specialist's call page is still opening.
    joined_c = await clinic.ok("session.join", consultation_id=cid)
    assert joined_c["peer_present"] is False and joined_c["peer_expected"] is True
    await clinic.ok("session.signal", session_id=sid, kind="offer", payload={"sdp": SDP})
    candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ relay", "sdpMid": "0"}
    await clinic.ok("session.signal", session_id=sid, kind="candidate", payload=candidate)
    await asyncio.sleep(0.2)
    assert not specialist.has_event("signal")
    joined_s = await specialist.ok("session.join", consultation_id=cid)
    kept = joined_s["signals"]
    assert [k["kind"] for k in kept] == ["offer", "candidate"]
    assert {k["session_id"] for k in kept} == {sid} and joined_c["signals"] == []
    assert kept[0]["payload"]["sdp"] == SDP and kept[1]["payload"] == candidate
    assert len({k["id"] for k in kept}) == 2
    # From now on signals go straight to the specialist, and a later join hands nothing over again.
    await clinic.ok("session.signal", session_id=sid, kind="candidate", payload=candidate)
    await specialist.event("signal", session_id=sid, kind="candidate")
    again = await (await node.connect("cardio.chief")).ok("session.join", consultation_id=cid, fresh=False)
    assert again["signals"] == [] and again["peer_expected"] is False


async def test_signals_to_a_peer_who_dropped_are_not_kept(node: Node) -> None:
    clinic, specialist, cid, sid = await start_call(node)
    await clinic.close()
    await specialist.event("peer_left", session_id=sid)
    await specialist.ok("session.signal", session_id=sid, kind="restart_request", payload={})
    clinic2 = await node.connect("village1")
    joined = await clinic2.ok("session.join", consultation_id=cid, fresh=False)
    assert joined["resumed"] is True and joined["signals"] == []


async def test_a_peer_who_never_returns_ends_the_session_with_network(node: Node) -> None:
    clinic, specialist, cid, sid = await start_call(node)
    await clinic.close()
    ended = await specialist.event("session_ended", session_id=sid, timeout=15)
    assert ended["reason"] == "network" and ended["consultation_state"] == "accepted"
    # The call can be taken up again: a new session opens.
    clinic2 = await node.connect("village1")
    rejoined = await clinic2.ok("session.join", consultation_id=cid)
    assert rejoined["session_id"] != sid


async def test_presence_is_kept_alive_while_connected_and_ends_with_the_last_tab(node: Node) -> None:
    specialist = await node.connect("neuro.chief")
    await specialist.ok("presence.set", status="available")
    broker = node.server.app[keys.BROKER]  # type: ignore[union-attr]
    uid = specialist.events[0][1]["user"]["id"]
    await asyncio.sleep(7)  # longer than the test profile's presence TTL of 5 s
    presence = await broker.get_presence(uid)
    assert presence is not None and presence.status == "available"
    await specialist.close()
    await asyncio.sleep(0.3)
    assert await broker.get_presence(uid) is None


async def test_no_patient_data_in_any_log_line(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clinic, specialist, _cid, sid = await start_call(node)
    await clinic.ok("session.chat", session_id=sid, text="血压 150/95")
    await clinic.error("consultation.create", **{**CREATE, "urgency": "whenever"})
    await specialist.ok("session.hangup", session_id=sid)
    await asyncio.sleep(0.3)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged  # the server did log
    for secret in ("李四", "palpitations since morning", "DC-7", "150/95", "1962"):
        assert secret not in logged


async def test_a_colleague_takes_over_beside_the_patient_and_the_hand_over_is_recorded(node: Node) -> None:
    import datetime as dt

    from telehealth.accounts import hash_password
    from telehealth.domain import Role

    clinic, specialist, cid, sid = await start_call(node)
    assert not isinstance(node.server, str)
    store = node.server.app[keys.STORE]
    first = await store.get_user_by_username("village1")
    await store.insert_user("village1.night", hash_password(DEMO_PASSWORD), "Night doctor", Role.clinic_doctor,
                            organisation_id=first.organisation_id, now=dt.datetime.now(dt.UTC))
    colleague = await node.connect("village1.night")
    # Joining without asking to take over changes nothing.
    assert await colleague.error("session.join", consultation_id=cid) == "colleague_in_call"
    assert (await store.get_consultation(cid)).accompanying_doctor_id == first.id
    assert not [e for e in await store.list_events(cid) if e.kind == "handover"]
    # A doctor of another clinic may not take over at all.
    stranger = await node.connect("village2")
    assert await stranger.error("session.join", consultation_id=cid, take_over=True) == "forbidden"
    joined = await colleague.ok("session.join", consultation_id=cid, take_over=True)
    assert joined["session_id"] == sid and joined["role"] == "offerer" and joined["peer_present"] is True
    gone = await clinic.event("handed_over", session_id=sid)
    assert gone["to_name"] == "Night doctor"
    back = await specialist.event("peer_joined", session_id=sid, fresh=True, user_id=gone["to_user_id"])
    assert back["resumed"] is False
    # The colleague now negotiates with the specialist; the first doctor is out of the call.
    await colleague.ok("session.signal", session_id=sid, kind="offer", payload={"sdp": SDP})
    await specialist.event("signal", session_id=sid, kind="offer")
    assert await clinic.error("session.signal", session_id=sid, kind="offer", payload={"sdp": SDP}) == "forbidden"
    consultation = await store.get_consultation(cid)
    assert consultation.accompanying_doctor_id == gone["to_user_id"] and consultation.state == "in_call"
    assert consultation.requesting_doctor_id == first.id
    [handover] = [e for e in await store.list_events(cid) if e.kind == "handover"]
    assert handover.session_id == sid and handover.data == {"from_doctor": first.id, "to_doctor": gone["to_user_id"]}
    assert (await store.get_call_session(sid)).clinic_user_id == gone["to_user_id"]
    # The record names who is with the patient and the hand-over.
    page = await node.http.get(node.url(f"/records/{cid}"),
                               headers={"Authorization": f"Bearer {await node.token('village1')}"})
    text = await page.text()
    assert page.status == 200 and "Night doctor" in text and first.display_name in text


async def test_errors_are_in_the_users_language_with_the_english_beside(node: Node) -> None:
    zh = await node.connect("village1")
    reply = await zh.call("no.such.command")
    assert reply["error"] == {"code": "unknown_command", "message": "未知的命令类型 no.such.command",
                              "message_en": "unknown command type no.such.command"}
    refused = (await zh.call("presence.set", status="available"))["error"]
    assert refused["code"] == "forbidden" and "presence.set" in refused["message"]
    assert refused["message"] != refused["message_en"]
    # A refusal raised by a service operation is translated the same way.
    joined = await zh.call("session.join", consultation_id=999_999)
    assert not joined["success"] and joined["error"]["message"] != joined["error"]["message_en"]

    assert isinstance(node.server, TestServer)
    store = node.server.app[keys.SERVICES].store
    user = await store.get_user_by_username("cardio.chief")
    assert user is not None
    await store.update_user_language(user.id, "en")
    en = await node.connect("cardio.chief")
    reply = await en.call("no.such.command")
    assert reply["error"]["message"] == reply["error"]["message_en"] == "unknown command type no.such.command"
