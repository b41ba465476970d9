"""Signaling benchmark: relay throughput and latency, idle connections, connects, and call setup time, each
against the same work done by a bare aiohttp server in the same run.

    python bench/signaling.py [--connections 10000] [--relay-seconds 10] [--rounds 2] [--calls 5] [--smoke]

Everything runs on loopback against a real `telehealth serve` process (embedded default: SQLite and the
in-process broker), started by this script with the per-connection rate limit raised so that one
connection can be driven at full speed. The floor is a bare aiohttp WebSocket server of a few lines in this
file (`--serve-bare PORT`, its own process as well), with the same WebSocket settings (heartbeat, no
compression) and the same two-hop shape: every message from one peer goes to the other peer, and the
sender gets an acknowledgement.

* relay: pairs of participants in open sessions send `session.signal` (kind candidate) to each other, from
  `--drivers` client processes, with a bounded window of unacknowledged messages per pair; each message
  carries its send time, so the peer measures the latency. First as fast as the server answers; then paced
  at `--relay-rate` messages per second in all, or at a third of the bare server's unpaced rate in this
  run if that is lower (so that the floor is not measured past its own saturation). Bare and telehealth
  phases alternate (`--rounds` of each). Besides the rate, the server's own CPU time per relayed message.
* idle connections: N WebSockets held open (for telehealth authenticated with API tokens of the demo
  accounts), each read by the client so it answers the heartbeat; bytes per connection is the server's RSS
  growth divided by N; connects per second and server CPU per connect while they open.
* setup to first frame: two aiortc peers (telehealth.media) through the server, from the specialist's
  accept to the first decoded video frame on both sides; and the same two peers through a bare WebSocket
  relay, as the floor. Medians of several calls, interleaved, and their ratio.

`--smoke` runs every phase in a few seconds with tiny sizes, to show the benchmark works; its figures
mean nothing.

Prints a table, then as its last line one JSON object (the shape of bench/_common.py):

    {"bench": "signaling", "smoke": false,
     "figures": {"relay_max_msgs_per_s", "relay_msgs_per_s", "relay_p50_ms", "relay_p99_ms",
                 "relay_paced_rate", "relay_lost", "relay_cpu_us_per_msg", "ws_idle_connections",
                 "ws_bytes_per_connection", "ws_connect_per_s", "ws_cpu_ms_per_connect",
                 "setup_to_first_frame_ms", "setup_samples_ms"},
     "floors":  {"relay_max_msgs_per_s", "relay_msgs_per_s", "relay_p50_ms", "relay_p99_ms",
                 "relay_cpu_us_per_msg", "ws_bytes_per_connection", "ws_connect_per_s",
                 "ws_cpu_ms_per_connect", "setup_to_first_frame_ms", "setup_samples_ms"},
     "ratios":  {"relay_throughput", "relay_p99", "relay_cpu", "ws_memory", "ws_connects",
                 "ws_connect_cpu", "setup"},
     "goals":   {"relay_throughput" (>= 0.6), "relay_p99" (<= 3), "ws_memory" (<= 1.3),
                 "ws_connects" (>= 0.5), "setup" (<= 1.2)},
     "goals_met": BOOL}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
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

from _common import cpu_ms, free_port, goal, pct, print_goals, ratio, report, rss_kib  # noqa: E402

# The driver processes import this file again: the project's modules are imported only where used, so that a
# driver starts in a fraction of a second.
HEARTBEAT_S = 20.0
CANDIDATE = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"


async def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"the server at {url} exited")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the server at {url} did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Server:
    """A `telehealth serve --demo` process."""

    def __init__(self, data_dir: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TELEHEALTH_SECRET_KEY": "bench-secret-key-0123456789",
               "TELEHEALTH_SIGNALING__RATE_PER_S": "1000000", "TELEHEALTH_SIGNALING__RATE_BURST": "1000000",
               "TELEHEALTH_SIGNALING__SEND_QUEUE_SIZE": "4096", "TELEHEALTH_LOG_LEVEL": "WARNING",
               "TELEHEALTH_SIGNALING__HEARTBEAT_S": str(HEARTBEAT_S),
               "TELEHEALTH_MATCHING__RING_TIMEOUT_S": "60"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "telehealth", "serve", "--demo", "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", data_dir],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def ready(self) -> None:
        await wait_ready(self.base + "/readyz", self.proc)

    def stop(self) -> None:
        stop(self.proc)


class BareServer:
    """The floor, in a process of its own: `python bench/signaling.py --serve-bare PORT`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve-bare", str(self.port)], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def ready(self) -> None:
        await wait_ready(self.base + "/ready", self.proc)

    def stop(self) -> None:
        stop(self.proc)


def serve_bare(port: int) -> None:
    """A WebSocket server that says hello, then passes each message to the other socket of its pair
    (`/ws?pair=K`), wrapped as an event, and acknowledges it to the sender; nothing else."""
    pairs: dict[str, list[web.WebSocketResponse]] = {}
    hello = json.dumps({"type": "event", "event": "hello", "data": {}})
    ack = json.dumps({"type": "result", "success": True, "result": {}})

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, compress=False)
        await ws.prepare(request)
        pair = pairs.setdefault(request.query.get("pair", ""), []) if "pair" in request.query else []
        pair.append(ws)
        await ws.send_str(hello)
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    for other in pair:
                        if other is not ws and not other.closed:
                            await other.send_str('{"type":"event","event":"signal","data":' + msg.data + "}")
                    await ws.send_str(ack)
        finally:
            pair.remove(ws)
        return ws

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/ws", handle)
    app.router.add_get("/ready", ready)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


def create_body() -> dict[str, Any]:
    from telehealth.records.consent import synthetic_signature

    return {"patient": {"name": "bench", "sex": "other", "birth_year": 1970}, "specialty": "cardiology",
            "urgency": "routine", "chief_complaint": "bench",
            "consent": {"by": "patient", "name": "bench", "signature": synthetic_signature()}}


def demo_users() -> list[Any]:
    """The demo's clinicians: administrators sign in with a second factor, which a token request cannot give."""
    from telehealth.records.seed import USERS

    return [u for u in USERS if u.role.value != "admin"]


async def tokens(base: str, usernames: list[str]) -> dict[str, str]:
    from telehealth.records.seed import DEMO_PASSWORD

    out = {}
    async with aiohttp.ClientSession() as http:
        for name in usernames:
            async with http.post(base + "/api/tokens", json={"username": name, "password": DEMO_PASSWORD}) as r:
                out[name] = (await r.json())["token"]
    return out


async def open_ws(http: aiohttp.ClientSession, base: str, token: str | None,
                  query: str = "") -> aiohttp.ClientWebSocketResponse:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ws = await http.ws_connect(base.replace("http", "ws") + "/ws" + query, headers=headers, autoping=True)
    hello = await ws.receive_json()
    assert hello["event"] == "hello", hello
    return ws


# -- relay ------------------------------------------------------------------------------------------

async def open_session(http: aiohttp.ClientSession, base: str, clinic_token: str, spec_token: str,
                       create: dict[str, Any]) -> tuple[aiohttp.ClientWebSocketResponse, aiohttp.ClientWebSocketResponse, int]:
    spec = await open_ws(http, base, spec_token)
    clinic = await open_ws(http, base, clinic_token)
    await clinic.send_json({"id": 1, "type": "consultation.create", **create})
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


async def drive(base: str, bare: bool, pairs: list[tuple[str, str]], seconds: float, rate: float | None,
                window: int, create: dict[str, Any], ready: Any, go: Any) -> dict[str, Any]:
    """One driver process: its pairs relay candidates to each other, as fast as the window lets them (`rate`
    None) or paced at `rate` messages per second in all."""
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    sessions: list[tuple[aiohttp.ClientWebSocketResponse, aiohttp.ClientWebSocketResponse, int]] = []
    for i, (clinic_token, spec_token) in enumerate(pairs):
        if bare:
            query = f"?pair={os.getpid()}-{i}"
            sessions.append((await open_ws(http, base, None, query), await open_ws(http, base, None, query), 0))
        else:
            sessions.append(await open_session(http, base, clinic_token, spec_token, create))
    ready.put("ready")
    await asyncio.to_thread(go.wait, 120)
    latencies: list[float] = []
    counts = {"sent": 0, "received": 0}
    started = time.perf_counter()
    stop_at = started + seconds
    tick = 0.005
    per_tick = (rate / len(sessions)) * tick if rate else 0.0

    async def sender(ws: aiohttp.ClientWebSocketResponse, sid: int) -> None:
        credit = asyncio.Semaphore(window)
        next_id = 100
        owed = 0.0

        async def acks() -> None:
            async for msg in ws:
                if '"result"' in msg.data:
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
                                                  "candidate": CANDIDATE, "sdpMid": "0", "t": time.perf_counter()}}))
                counts["sent"] += 1
        await asyncio.sleep(0.5)
        reader.cancel()

    async def receiver(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            data = json.loads(msg.data)
            if data.get("event") == "signal":
                at = time.perf_counter()
                if at <= stop_at:
                    counts["received"] += 1
                latencies.append((at - data["data"]["payload"]["t"]) * 1000)

    receivers = [asyncio.create_task(receiver(spec)) for _, spec, _ in sessions]
    await asyncio.gather(*(sender(clinic, sid) for clinic, _, sid in sessions))
    for task in receivers:
        task.cancel()
    for clinic, spec, sid in sessions:
        if not bare:
            with contextlib.suppress(Exception):
                await clinic.send_json({"id": 10**9, "type": "session.hangup", "session_id": sid})
                await asyncio.sleep(0.05)
        await clinic.close()
        await spec.close()
    await http.close()
    return {"sent": counts["sent"], "received": counts["received"], "elapsed": seconds, "latencies": latencies}


def driver_process(base: str, bare: bool, pairs: list[tuple[str, str]], seconds: float, rate: float | None,
                   window: int, create: dict[str, Any], ready: Any, go: Any, out: Any) -> None:
    out.put(asyncio.run(drive(base, bare, pairs, seconds, rate, window, create, ready, go)))


async def relay(base: str, pid: int, pair_tokens: list[tuple[str, str]] | None, args: argparse.Namespace,
                seconds: float, rate: float | None) -> dict[str, Any]:
    """One relay phase against one server (`pair_tokens` None: the bare one)."""
    bare = pair_tokens is None
    pairs = pair_tokens if pair_tokens is not None else [("", "")] * args.pairs
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    drivers = min(args.drivers, len(pairs))
    share = [pairs[i::drivers] for i in range(drivers)]
    procs = [ctx.Process(target=driver_process, args=(
        base, bare, mine, seconds, rate / drivers if rate else None, args.window, args.create, ready, go, out)) for mine in share]
    for p in procs:
        p.start()
    for _ in procs:
        await asyncio.to_thread(ready.get, True, 120)
    cpu_before = cpu_ms(pid)
    go.set()
    results = [await asyncio.to_thread(out.get, True, seconds + 120) for _ in procs]
    cpu_used = cpu_ms(pid) - cpu_before
    for p in procs:
        await asyncio.to_thread(p.join, 30)
    latencies = [x for r in results for x in r["latencies"]]
    received = sum(r["received"] for r in results)
    return {"received": received, "sent": sum(r["sent"] for r in results), "seconds": seconds,
            "latencies": latencies, "cpu_ms": cpu_used,
            "relayed_total": len(latencies)}


def merge(phases: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [x for p in phases for x in p["latencies"]]
    received = sum(p["received"] for p in phases)
    seconds = sum(p["seconds"] for p in phases)
    relayed = sum(p["relayed_total"] for p in phases)
    return {"msgs_per_s": round(received / seconds), "p50_ms": round(pct(latencies, 0.5), 3),
            "p99_ms": round(pct(latencies, 0.99), 3), "lost": sum(p["sent"] for p in phases) - relayed,
            "cpu_us_per_msg": round(1000 * sum(p["cpu_ms"] for p in phases) / max(1, relayed), 2)}


async def relay_phases(server: Server, bare: BareServer, args: argparse.Namespace) -> dict[str, Any]:
    clinics = [u.username for u in demo_users() if u.role.value == "clinic_doctor"]
    clinics = clinics[: args.pairs]
    toks = await tokens(server.base, [*clinics, "cardio.chief"])
    pair_tokens = [(toks[clinics[i % len(clinics)]], toks["cardio.chief"]) for i in range(args.pairs)]
    seconds = args.relay_seconds / args.rounds
    out: dict[str, Any] = {}
    peak: dict[str, list[dict[str, Any]]] = {"bare": [], "telehealth": []}
    for _ in range(args.rounds):
        peak["bare"].append(await relay(bare.base, bare.proc.pid, None, args, seconds, None))
        peak["telehealth"].append(await relay(server.base, server.proc.pid, pair_tokens, args, seconds, None))
    out["peak"] = {k: merge(v) for k, v in peak.items()}
    rate = min(args.relay_rate, out["peak"]["bare"]["msgs_per_s"] / 3)
    paced: dict[str, list[dict[str, Any]]] = {"bare": [], "telehealth": []}
    for _ in range(args.rounds):
        paced["bare"].append(await relay(bare.base, bare.proc.pid, None, args, seconds, rate))
        paced["telehealth"].append(await relay(server.base, server.proc.pid, pair_tokens, args, seconds, rate))
    out["paced"] = {k: merge(v) for k, v in paced.items()}
    out["rate"] = round(rate)
    for kind in ("peak", "paced"):
        for who in ("telehealth", "bare"):
            r = out[kind][who]
            print(f"relay {kind:5} {who:10}: {r['msgs_per_s']:>6} msg/s  p50 {r['p50_ms']:8.3f} ms  "
                  f"p99 {r['p99_ms']:8.3f} ms  server CPU {r['cpu_us_per_msg']:6.1f} us/msg"
                  + (f"  (paced at {out['rate']} msg/s)" if kind == "paced" else ""), flush=True)
    return out


# -- idle connections -------------------------------------------------------------------------------

async def idle_connections(base: str, pid: int, count: int, toks: list[str | None]) -> dict[str, Any]:
    await asyncio.sleep(1.0)
    before = rss_kib(pid)
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    readers: list[asyncio.Task[None]] = []
    sem = asyncio.Semaphore(200)

    async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
        # Reading is what answers the server's heartbeat pings; an unread socket is closed as dead.
        async for _ in ws:
            pass

    async def one(i: int) -> None:
        async with sem:
            ws = await open_ws(http, base, toks[i % len(toks)])
            sockets.append(ws)
            readers.append(asyncio.create_task(read(ws)))

    cpu_before = cpu_ms(pid)
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.perf_counter() - started
    cpu_used = cpu_ms(pid) - cpu_before
    await asyncio.sleep(2.0)
    after = rss_kib(pid)
    # They are alive: a ping on a sample of them answers (the readers stop to let the reply through).
    sample = list(range(0, count, max(1, count // 50)))
    for n, i in enumerate(sample):
        readers[i].cancel()
        await asyncio.gather(readers[i], return_exceptions=True)
        await sockets[i].send_json({"id": 1 + n, "type": "ping"})
        while True:
            reply = await sockets[i].receive_json(timeout=10)
            if reply.get("type") == "result":
                assert reply["success"], reply
                break
    alive = sum(1 for ws in sockets if not ws.closed)
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for ws in sockets:
        await ws.close()
    await http.close()
    return {"connections": count, "alive": alive, "bytes_per_connection": round((after - before) * 1024 / count),
            "connect_per_s": round(count / elapsed), "cpu_ms_per_connect": round(cpu_used / count, 3),
            "rss_kib_before": before, "rss_kib_after": after}


# -- setup to first frame ---------------------------------------------------------------------------

def loopback_only() -> None:
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # type: ignore[assignment]


async def call_through_server(base: str) -> float:
    from telehealth.media import CallPeer, TelehealthClient
    from telehealth.records.seed import DEMO_PASSWORD

    spec = await TelehealthClient.login(base, "cardio.chief", DEMO_PASSWORD)
    clinic = await TelehealthClient.login(base, "village1", DEMO_PASSWORD)
    cid = (await clinic.call("consultation.create", **create_body()))["consultation"]["id"]
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


async def idle_phases(server: Server, bare: BareServer, count: int) -> dict[str, Any]:
    names = [u.username for u in demo_users()][: 3 if count < 100 else None]
    toks: list[str | None] = list((await tokens(server.base, names)).values())
    b = await idle_connections(bare.base, bare.proc.pid, count, [None])
    t = await idle_connections(server.base, server.proc.pid, count, toks)
    for who, r in (("telehealth", t), ("bare", b)):
        print(f"idle {who:10}: {r['connections']} connections ({r['alive']} alive), {r['bytes_per_connection']} B "
              f"each (RSS {r['rss_kib_before']} -> {r['rss_kib_after']} KiB), {r['connect_per_s']} connects/s, "
              f"server CPU {r['cpu_ms_per_connect']} ms/connect", flush=True)
    if t["alive"] < count or b["alive"] < count:
        raise RuntimeError(f"idle connections were closed: {t['alive']} and {b['alive']} of {count} alive")
    return {"telehealth": t, "bare": b}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="th-sigbench-") as data:
        server, bare = Server(data), BareServer()
        try:
            await server.ready()
            await bare.ready()
            rel = await relay_phases(server, bare, args)
            idle = await idle_phases(server, bare, args.connections)
            setup = await setup_times(server, args.calls)
            print(f"setup to first frame: {setup['setup_to_first_frame_ms']} ms through the server, "
                  f"{setup['direct_setup_to_first_frame_ms']} ms bare relay, ratio {setup['setup_ratio']}", flush=True)
        finally:
            server.stop()
            bare.stop()
    peak, paced, t, b = rel["peak"], rel["paced"], idle["telehealth"], idle["bare"]
    figures = {
        "relay_max_msgs_per_s": peak["telehealth"]["msgs_per_s"], "relay_msgs_per_s": paced["telehealth"]["msgs_per_s"],
        "relay_p50_ms": paced["telehealth"]["p50_ms"], "relay_p99_ms": paced["telehealth"]["p99_ms"],
        "relay_paced_rate": rel["rate"], "relay_lost": peak["telehealth"]["lost"] + paced["telehealth"]["lost"],
        "relay_cpu_us_per_msg": peak["telehealth"]["cpu_us_per_msg"],
        "ws_idle_connections": t["connections"], "ws_bytes_per_connection": t["bytes_per_connection"],
        "ws_connect_per_s": t["connect_per_s"], "ws_cpu_ms_per_connect": t["cpu_ms_per_connect"],
        "setup_to_first_frame_ms": setup["setup_to_first_frame_ms"], "setup_samples_ms": setup["setup_samples_ms"]}
    floors = {
        "relay_max_msgs_per_s": peak["bare"]["msgs_per_s"], "relay_msgs_per_s": paced["bare"]["msgs_per_s"],
        "relay_p50_ms": paced["bare"]["p50_ms"], "relay_p99_ms": paced["bare"]["p99_ms"],
        "relay_cpu_us_per_msg": peak["bare"]["cpu_us_per_msg"],
        "ws_bytes_per_connection": b["bytes_per_connection"], "ws_connect_per_s": b["connect_per_s"],
        "ws_cpu_ms_per_connect": b["cpu_ms_per_connect"],
        "setup_to_first_frame_ms": setup["direct_setup_to_first_frame_ms"], "setup_samples_ms": setup["direct_samples_ms"]}
    ratios = {
        "relay_throughput": ratio(figures["relay_max_msgs_per_s"], floors["relay_max_msgs_per_s"]),
        "relay_p99": ratio(figures["relay_p99_ms"], floors["relay_p99_ms"]),
        "relay_cpu": ratio(figures["relay_cpu_us_per_msg"], floors["relay_cpu_us_per_msg"]),
        "ws_memory": ratio(figures["ws_bytes_per_connection"], floors["ws_bytes_per_connection"]),
        "ws_connects": ratio(figures["ws_connect_per_s"], floors["ws_connect_per_s"]),
        "ws_connect_cpu": ratio(figures["ws_cpu_ms_per_connect"], floors["ws_cpu_ms_per_connect"]),
        "setup": setup["setup_ratio"]}
    goals = {"relay_throughput": goal(ratios["relay_throughput"], ">=", 0.6),
             "relay_p99": goal(ratios["relay_p99"], "<=", 3.0),
             "ws_memory": goal(ratios["ws_memory"], "<=", 1.3),
             "ws_connects": goal(ratios["ws_connects"], ">=", 0.5),
             "setup": goal(ratios["setup"], "<=", 1.2)}
    print(" ".join(f"{k} {v}x" for k, v in ratios.items()), flush=True)
    print_goals(goals)
    return report("signaling", args.smoke, figures, floors, ratios, goals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--relay-seconds", type=float, default=10.0, help="per kind of relay and server, all rounds")
    parser.add_argument("--rounds", type=int, default=2, help="bare and telehealth relay phases alternate this often")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--drivers", type=int, default=2, help="client processes driving the pairs")
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--relay-rate", type=float, default=20_000,
                        help="paced relay rate, messages/s in all (at most a third of the bare unpaced rate)")
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="every phase in seconds, tiny sizes: shows it runs")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    args.create = create_body()
    if args.smoke:
        args.connections, args.relay_seconds, args.rounds, args.calls = 20, 0.5, 1, 1
        args.pairs, args.drivers = 1, 1
    print(json.dumps(asyncio.run(main_async(args)), separators=(",", ":")))


if __name__ == "__main__":
    main()
