"""Load benchmark: clinics and specialists over WebSockets across 1, 2 and 3 nodes (shared Redis and database),
plus a few real aiortc calls, for a set time each.

    python bench/load.py [--nodes 1,2,3] [--seconds 60] [--calls 2] [--database-url postgresql+asyncpg://...]

Everything runs on loopback. For each cluster size the script starts that many `telehealth serve` processes
(the first seeds the demo alliance), connects the demo's clinic doctors and specialists to the nodes in
turn, and then:

* idle: one clinic asks, one specialist is rung, 45 times in a row on an otherwise quiet cluster (the first
  5 warm up): the offer latency (request sent -> offer received by the specialist) when nothing else happens;
* load: every clinic asks, waits for its call to start and end, thinks 0.5-1.5x `--think` seconds (at random,
  and from a random start, so clinics do not ask in lockstep) and asks again; every
  specialist accepts what rings, joins the call, hangs up and is available again; meanwhile a pair of aiortc
  peers runs `--calls` real calls with video. Offer latency is measured the same way as idle, from the end of
  a `--warmup` (5 s) on.

Errors are failed commands other than the expected race outcomes (another specialist was faster, the offer
was withdrawn) and any exception. Each node's resident memory is read at the start and at the end of the
load phase. A 10-minute soak: `--nodes 1 --seconds 600`.

The floor of the offer latency under load is the idle offer latency of the same cluster in the same run; the
nodes' own CPU time over the load phase, divided by the consultations completed, is the CPU-ms per
consultation (steady on a machine shared with other work, where latencies are not).

`--smoke` runs one node for a few seconds, to show that it works; its figures mean nothing.

Prints a table per cluster size, then as its last line one JSON object (the shape of bench/_common.py), with
the figures of the largest cluster run and each size's under `by_nodes`:

    {"bench": "load", "smoke": false,
     "figures": {"consultations_per_min", "offer_latency_p50_ms", "offer_latency_p99_ms", "errors",
                 "rss_growth_pct", "cpu_ms_per_consultation", "by_nodes": {N: {...}}},
     "floors":  {"offer_latency_idle_p50_ms", "offer_latency_idle_p99_ms"},
     "ratios":  {"p99_vs_idle"},
     "goals":   {"p99_vs_idle" (<= 2), "errors" (<= 0)},
     "goals_met": BOOL}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import cpu_ms, goal, print_goals, report  # noqa: E402

from telehealth.records.consent import synthetic_signature  # noqa: E402
from telehealth.records.seed import DEMO_PASSWORD  # noqa: E402

SECRET = "bench-secret-key-0123456789"
# The load: two clinics per specialty and two specialists for each, so a request meets a free specialist and
# the offer latency measures matching and delivery, not a queue. Internal medicine is kept for the real calls.
CLINICS = {"village1": "cardiology", "village2": "cardiology", "village3": "paediatrics", "village4": "paediatrics",
           "village5": "neurology", "village6": "neurology"}
SPECIALISTS = {"cardiology": ["cardio.chief", "cardio.attending"], "paediatrics": ["paeds.assoc", "paeds.attending"],
               "neurology": ["neuro.chief", "neuro.assoc"]}
CALL_CLINIC, CALL_SPECIALIST = "township1", "med.assoc"
RACES = {"already_claimed", "offer_gone", "not_eligible", "invalid_transition", "session_ended", "not_in_session"}
SIGNATURE = synthetic_signature()


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


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = -(-q * len(ordered) // 100)  # nearest rank: ceil(q/100 * n)
    return ordered[min(len(ordered) - 1, max(0, int(rank) - 1))]


class Node:
    def __init__(self, name: str, db_url: str, redis_url: str, prefix: str, data_dir: str) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TELEHEALTH_SECRET_KEY": SECRET, "TELEHEALTH_LOG_LEVEL": "WARNING",
               "TELEHEALTH_REDIS_PREFIX": prefix, "TELEHEALTH_MATCHING__RING_TIMEOUT_S": "20",
               "TELEHEALTH_SIGNALING__RATE_PER_S": "1000", "TELEHEALTH_SIGNALING__RATE_BURST": "1000"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "telehealth", "serve", "--demo", "--port", str(self.port), "--node-name", name,
             "--data-dir", data_dir, "--database-url", db_url, "--redis-url", redis_url],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def ready(self) -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(self.base + "/readyz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Client:
    """One WebSocket of one user: numbered commands, events handed to a callback."""

    def __init__(self, name: str, ws: aiohttp.ClientWebSocketResponse, stats: Stats) -> None:
        self.name = name
        self.ws = ws
        self.stats = stats
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        # Each event with the time it arrived: latencies are measured at arrival, not when a busy loop gets to it.
        self.events: asyncio.Queue[tuple[str, dict[str, Any], float]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if data.get("type") == "result":
                fut = self.pending.pop(data["id"], None)
                if fut and not fut.done():
                    fut.set_result(data)
            elif data.get("type") == "event":
                self.events.put_nowait((data["event"], data["data"], time.time()))

    async def call(self, type_: str, **body: Any) -> dict[str, Any] | None:
        self.next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.send_str(json.dumps({"id": self.next_id, "type": type_, **body}))
        reply = await asyncio.wait_for(fut, 30)
        if reply["success"]:
            return dict(reply["result"])
        code = reply["error"]["code"]
        if code in RACES:
            self.stats.races += 1
        else:
            self.stats.errors.append(f"{self.name} {type_}: {code}")
        return None


class Stats:
    def __init__(self) -> None:
        self.offer_ms: list[float] = []
        self.measuring = True  # latencies are noted (not during the warm-up)
        self.completed = 0
        self.races = 0
        self.errors: list[str] = []
        self.calls = 0


async def connect(http: aiohttp.ClientSession, base: str, token: str, name: str, stats: Stats) -> Client:
    ws = await http.ws_connect(base.replace("http", "ws") + "/ws", headers={"Authorization": f"Bearer {token}"},
                               heartbeat=20)
    hello = await ws.receive_json()
    assert hello["event"] == "hello", hello
    return Client(name, ws, stats)


def request_body(specialty: str) -> dict[str, Any]:
    return {"patient": {"name": "Load Test", "sex": "other", "birth_year": 1970}, "specialty": specialty,
            "urgency": "urgent", "chief_complaint": f"load t={time.time():.6f}",
            "consent": {"by": "patient", "name": "Load Test", "signature": SIGNATURE}}


async def specialist_loop(client: Client, stop: asyncio.Event) -> None:
    await client.call("presence.set", status="available")
    while not stop.is_set():
        try:
            name, data, arrived = await asyncio.wait_for(client.events.get(), 0.5)
        except TimeoutError:
            continue
        if name != "offer":
            continue
        sent = float(str(data.get("chief_complaint", "")).split("t=")[-1] or 0)
        if sent and client.stats.measuring:
            client.stats.offer_ms.append((arrived - sent) * 1000)
        accepted = await client.call("offer.accept", consultation_id=data["consultation_id"])
        if accepted is not None:
            cid = data["consultation_id"]
            joined = await client.call("session.join", consultation_id=cid)
            if joined is not None:
                await client.call("session.chat", session_id=joined["session_id"], text="load")
                await client.call("session.hangup", session_id=joined["session_id"])
        await client.call("presence.set", status="available")


async def clinic_loop(client: Client, specialty: str, stop: asyncio.Event, think: float) -> None:
    # Clinics ask independently of each other: a random start and a think time of 0.5-1.5x `think`, so the
    # load is not six requests in lockstep.
    rng = random.Random(client.name)
    await asyncio.sleep(rng.uniform(0, think))
    while not stop.is_set():
        created = await client.call("consultation.create", **request_body(specialty))
        if created is None:
            await asyncio.sleep(1)
            continue
        cid = created["consultation"]["id"]
        deadline = time.monotonic() + 30
        done = False
        while time.monotonic() < deadline and not done:
            try:
                name, data, _ = await asyncio.wait_for(client.events.get(), 0.5)
            except TimeoutError:
                continue
            if data.get("consultation_id") != cid:
                continue
            if name == "session_ready":
                await client.call("session.join", consultation_id=cid)
            elif name == "session_ended":
                client.stats.completed += 1
                done = True
        if not done:
            await client.call("consultation.cancel", consultation_id=cid)
        await asyncio.sleep(rng.uniform(0.5, 1.5) * think)


def real_calls_process(base: str, count: int, seconds: float) -> tuple[int, list[str]]:
    """Run the real calls in a process of their own: encoding and decoding video must not slow the event
    loop that measures the offer latency. The process runs at a lower CPU priority: its peers stand for the
    doctors' own computers, which in a real deployment do not share the server's cores."""
    os.nice(10)
    stats = Stats()
    stop = asyncio.Event()

    async def run() -> None:
        timer = asyncio.get_running_loop().call_later(seconds, stop.set)
        await real_calls(base, count, stats, stop)
        timer.cancel()

    asyncio.run(run())
    return stats.calls, stats.errors


async def real_calls(base: str, count: int, stats: Stats, stop: asyncio.Event) -> None:
    """A few calls with real media (aiortc peers) beside the load, on the first node."""
    import aioice.ice

    from telehealth.media import CallPeer, TelehealthClient

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # loopback only
    for _ in range(count):
        if stop.is_set():
            return
        specialist = await TelehealthClient.login(base, CALL_SPECIALIST, DEMO_PASSWORD)
        clinic = await TelehealthClient.login(base, CALL_CLINIC, DEMO_PASSWORD)
        peers: list[Any] = []
        try:
            await specialist.call("presence.set", status="available")
            cid = (await clinic.call("consultation.create", **request_body("internal_medicine")))["consultation"]["id"]
            try:
                await specialist.next_event("offer", consultation_id=cid, timeout=20)
                await specialist.call("offer.accept", consultation_id=cid)
                await clinic.next_event("session_ready", consultation_id=cid, timeout=20)
                peers = [CallPeer(specialist, cid), CallPeer(clinic, cid)]
                for peer in peers:
                    await peer.join()
                frames = [await peer.wait_frames("video", 30, timeout=30) for peer in peers]
                if min(frames) >= 30:
                    stats.calls += 1
                else:
                    stats.errors.append(f"real call {cid}: only {frames} frames")
                await peers[0].hangup()
            except Exception as exc:
                stats.errors.append(f"real call {cid}: {exc!r}")
        finally:
            for peer in peers:
                await peer.close()
            await specialist.close()
            await clinic.close()


async def server_offer_p99_ms(http: aiohttp.ClientSession, nodes: list[Node]) -> float:
    """The nodes' own view: the histogram bucket holding the 99th percentile of queue-to-ring time, summed
    over the nodes (an upper bound, in ms)."""
    buckets: dict[float, float] = {}
    for node in nodes:
        async with http.get(node.base + "/metrics") as resp:
            for line in (await resp.text()).splitlines():
                if line.startswith("telehealth_offer_latency_seconds_bucket"):
                    le = line.split('le="')[1].split('"')[0]
                    bound = float("inf") if le == "+Inf" else float(le)
                    buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    total = buckets.get(float("inf"), 0.0)
    for bound in sorted(buckets):
        if total and buckets[bound] >= 0.99 * total:
            return bound * 1000
    return float("nan")


async def run_cluster(size: int, args: argparse.Namespace, db_url: str) -> dict[str, Any]:
    prefix = f"load{uuid.uuid4().hex[:8]}"
    data_dir = tempfile.mkdtemp(prefix="th-load-")
    nodes: list[Node] = []
    try:
        for i in range(size):
            node = Node(f"node-{i + 1}", db_url, args.redis_url, prefix, data_dir)
            nodes.append(node)
            await node.ready()
        stats = Stats()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            tokens = {}
            for name in [*CLINICS, *(s for group in SPECIALISTS.values() for s in group)]:
                async with http.post(nodes[0].base + "/api/tokens",
                                     json={"username": name, "password": DEMO_PASSWORD}) as resp:
                    tokens[name] = (await resp.json())["token"]

            # Idle: one request at a time.
            idle = Stats()
            spec = await connect(http, nodes[-1].base, tokens["cardio.chief"], "cardio.chief", idle)
            clinic = await connect(http, nodes[0].base, tokens["village1"], "village1", idle)
            stop_idle = asyncio.Event()
            idle_task = asyncio.create_task(specialist_loop(spec, stop_idle))
            await asyncio.sleep(0.5)
            for round_no in range(args.idle_warmup + args.idle_rounds):
                idle.measuring = round_no >= args.idle_warmup
                created = await clinic.call("consultation.create", **request_body("cardiology"))
                assert created is not None, idle.errors
                for _ in range(500):  # wait for the offer to have been measured
                    if len(idle.offer_ms) > round_no - args.idle_warmup:
                        break
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.3)
            stop_idle.set()
            await idle_task
            for c in (spec, clinic):
                await c.ws.close()

            # Load.
            clients: list[tuple[str, Client]] = []
            n = 0
            for names in SPECIALISTS.values():
                for name in names:
                    clients.append(("s", await connect(http, nodes[n % size].base, tokens[name], name, stats)))
                    n += 1
            for name, specialty in CLINICS.items():
                clients.append((specialty, await connect(http, nodes[n % size].base, tokens[name], name, stats)))
                n += 1
            rss_start = {node.name: rss_kib(node.proc.pid) for node in nodes}
            cpu_start = sum(cpu_ms(node.proc.pid) for node in nodes)
            stop = asyncio.Event()
            started = time.monotonic()
            # The first seconds open the nodes' database connections and fill their caches: offer latency is
            # noted from the end of the warm-up on (throughput and errors count from the start).
            stats.measuring = False
            asyncio.get_running_loop().call_later(args.warmup, setattr, stats, "measuring", True)
            tasks = [asyncio.create_task(specialist_loop(c, stop) if kind == "s"
                                         else clinic_loop(c, kind, stop, args.think)) for kind, c in clients]
            loop = asyncio.get_running_loop()
            with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
                media = loop.run_in_executor(pool, real_calls_process, nodes[0].base, args.calls, args.seconds)
                await asyncio.sleep(args.seconds)
                stop.set()
                results = await asyncio.gather(*tasks, return_exceptions=True)
                calls, call_errors = await media
            stats.calls += calls
            stats.errors += call_errors
            elapsed = time.monotonic() - started
            stats.errors += [f"task failed: {r!r}" for r in results if isinstance(r, BaseException)]
            rss_end = {node.name: rss_kib(node.proc.pid) for node in nodes}
            cpu_used = sum(cpu_ms(node.proc.pid) for node in nodes) - cpu_start
            server_p99 = await server_offer_p99_ms(http, nodes)
            for _, c in clients:
                await c.ws.close()
        growth = max((rss_end[k] - rss_start[k]) / rss_start[k] * 100 for k in rss_start)
        return {
            "nodes": size, "seconds": round(elapsed, 1), "completed": stats.completed,
            "consultations_per_min": round(stats.completed / elapsed * 60, 1),
            "offer_latency_idle_p50_ms": round(pct(idle.offer_ms, 50), 2),
            "offer_latency_idle_p99_ms": round(pct(idle.offer_ms, 99), 2),
            "offer_latency_p90_ms": round(pct(stats.offer_ms, 90), 2),
            "offer_latency_p50_ms": round(pct(stats.offer_ms, 50), 2),
            "offer_latency_p99_ms": round(pct(stats.offer_ms, 99), 2),
            "p99_vs_idle": round(pct(stats.offer_ms, 99) / pct(idle.offer_ms, 99), 2),
            "server_offer_p99_ms_at_most": server_p99,
            "races": stats.races, "errors": len(stats.errors) + len(idle.errors), "error_samples": stats.errors[:5],
            "real_calls": stats.calls, "rss_start_kib": rss_start, "rss_end_kib": rss_end,
            "rss_growth_pct": round(growth, 1),
            "cpu_ms_per_consultation": round(cpu_used / max(1, stats.completed), 2),
        }
    finally:
        for node in nodes:
            node.stop()
        with contextlib.suppress(Exception):
            import redis.asyncio as aioredis

            client = aioredis.from_url(args.redis_url)
            keys = [k async for k in client.scan_iter(match=f"{{{prefix}}}*", count=1000)]
            if keys:
                await client.delete(*keys)
            await client.aclose()


async def fresh_database(args: argparse.Namespace) -> tuple[str, Any]:
    """A new PostgreSQL database for the run (migrated), or an SQLite file when PostgreSQL is not reachable."""
    if args.database_url:
        return args.database_url, None
    try:
        import asyncpg

        name = f"th_load_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres", timeout=3)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "telehealth", "migrate", "--database-url",
                                                    url, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await proc.wait()

        async def drop() -> None:
            conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.close()

        return url, drop
    except Exception:
        path = Path(tempfile.mkdtemp(prefix="th-load-db-")) / "load.sqlite3"
        return f"sqlite+aiosqlite:///{path}", None


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for size in [int(n) for n in args.nodes.split(",")]:
        db_url, drop = await fresh_database(args)
        try:
            runs.append(await run_cluster(size, args, db_url))
        finally:
            if drop is not None:
                await drop()
    return {"runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="1,2,3", help="cluster sizes to run, comma-separated")
    parser.add_argument("--seconds", type=float, default=60, help="load phase length per cluster size")
    parser.add_argument("--calls", type=int, default=2, help="real aiortc calls beside the load")
    parser.add_argument("--think", type=float, default=1.0,
                        help="seconds a clinic waits after a call before asking again (0.2: near saturation)")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="seconds at the start of the load whose offer latencies are not counted")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--database-url", default="", help="default: a fresh PostgreSQL database on localhost")
    parser.add_argument("--idle-rounds", type=int, default=40, help="idle offers measured (after 5 to warm up)")
    parser.add_argument("--smoke", action="store_true", help="one node for a few seconds: shows that it runs")
    args = parser.parse_args()
    args.idle_warmup = 5
    if args.smoke:
        args.nodes, args.seconds, args.calls, args.warmup, args.idle_warmup, args.idle_rounds = "1", 3.0, 0, 1.0, 1, 4
    result = asyncio.run(main_async(args))
    runs = result["runs"]
    header = ("nodes", "per min", "offer p50", "offer p90", "offer p99", "idle p50", "idle p99", "ratio", "races",
              "errors", "calls", "rss growth")
    print(" ".join(f"{h:>10}" for h in header))
    for r in runs:
        print(" ".join(f"{v:>10}" for v in (r["nodes"], r["consultations_per_min"], r["offer_latency_p50_ms"],
                                             r["offer_latency_p90_ms"], r["offer_latency_p99_ms"],
                                             r["offer_latency_idle_p50_ms"], r["offer_latency_idle_p99_ms"],
                                             r["p99_vs_idle"], r["races"], r["errors"], r["real_calls"],
                                             f"{r['rss_growth_pct']} %")))
        for sample in r["error_samples"]:
            print(f"    error: {sample}")
    last = runs[-1]
    figures = {k: last[k] for k in ("consultations_per_min", "offer_latency_p50_ms", "offer_latency_p99_ms",
                                    "rss_growth_pct", "cpu_ms_per_consultation")}
    figures["errors"] = sum(r["errors"] for r in runs)
    figures["rss_growth_pct"] = max(r["rss_growth_pct"] for r in runs)
    figures["by_nodes"] = {str(r["nodes"]): {k: r[k] for k in (
        "consultations_per_min", "offer_latency_p50_ms", "offer_latency_p99_ms", "offer_latency_idle_p99_ms",
        "p99_vs_idle", "errors", "rss_growth_pct", "real_calls", "server_offer_p99_ms_at_most",
        "cpu_ms_per_consultation")} for r in runs}
    floors = {"offer_latency_idle_p50_ms": last["offer_latency_idle_p50_ms"],
              "offer_latency_idle_p99_ms": last["offer_latency_idle_p99_ms"]}
    ratios = {"p99_vs_idle": last["p99_vs_idle"]}
    goals = {"p99_vs_idle": goal(last["p99_vs_idle"], "<=", 2.0), "errors": goal(figures["errors"], "<=", 0)}
    print_goals(goals)
    print(json.dumps(report("load", args.smoke, figures, floors, ratios, goals), separators=(",", ":")))


if __name__ == "__main__":
    main()
