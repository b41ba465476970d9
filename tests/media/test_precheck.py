"""The pre-call connection check with a real WebRTC client (aiortc, as the Python client uses it) against
the server's own peer running in a worker process: a verdict with measured figures, kept per clinic; a
check beyond the cap is told to retry; the verdict rules on their own."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from telehealth.media.precheck import Measurement, verdict
from telehealth.media.tracks import PatternVideoTrack, ToneAudioTrack
from telehealth.server import keys
from tests.conftest import make_settings
from tests.support.wsclient import Node, serve


def test_the_verdict_rules() -> None:
    good = Measurement(900, 0.5, 5, 40, 100, 250)
    assert verdict(good, good, connected=True)["verdict"] == "video_ok"
    slow = Measurement(100, 1, 20, 300, 30, 250)
    assert verdict(slow, good, connected=True) == {"verdict": "audio_only", "cause": "slow_link"}
    lossy = Measurement(900, 9, 20, 80, 80, 250)
    assert verdict(good, lossy, connected=True) == {"verdict": "audio_only", "cause": "packet_loss"}
    assert verdict(good, good, connected=True, camera=False) == {"verdict": "audio_only", "cause": "camera_blocked"}
    far = Measurement(900, 1, 20, 1500, 80, 250)
    assert verdict(far, far, connected=True) == {"verdict": "audio_only", "cause": "long_delay"}
    # Each side notes the least round trip it saw; the smaller one is the link's own delay (the other may
    # include a queue the check's media built in front of the link).
    assert verdict(far, good, connected=True)["verdict"] == "video_ok"
    # The download is judged against what the server's probe sent: nearly all of it must arrive.
    delivered = Measurement(190, 1, 20, 300, 80, 250)
    assert verdict(good, delivered, connected=True, probe_kbps=200)["verdict"] == "video_ok"
    short = Measurement(120, 1, 20, 300, 80, 250)
    assert verdict(good, short, connected=True, probe_kbps=200) == {"verdict": "audio_only", "cause": "slow_link"}
    assert verdict(good, short, connected=True)["cause"] == "slow_link"  # no probe figure: the video floor
    assert verdict(None, None, connected=False, candidate_types=frozenset({"host"})) == \
        {"verdict": "cannot_connect", "cause": "no_udp"}
    assert verdict(None, None, connected=False, candidate_types=frozenset({"host", "srflx"}),
                   turn_configured=True) == {"verdict": "cannot_connect", "cause": "turn_unreachable"}


async def run_check(node: Node, token: str) -> tuple[int, dict[str, Any]]:
    """What the browser page does: offer, let media flow, report the downlink; the status and the answer."""
    auth = {"Authorization": f"Bearer {token}"}
    async with node.http.get(node.url("/api/precheck/config"), headers=auth) as resp:
        config = await resp.json()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in config["ice_servers"]]))
    frames = {"audio": 0, "video": 0}

    async def consume(track: Any) -> None:
        try:
            while True:
                await track.recv()
                frames[track.kind] += 1
        except MediaStreamError:
            return

    pc.on("track", lambda track: asyncio.ensure_future(consume(track)))
    pc.addTrack(ToneAudioTrack())
    pc.addTrack(PatternVideoTrack(640, 480))
    try:
        await pc.setLocalDescription(await pc.createOffer())
        async with node.http.post(node.url("/api/precheck"), headers=auth,
                                  json={"sdp": pc.localDescription.sdp}) as resp:
            begun = await resp.json()
            if resp.status != 201:
                return resp.status, begun
        await pc.setRemoteDescription(RTCSessionDescription(sdp=begun["sdp"], type="answer"))
        started = time.monotonic()
        before = sum(r.bytesReceived for r in (await pc.getStats()).values() if r.type == "transport")
        await asyncio.sleep(float(begun["seconds"]) + 0.5)
        stats = await pc.getStats()
        received = sum(r.bytesReceived for r in stats.values() if r.type == "transport") - before
        got = sum(r.packetsReceived for r in stats.values() if r.type == "inbound-rtp")
        lost = sum(max(0, r.packetsLost) for r in stats.values() if r.type == "inbound-rtp")
        down = {"kbps": received * 8 / (time.monotonic() - started) / 1000,
                "loss_pct": 100 * lost / (got + lost) if got + lost else 0.0,
                "video_frames": frames["video"], "audio_frames": frames["audio"]}
        async with node.http.post(node.url(f"/api/precheck/{begun['id']}/report"), headers=auth, json={
                "connected": frames["audio"] + frames["video"] > 0, "camera": True,
                "candidate_types": ["host"], "down": down}) as resp:
            return resp.status, {**await resp.json(), "id": begun["id"]}
    finally:
        await pc.close()


async def test_a_check_on_loopback_says_video_is_fine_and_is_kept(tmp_path: Any) -> None:
    async with serve(make_settings(tmp_path)) as node:
        token = await node.token("village2")
        status, result = await run_check(node, token)
        assert status == 200, result
        assert result["verdict"] == "video_ok", result
        up, down = result["up"], result["down"]
        assert up["kbps"] > 100 and up["video_frames"] > 10 and up["audio_frames"] > 50
        assert down["video_frames"] > 10 and down["kbps"] > 50
        assert up["rtt_ms"] is None or up["rtt_ms"] < 200
        assert not isinstance(node.server, str)
        store = node.server.app[keys.STORE]
        [kept] = await store.list_prechecks(org_ids=[(await store.get_user_by_username("village2")).organisation_id])
        assert kept["id"] == result["id"] and kept["verdict"] == "video_ok" and kept["uplink"]["up_kbps"] > 100
        # Another clinic cannot report on it; a specialist cannot run checks.
        other = await node.token("village3")
        async with node.http.post(node.url(f"/api/precheck/{result['id']}/report"),
                                  headers={"Authorization": f"Bearer {other}"}, json={"connected": True}) as resp:
            assert resp.status == 404
        spec = await node.token("cardio.chief")
        async with node.http.post(node.url("/api/precheck"), headers={"Authorization": f"Bearer {spec}"},
                                  json={"sdp": "v=0\r\n"}) as resp:
            assert resp.status == 403


async def test_checks_beyond_the_cap_are_told_to_retry(tmp_path: Any) -> None:
    settings = make_settings(tmp_path, precheck={"workers": 1, "per_worker": 1, "seconds": 3,
                                                  "addresses": ["127.0.0.1"]})
    async with serve(settings) as node:
        first, second = await node.token("village4"), await node.token("village5")
        results = await asyncio.gather(run_check(node, first), run_check(node, second))
        statuses = sorted(status for status, _ in results)
        assert statuses == [200, 503], results
        refused = next(body for status, body in results if status == 503)
        assert refused["error"]["code"] == "busy" and "retry in" in refused["error"]["message_en"]
        async with node.http.post(node.url("/api/precheck"), headers={"Authorization": f"Bearer {first}"},
                                  json={"sdp": "not an sdp"}) as resp:
            assert resp.status == 400
