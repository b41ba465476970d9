"""Matching benchmark: offer latency at several queue sizes, and racing claims, on both brokers.

    python bench/matching.py [--quick | --smoke] [--backends memory,redis] [--redis-url URL] [--database-url URL]

What it measures (all on loopback, bounded in count and time):

* offer latency: a clinic submits a request through the matcher (records written to the store) and the
  one idle eligible specialist's subscription (the channel its WebSocket node listens on) receives the
  offer. 500 specialists are online (all busy but the one probed); the queue holds N other waiting
  requests of the same specialty, which the probed specialist may not take (another alliance), so the
  queue's size is felt by every broker operation but does not change who is rung. For Redis, the clinic
  side and the specialist side are two nodes: two processes with their own broker connections.
* claims: C consultations, each claimed by two racers at once, racers split across two nodes (processes for
  Redis); it counts claims per second, consultations with two winners (double_claims) and consultations
  nobody won (lost).

* floors, in the same run and interleaved with the offer rounds: the broker and store operations an offer is
  made of, called directly one after the other: the store's insert of a request (queued, with its consent and
  events), the broker's enqueue, its list of available specialists, its ring, and one message published on a
  channel to a subscriber of this process. The floor of a round is their sum; the offer's p99 is compared with
  the p99 of that sum. For Redis claims, the floor is a bare Lua script (SET NX) from the same racers.

`--smoke` runs it all in a few seconds with tiny sizes, to show that it works; its figures mean nothing.

Prints a table, then as its last line one JSON object (the shape of bench/_common.py), each key prefixed by
its backend (`memory_`, `redis_`):

    {"bench": "matching", "smoke": false,
     "figures": {"<b>_offer_p50_ms", "<b>_offer_p99_ms", "<b>_offer_p50_ms_by_queued": {N: ms},
                 "<b>_latency_ratio_largest_vs_100", "<b>_claims_per_s", "<b>_double_claims", "<b>_lost",
                 "<b>_queued", "<b>_specialists_online"},
     "floors":  {"<b>_offer_p50_ms", "<b>_offer_p99_ms", "<b>_offer_ops_p50_ms": {op: ms},
                 "redis_claims_per_s"},
     "ratios":  {"<b>_offer_p50", "<b>_offer_p99", "redis_claims"},
     "goals":   {"memory_offer_p99" (<= 3 x floor), "<b>_no_double_claims" (<= 0), "redis_claims_per_s" (>= 5000)},
     "goals_met": BOOL}
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import goal, pct, print_goals, ratio, report

from telehealth.config import load_settings
from telehealth.domain import OrgLevel, Presence, Role, Title, Urgency
from telehealth.events import decode_event, encode_event
from telehealth.matching.broker import Broker, Message, QueueEntry
from telehealth.matching.rules import build_entry, queue_score
from telehealth.matching.service import Matcher
from telehealth.records.db import create_engine, migrate
from telehealth.records.models import NewConsultation, User
from telehealth.records.store import Store

SETTINGS = load_settings(profile="test", env={}).matching


def make_broker(kind: str, redis_url: str, prefix: str, node: str) -> Broker:
    if kind == "memory":
        from telehealth.matching.memory import MemoryBroker

        return MemoryBroker(node=node)
    from telehealth.matching.redis_broker import RedisBroker

    return RedisBroker(redis_url, prefix=prefix, node=node)


# -- offer latency ----------------------------------------------------------------------------------

async def seed_world(store: Store, count: int) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    own = await store.insert_alliance(f"bench-own-{uuid.uuid4().hex[:6]}", "county_community")
    other = await store.insert_alliance(f"bench-other-{uuid.uuid4().hex[:6]}", "county_community")
    clinic = await store.insert_organisation(f"clinic-{own.id}", OrgLevel.village_clinic, alliance_id=own.id)
    hospital = await store.insert_organisation(f"hospital-{own.id}", OrgLevel.county_hospital, alliance_id=own.id)
    far_clinic = await store.insert_organisation(f"far-clinic-{other.id}", OrgLevel.village_clinic,
                                                 alliance_id=other.id)
    await store.insert_organisation(f"far-hospital-{other.id}", OrgLevel.county_hospital, alliance_id=other.id)
    doctor = await store.insert_user(f"doc-{own.id}", "x", "Doc", Role.clinic_doctor, organisation_id=clinic.id,
                                     now=now)
    specialists = []
    for i in range(count):
        specialists.append(await store.insert_user(
            f"spec-{own.id}-{i}", "x", f"S{i}", Role.specialist, organisation_id=hospital.id, now=now,
            title=Title.attending, specialties=("cardiology",)))
    return {"doctor": doctor, "specialists": specialists, "far_clinic": far_clinic.id}


def request(urgency: Urgency) -> NewConsultation:
    return NewConsultation(patient_name="bench", patient_sex="other", patient_birth_year=1970, patient_local_id="",
                           specialty="cardiology", urgency=urgency, chief_complaint="bench",
                           consent_by="patient", consent_name="bench")


async def fill_queue(broker: Broker, count: int, far_clinic: int, start_id: int) -> None:
    """Waiting requests the probe may not take: from a clinic of another alliance, never widened."""
    now = time.time()
    for i in range(count):
        await broker.enqueue(QueueEntry(
            consultation_id=start_id + i, specialty="cardiology", urgency="routine",
            score=queue_score(now - i * 0.001, "routine", SETTINGS), enqueued_at=now, clinic_org_id=far_clinic,
            primary_org_ids=frozenset({-1}), partner_org_ids=frozenset({-1}), widen_at=now + 86400,
            expires_at=now + 86400))


async def probe_loop(broker: Broker, matcher: Matcher, probe: User, results: Any, rounds: int, node: str,
                     ready: Any = None) -> None:
    """The probed specialist: takes each offer it is rung for, hands it back, and is available again."""
    received: asyncio.Queue[tuple[float, int]] = asyncio.Queue()

    async def on_message(message: Message) -> None:
        name, data = decode_event(message.data)
        if name == "offer":
            received.put_nowait((time.perf_counter(), data["consultation_id"]))

    sub = await broker.subscribe(on_message, f"user:{probe.id}")
    await matcher.set_presence(probe, Presence.available, node)
    if ready is not None:
        ready.put(("ready", time.perf_counter()))
    for _ in range(rounds):
        at, cid = await asyncio.wait_for(received.get(), 30)
        results.put(("offer", at, cid))
        await broker.release_offer(cid, probe.id)
        await broker.remove(cid)
        await matcher.set_presence(probe, Presence.available, node)
        results.put(("done", time.perf_counter(), cid))
    await sub.close()


async def specialist_side(kind: str, redis_url: str, prefix: str, db_url: str, probe_id: int,
                          ready: Any, results: Any, rounds: int) -> None:
    """Node B: holds the probed specialist's subscription."""
    engine = create_engine(db_url)
    store = Store(engine)
    broker = make_broker(kind, redis_url, prefix, "node-b")
    await broker.start()
    probe = await store.get_user(probe_id)
    assert probe is not None
    await probe_loop(broker, Matcher(store, broker, SETTINGS), probe, results, rounds, "node-b", ready)
    await broker.close()
    await engine.dispose()


def specialist_process(*args: Any) -> None:
    asyncio.run(specialist_side(*args))


class FloorRound:
    """The operations an offer is made of, called directly: each timed, the round's floor is their sum."""

    OPS = ("store_insert", "broker_enqueue", "broker_available", "broker_ring", "publish_deliver")

    def __init__(self, store: Store, broker: Broker, matcher: Matcher, world: dict[str, Any], probe: User,
                 node: str) -> None:
        self.store, self.broker, self.matcher, self.world, self.probe, self.node = (
            store, broker, matcher, world, probe, node)
        self.channel = f"bench-floor:{uuid.uuid4().hex[:8]}"
        self.got = asyncio.Event()
        self.samples: dict[str, list[float]] = {op: [] for op in self.OPS}
        self.totals: list[float] = []

    async def start(self) -> None:
        doctor: User = self.world["doctor"]
        assert doctor.organisation_id is not None
        self.primary, self.partners = await self.store.get_partner_hospitals(doctor.organisation_id,
                                                                             dt.datetime.now(dt.UTC))
        self.sub = await self.broker.subscribe(self._on_message, self.channel)

    async def _on_message(self, message: Message) -> None:
        self.got.set()

    async def run(self) -> None:
        doctor: User = self.world["doctor"]
        assert doctor.organisation_id is not None
        marks = [time.perf_counter()]
        consultation = await self.store.insert_consultation(
            request(Urgency.emergency), clinic_org_id=doctor.organisation_id, doctor_id=doctor.id,
            now=dt.datetime.now(dt.UTC), queue=True)
        marks.append(time.perf_counter())
        entry = build_entry(consultation, enqueued_at=time.time(), primary_org_ids=self.primary,
                            partner_org_ids=self.partners, settings=SETTINGS)
        marks.append(time.perf_counter())
        await self.broker.enqueue(entry)
        marks.append(time.perf_counter())
        await self.broker.available_specialists("cardiology")
        marks.append(time.perf_counter())
        rung = await self.broker.offer(consultation.id, [self.probe.id], time.time() + 60)
        marks.append(time.perf_counter())
        self.got.clear()
        await self.broker.publish(self.channel, encode_event("offer", {"consultation_id": consultation.id}))
        await asyncio.wait_for(self.got.wait(), 30)
        marks.append(time.perf_counter())
        assert rung == [self.probe.id], rung
        # build_entry (marks 1 -> 2) is the matcher's own rule, not a floor.
        spans = [marks[1] - marks[0], marks[3] - marks[2], marks[4] - marks[3], marks[5] - marks[4],
                 marks[6] - marks[5]]
        for op, span in zip(self.OPS, spans, strict=True):
            self.samples[op].append(span * 1000)
        self.totals.append(sum(spans) * 1000)
        await self.broker.release_offer(consultation.id, self.probe.id)
        await self.broker.remove(consultation.id)
        await self.matcher.set_presence(self.probe, Presence.available, self.node)

    async def close(self) -> None:
        await self.sub.close()


async def offer_latency(kind: str, redis_url: str, db_url: str, queued: int, rounds: int,
                        specialists: int) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    engine = create_engine(db_url)
    await migrate(engine)
    store = Store(engine)
    world = await seed_world(store, specialists)
    broker = make_broker(kind, redis_url, prefix, "node-a")
    await broker.start()
    await broker.ensure_epoch()
    matcher = Matcher(store, broker, SETTINGS)
    for spec in world["specialists"][1:]:
        await matcher.set_presence(spec, Presence.busy, "node-a")
    await fill_queue(broker, queued, world["far_clinic"], 10_000_000)
    probe: User = world["specialists"][0]
    probe_node = "node-a" if kind == "memory" else "node-b"
    floor = FloorRound(store, broker, matcher, world, probe, probe_node)
    await floor.start()
    latencies: list[float] = []
    proc = None
    if kind == "memory":
        # One process: the subscription lives beside the matcher, as on a single node.
        results: asyncio.Queue[Any] = asyncio.Queue()

        class LocalQueue:
            def put(self, item: Any) -> None:
                results.put_nowait(item)

        task = asyncio.create_task(probe_loop(broker, matcher, probe, LocalQueue(), rounds, "node-a"))
        await asyncio.sleep(0.05)

        async def next_result() -> Any:
            return await results.get()
    else:
        ctx = mp.get_context("spawn")
        ready, out = ctx.Queue(), ctx.Queue()
        proc = ctx.Process(target=specialist_process,
                           args=(kind, redis_url, prefix, db_url, probe.id, ready, out, rounds))
        proc.start()
        await asyncio.to_thread(ready.get, True, 60)

        async def next_result() -> Any:
            return await asyncio.to_thread(out.get, True, 60)
    for _ in range(rounds):
        start = time.perf_counter()
        await matcher.submit(request(Urgency.emergency), world["doctor"])
        while True:
            item = await next_result()
            if item[0] == "offer":
                latencies.append((item[1] - start) * 1000)
            elif item[0] == "done":
                break
        # Interleaved, so that both see the same machine.
        await floor.run()
    if proc is None:
        await task
    else:
        await asyncio.to_thread(proc.join, 60)
    await floor.close()
    queue_size = await broker.queue_length("cardiology")
    await broker.close()
    await engine.dispose()
    return {"offer_latency_p50_ms": round(statistics.median(latencies), 3),
            "offer_latency_p99_ms": round(pct(latencies, 0.99), 3), "queued": queue_size, "rounds": rounds,
            "floor_p50_ms": round(statistics.median(floor.totals), 3),
            "floor_p99_ms": round(pct(floor.totals, 0.99), 3),
            "floor_ops_p50_ms": {op: round(statistics.median(v), 3) for op, v in floor.samples.items()}}


# -- racing claims ----------------------------------------------------------------------------------

async def claim_racers(kind: str, redis_url: str, prefix: str, ids: list[int], racer_base: int,
                       concurrency: int, broker: Broker | None = None) -> tuple[list[int], float]:
    own = broker is None
    if broker is None:
        broker = make_broker(kind, redis_url, prefix, f"racer-{racer_base}")
        await broker.start()
    won: list[int] = []
    pending = list(ids)
    started = time.perf_counter()

    async def worker(racer: int) -> None:
        while pending:
            cid = pending.pop()
            outcome = await broker.claim(cid, racer)
            if outcome.value == "won":
                won.append(cid)

    await asyncio.gather(*(worker(racer_base + i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    if own:
        await broker.close()
    return won, elapsed


def racer_process(kind: str, redis_url: str, prefix: str, ids: list[int], racer_base: int, concurrency: int,
                  out: Any) -> None:
    won, elapsed = asyncio.run(claim_racers(kind, redis_url, prefix, ids, racer_base, concurrency))
    out.put((won, elapsed))


BARE_CLAIM = "if redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 1 end return 0"


async def bare_claim_racers(redis_url: str, prefix: str, ids: list[int], racer_base: int,
                            concurrency: int) -> tuple[int, float]:
    """The floor of a claim: one Lua script that sets a key if it is not set, nothing else."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    script = client.register_script(BARE_CLAIM)
    pending = list(ids)
    won = 0
    started = time.perf_counter()

    async def worker(racer: int) -> None:
        nonlocal won
        while pending:
            cid = pending.pop()
            won += int(await script(keys=[f"{{{prefix}}}bare:{cid}"], args=[racer]))

    await asyncio.gather(*(worker(racer_base + i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    await client.aclose()
    return won, elapsed


def bare_racer_process(redis_url: str, prefix: str, ids: list[int], racer_base: int, concurrency: int,
                       out: Any) -> None:
    out.put(asyncio.run(bare_claim_racers(redis_url, prefix, ids, racer_base, concurrency)))


async def bare_claims(redis_url: str, consultations: int) -> dict[str, float]:
    prefix = f"barerace{uuid.uuid4().hex[:6]}"
    ids = list(range(1, consultations + 1))
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=bare_racer_process, args=(redis_url, prefix, ids, base, 16, out))
             for base in (1, 1001)]
    for p in procs:
        p.start()
    results = [await asyncio.to_thread(out.get, True, 600) for _ in procs]
    for p in procs:
        p.join(30)
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    async for key in client.scan_iter(match=f"{{{prefix}}}*", count=1000):
        await client.delete(key)
    await client.aclose()
    return {"claims_per_s": round(2 * consultations / max(r[1] for r in results)),
            "won": sum(r[0] for r in results)}


async def racing_claims(kind: str, redis_url: str, consultations: int) -> dict[str, float]:
    prefix = f"race{uuid.uuid4().hex[:6]}"
    broker = make_broker(kind, redis_url, prefix, "seeder")
    await broker.start()
    now = time.time()
    for cid in range(1, consultations + 1):
        await broker.enqueue(QueueEntry(consultation_id=cid, specialty="cardiology", urgency="routine",
                                        score=now + cid, enqueued_at=now, clinic_org_id=1, expires_at=0.0))
    ids = list(range(1, consultations + 1))
    attempts = 2 * consultations
    if kind == "memory":
        # Two "nodes" in one process, each racing for every consultation, interleaved on one loop.
        started = time.perf_counter()
        (won_a, _), (won_b, _) = await asyncio.gather(
            claim_racers(kind, redis_url, prefix, ids, 1, 8, broker),
            claim_racers(kind, redis_url, prefix, list(ids), 1001, 8, broker))
        elapsed = time.perf_counter() - started
    else:
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        procs = [ctx.Process(target=racer_process, args=(kind, redis_url, prefix, ids, base, 16, out))
                 for base in (1, 1001)]
        started = time.perf_counter()
        for p in procs:
            p.start()
        results = [await asyncio.to_thread(out.get, True, 600) for _ in procs]
        elapsed = time.perf_counter() - started
        for p in procs:
            p.join(30)
        won_a, won_b = results[0][0], results[1][0]
        elapsed = max(r[1] for r in results)
    winners: dict[int, int] = {}
    for cid in won_a + won_b:
        winners[cid] = winners.get(cid, 0) + 1
    double = sum(1 for n in winners.values() if n > 1)
    lost = consultations - len(winners)
    if kind == "redis":
        import redis.asyncio as aioredis

        client = aioredis.from_url(redis_url)
        async for key in client.scan_iter(match=f"{{{prefix}}}*", count=1000):
            await client.delete(key)
        await client.aclose()
    await broker.close()
    return {"claims_per_s": round(attempts / elapsed), "claim_attempts": attempts, "double_claims": double,
            "lost": lost}


# -- main -------------------------------------------------------------------------------------------

async def run_backend(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    if args.smoke:
        rounds, sizes, specialists, claims_n = 8, [100, 1000], 20, 300
    elif args.quick:
        rounds, sizes, specialists, claims_n = 60, [100, 1000, 10_000], 500, 10_000
    else:
        rounds, sizes, specialists, claims_n = 300, [100, 1000, 100_000], 500, 50_000
    result: dict[str, Any] = {}
    by_size: dict[int, dict[str, Any]] = {}
    for size in sizes:
        db_url, cleanup = await database_for(kind, args)
        try:
            by_size[size] = await offer_latency(kind, args.redis_url, db_url, size, rounds, specialists)
        finally:
            await cleanup()
        r = by_size[size]
        print(f"{kind:7} queued={size:>7}  offer p50 {r['offer_latency_p50_ms']:7.2f} ms  "
              f"p99 {r['offer_latency_p99_ms']:7.2f} ms   floor p50 {r['floor_p50_ms']:7.2f} ms  "
              f"p99 {r['floor_p99_ms']:7.2f} ms  ({' '.join(f'{k} {v}' for k, v in r['floor_ops_p50_ms'].items())})",
              flush=True)
    main = by_size[1000]
    result.update(main)
    result["queued"] = 1000
    result["specialists_online"] = specialists
    result["offer_latency_by_queued_p50_ms"] = {str(k): v["offer_latency_p50_ms"] for k, v in by_size.items()}
    largest = max(sizes)
    result["latency_ratio_largest_vs_100"] = round(
        by_size[largest]["offer_latency_p50_ms"] / by_size[100]["offer_latency_p50_ms"], 2)
    claims = await racing_claims(kind, args.redis_url, claims_n)
    result.update(claims)
    print(f"{kind:7} claims {claims['claims_per_s']:>8}/s  attempts {claims['claim_attempts']}  "
          f"double {claims['double_claims']}  lost {claims['lost']}", flush=True)
    if kind == "redis":
        bare = await bare_claims(args.redis_url, claims_n)
        result["bare_claims_per_s"] = bare["claims_per_s"]
        print(f"{kind:7} bare Lua claims {bare['claims_per_s']:>8}/s", flush=True)
    return result


def summarise(out: dict[str, dict[str, Any]], smoke: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    floors: dict[str, Any] = {}
    ratios: dict[str, Any] = {}
    goals: dict[str, Any] = {}
    for kind, r in out.items():
        figures.update({
            f"{kind}_offer_p50_ms": r["offer_latency_p50_ms"], f"{kind}_offer_p99_ms": r["offer_latency_p99_ms"],
            f"{kind}_offer_p50_ms_by_queued": r["offer_latency_by_queued_p50_ms"],
            f"{kind}_latency_ratio_largest_vs_100": r["latency_ratio_largest_vs_100"],
            f"{kind}_claims_per_s": r["claims_per_s"], f"{kind}_double_claims": r["double_claims"],
            f"{kind}_lost": r["lost"], f"{kind}_queued": r["queued"],
            f"{kind}_specialists_online": r["specialists_online"]})
        floors.update({f"{kind}_offer_p50_ms": r["floor_p50_ms"], f"{kind}_offer_p99_ms": r["floor_p99_ms"],
                       f"{kind}_offer_ops_p50_ms": r["floor_ops_p50_ms"]})
        ratios[f"{kind}_offer_p50"] = ratio(r["offer_latency_p50_ms"], r["floor_p50_ms"])
        ratios[f"{kind}_offer_p99"] = ratio(r["offer_latency_p99_ms"], r["floor_p99_ms"])
        goals[f"{kind}_no_double_claims"] = goal(r["double_claims"], "<=", 0)
        if kind == "memory":
            goals["memory_offer_p99"] = goal(ratios["memory_offer_p99"], "<=", 3.0)
        if kind == "redis":
            floors["redis_claims_per_s"] = r["bare_claims_per_s"]
            ratios["redis_claims"] = ratio(r["claims_per_s"], r["bare_claims_per_s"])
            goals["redis_claims_per_s"] = goal(r["claims_per_s"], ">=", 5000)
    print(" ".join(f"{k} {v}x" for k, v in ratios.items()), flush=True)
    print_goals(goals)
    return report("matching", smoke, figures, floors, ratios, goals)


async def database_for(kind: str, args: argparse.Namespace) -> tuple[str, Any]:
    if kind == "memory" or not args.database_url:
        folder = tempfile.mkdtemp(prefix="th-bench-")

        async def nothing() -> None:
            return None

        return f"sqlite+aiosqlite:///{folder}/bench.sqlite3", nothing
    import asyncpg

    name = f"th_bench_{uuid.uuid4().hex[:8]}"
    dsn = args.database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()

    async def drop() -> None:
        c = await asyncpg.connect(dsn)
        await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await c.close()

    return f"{args.database_url.rsplit('/', 1)[0]}/{name}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and a 10,000 queue instead of 100,000")
    parser.add_argument("--smoke", action="store_true", help="a few rounds, tiny sizes: shows that it runs")
    parser.add_argument("--backends", default="memory,redis")
    parser.add_argument("--redis-url", default=os.environ.get("TELEHEALTH_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--database-url", default=os.environ.get(
        "TELEHEALTH_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"),
        help="PostgreSQL for the Redis runs (the production layout); empty: SQLite")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    for kind in args.backends.split(","):
        out[kind] = asyncio.run(run_backend(kind, args))
    print(json.dumps(summarise(out, args.smoke), separators=(",", ":")))


if __name__ == "__main__":
    main()
