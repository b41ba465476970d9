"""Signaling benchmark: idle connections, relay throughput and latency, and call setup time.

    python bench/signaling.py [--connections 10000] [--relay-seconds 10] [--calls 5]

Everything runs on loopback against a real `telehealth serve` process (embedded default: SQLite and the
in-process broker), started by this script with the per-connection rate limit raised so that one
connection can be driven at full speed:

The relay runs first, on a fresh server; then the idle connections; then the calls.

* idle connections: N authenticated WebSockets (API tokens of the demo accounts) held open;
  ws_bytes_per_connection is the server's RSS growth divided by N.
* relay: pairs of participants in open sessions send `session.signal` (kind candidate) to each other as
  fast as the server answers, with a bounded window; each relayed message carries its send time, so the
  peer measures the latency.
* setup to first frame: two aiortc peers (telehealth.media) through the server, from the specialist's
  accept to the first decoded video frame on both sides; and the same two peers through a bare WebSocket
  relay of a few lines in this file, as the floor. Reported as medians of several calls, and their ratio.

Prints a table, then as its last line one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from telehealth.records.consent import synthetic_signature  # noqa: E402
from telehealth.records.seed import DEMO_PASSWORD, USERS  # noqa: E402

SIGNATURE = synthetic_signature()
CREATE = {
    "patient": {"name": "bench", "sex": "other", "birth_year": 1970}, "specialty": "cardiology",
    "urgency": "routine", "chief_complaint": "bench", "consent": {"by": "patient", "name": "bench", "signature": SIGNATURE},
}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data_dir: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TELEHEALTH_SECRET_KEY": "bench-secret-key-0123456789",
               "TELEHEALTH_SIGNALING__RATE_PER_S": "1000000", "TELEHEALTH_SIGNALING__RATE_BURST": "1000000",
               "TELEHEALTH_SIGNALING__SEND_QUEUE_SIZE": "4096", "TELEHEALTH_LOG_LEVEL": "WARNING",
               "TELEHEALTH_MATCHING__RING_TIMEOUT_S": "60"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "telehealth", "serve", "--demo", "--port", str(self.port), "--data-dir", data_dir],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def ready(self) -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(self.base + "/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


async def tokens(base: str, usernames: list[str]) -> dict[str, str]:
    out = {}
    async with aiohttp.ClientSession() as http:
        for name in usernames:
            async with http.post(base + "/api/tokens", json={"username": name, "password": DEMO_PASSWORD}) as r:
                out[name] = (await r.json())["token"]
    return out


async def open_ws(http: aiohttp.ClientSession, base: str, token: str) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(base.replace("http", "ws") + "/ws", headers={"Authorization": f"Bearer {token}"},
                               autoping=True)
    hello = await ws.receive_json()
    assert hello["event"] == "hello"
    return ws


# -- idle connections -------------------------------------------------------------------------------

async def idle_connections(server: Server, count: int) -> dict[str, Any]:
    names = [u.username for u in USERS]
    toks = await tokens(server.base, names)
    await asyncio.sleep(1.0)
    before = rss_kib(server.proc.pid)
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    started = time.perf_counter()
    sem = asyncio.Semaphore(200)

    async def one(i: int) -> None:
        async with sem:
            sockets.append(await open_ws(http, server.base, toks[names[i % len(names)]]))

    await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.perf_counter() - started
    await asyncio.sleep(2.0)
    after = rss_kib(server.proc.pid)
    # They are alive: a ping on a sample of them answers.
    sample = sockets[:: max(1, count // 50)]
    for i, ws in enumerate(sample):
        await ws.send_json({"id": 1 + i, "type": "ping"})
        assert (await ws.receive_json(timeout=10))["success"]
    for ws in sockets:
        await ws.close()
    await http.close()
    per = (after - before) * 1024 / count
    return {"ws_idle_connections": count, "ws_bytes_per_connection": round(per),
            "ws_connect_per_s": round(count / elapsed), "server_rss_kib_before": before, "server_rss_kib_after": after}


# -- relay ------------------------------------------------------------------------------------------

async def open_session(http: aiohttp.ClientSession, base: str, clinic_token: str, spec_token: str,
                       ) -> tuple[aiohttp.ClientWebSocketResponse, aiohttp.ClientWebSocketResponse, int]:
    spec = await open_ws(http, base, spec_token)
    clinic = await open_ws(http, base, clinic_token)
    await clinic.send_json({"id": 1, "type": "consultation.create", **CREATE})
    cid = None
    while cid is None:
        msg = await clinic.receive_json()
        if msg.get("id") == 1:
            cid = msg["result"]["consultation"]["id"]
    await spec.send_json({"id": 1, "type": "consultation.take", "consultation_id": cid})
    sid = None
    while sid is None:
        msg = await spec.receive_json()
        if msg.get("id") == 1:
            sid = msg["result"]["session_id"]
    for ws in (spec, clinic):
        await ws.send_json({"id": 2, "type": "session.join", "consultation_id": cid})
        while (await ws.receive_json()).get("id") != 2:
            pass
    return clinic, spec, sid


async def relay(server: Server, seconds: float, pairs: int, window: int, rate: float | None) -> dict[str, Any]:
    """Participants relay candidates to each other: as fast as possible (`rate` None), or paced at `rate`
    messages per second in all, which is where the latency goal applies."""
    clinics = [u.username for u in USERS if u.role.value == "clinic_doctor"][:pairs]
    toks = await tokens(server.base, [*clinics, "cardio.chief"])
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    sessions = [await open_session(http, server.base, toks[c], toks["cardio.chief"]) for c in clinics]
    latencies: list[float] = []
    received = 0
    sent = 0
    stop_at = time.perf_counter() + seconds
    tick = 0.005
    per_tick = (rate / pairs) * tick if rate else 0.0

    async def sender(ws: aiohttp.ClientWebSocketResponse, sid: int) -> None:
        nonlocal sent
        credit = asyncio.Semaphore(window)
        next_id = 100
        owed = 0.0

        async def acks() -> None:
            async for msg in ws:
                data = json.loads(msg.data)
                if data.get("type") == "result":
                    credit.release()

        reader = asyncio.create_task(acks())
        next_tick = time.perf_counter()
        while time.perf_counter() < stop_at:
            burst = 1
            if rate:
                next_tick += tick
                await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
                owed += per_tick
                burst, owed = int(owed), owed - int(owed)
            for _ in range(burst):
                await credit.acquire()
                next_id += 1
                await ws.send_str(json.dumps({"id": next_id, "type": "session.signal", "session_id": sid,
                                              "kind": "candidate", "payload": {
                                                  "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
                                                  "sdpMid": "0", "t": time.perf_counter()}}))
                sent += 1
        await asyncio.sleep(0.5)
        reader.cancel()

    async def receiver(ws: aiohttp.ClientWebSocketResponse) -> None:
        nonlocal received
        async for msg in ws:
            data = json.loads(msg.data)
            if data.get("event") == "signal":
                received += 1
                latencies.append((time.perf_counter() - data["data"]["payload"]["t"]) * 1000)

    receivers = [asyncio.create_task(receiver(spec)) for _, spec, _ in sessions]
    started = time.perf_counter()
    await asyncio.gather(*(sender(clinic, sid) for clinic, _, sid in sessions))
    elapsed = time.perf_counter() - started - 0.5
    for task in receivers:
        task.cancel()
    for clinic, spec, _ in sessions:
        await clinic.close()
        await spec.close()
    await http.close()
    ordered = sorted(latencies)
    return {"msgs_per_s": round(received / elapsed), "p50_ms": round(ordered[len(ordered) // 2], 3),
            "p99_ms": round(ordered[int(len(ordered) * 0.99)], 3), "sent": sent, "received": received}


# -- setup to first frame ---------------------------------------------------------------------------

def loopback_only() -> None:
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # type: ignore[assignment]


async def call_through_server(base: str) -> float:
    from telehealth.media import CallPeer, TelehealthClient

    spec = await TelehealthClient.login(base, "cardio.chief", DEMO_PASSWORD)
    clinic = await TelehealthClient.login(base, "village1", DEMO_PASSWORD)
    cid = (await clinic.call("consultation.create", **CREATE))["consultation"]["id"]
    started = time.perf_counter()
    await spec.call("consultation.take", consultation_id=cid)
    await clinic.next_event("session_ready", consultation_id=cid)
    s_peer, c_peer = CallPeer(spec, cid), CallPeer(clinic, cid)
    await asyncio.gather(s_peer.join(), c_peer.join())
    await asyncio.gather(s_peer.wait_frames("video", 1, 30), c_peer.wait_frames("video", 1, 30))
    elapsed = (time.perf_counter() - started) * 1000
    await s_peer.hangup()
    await c_peer.close()
    await spec.close()
    await clinic.close()
    return elapsed


class BareRelay:
    """The floor: a WebSocket relay that forwards each message to the other of two peers, nothing else."""

    def __init__(self) -> None:
        self.peers: list[web.WebSocketResponse] = []
        self.app = web.Application()
        self.app.router.add_get("/ws", self.handle)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        self.peers.append(ws)
        async for msg in ws:
            for other in self.peers:
                if other is not ws and not other.closed:
                    await other.send_str(msg.data)
        self.peers.remove(ws)
        return ws


async def call_through_bare_relay(url: str) -> float:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    from telehealth.media.tracks import PatternVideoTrack, ToneAudioTrack

    async with aiohttp.ClientSession() as http:
        a_ws = await http.ws_connect(url)
        b_ws = await http.ws_connect(url)
        started = time.perf_counter()
        pcs = [RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(2)]
        got = [asyncio.Event(), asyncio.Event()]
        tasks = []
        for i, pc in enumerate(pcs):
            pc.addTrack(ToneAudioTrack())
            pc.addTrack(PatternVideoTrack(320, 240))

            def on_track(track: Any, i: int = i) -> None:
                async def first() -> None:
                    if track.kind == "video":
                        await track.recv()
                        got[i].set()
                tasks.append(asyncio.create_task(first()))

            pc.on("track", on_track)
        await pcs[0].setLocalDescription(await pcs[0].createOffer())
        await a_ws.send_str(json.dumps({"sdp": pcs[0].localDescription.sdp}))
        offer = json.loads((await b_ws.receive()).data)
        await pcs[1].setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await pcs[1].setLocalDescription(await pcs[1].createAnswer())
        await b_ws.send_str(json.dumps({"sdp": pcs[1].localDescription.sdp}))
        answer = json.loads((await a_ws.receive()).data)
        await pcs[0].setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await asyncio.wait_for(asyncio.gather(got[0].wait(), got[1].wait()), 30)
        elapsed = (time.perf_counter() - started) * 1000
        for pc in pcs:
            await pc.close()
        for t in tasks:
            t.cancel()
        await a_ws.close()
        await b_ws.close()
    return elapsed


async def setup_times(server: Server, calls: int) -> dict[str, Any]:
    loopback_only()
    relay = BareRelay()
    runner = web.AppRunner(relay.app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    through, direct = [], []
    for _ in range(calls):
        # Interleaved, so both see the same machine load.
        through.append(await call_through_server(server.base))
        direct.append(await call_through_bare_relay(f"ws://127.0.0.1:{port}/ws"))
    await runner.cleanup()
    t, d = statistics.median(through), statistics.median(direct)
    return {"setup_to_first_frame_ms": round(t, 1), "direct_setup_to_first_frame_ms": round(d, 1),
            "setup_ratio": round(t / d, 3), "setup_samples_ms": [round(x) for x in through],
            "direct_samples_ms": [round(x) for x in direct]}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="th-sigbench-") as data:
        server = Server(data)
        try:
            await server.ready()
            peak = await relay(server, args.relay_seconds, args.pairs, args.window, None)
            print(f"relay, as fast as it goes: {peak['msgs_per_s']} msg/s (p50 {peak['p50_ms']} ms, "
                  f"p99 {peak['p99_ms']} ms)", flush=True)
            paced = await relay(server, args.relay_seconds, args.pairs, args.window, args.relay_rate)
            print(f"relay, paced at {args.relay_rate:g} msg/s: {paced['msgs_per_s']} msg/s, p50 {paced['p50_ms']} ms, "
                  f"p99 {paced['p99_ms']} ms", flush=True)
            result.update({"relay_max_msgs_per_s": peak["msgs_per_s"], "relay_msgs_per_s": paced["msgs_per_s"],
                           "relay_p50_ms": paced["p50_ms"], "relay_p99_ms": paced["p99_ms"],
                           "relay_lost": paced["sent"] - paced["received"], "relay_pairs": args.pairs})
            result.update(await idle_connections(server, args.connections))
            print(f"idle: {result['ws_idle_connections']} connections, {result['ws_bytes_per_connection']} B each "
                  f"(RSS {result['server_rss_kib_before']} -> {result['server_rss_kib_after']} KiB)", flush=True)
            result.update(await setup_times(server, args.calls))
            print(f"setup to first frame: {result['setup_to_first_frame_ms']} ms through the server, "
                  f"{result['direct_setup_to_first_frame_ms']} ms bare relay, ratio {result['setup_ratio']}",
                  flush=True)
        finally:
            server.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--relay-seconds", type=float, default=10.0)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--relay-rate", type=float, default=20_000, help="paced relay rate, messages/s in all")
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), separators=(",", ":")))


if __name__ == "__main__":
    main()
