"""Capacity benchmark: a province's clinics and specialists, each holding its WebSocket, on 1, 2 or 3 nodes with
one Redis and one PostgreSQL, under open-loop Poisson arrivals raised step by step.

    python bench/capacity.py [--nodes 1,3] [--clinics 5000] [--specialists 600] [--rates 2,5,10,20,30,50,70]
                             [--step-seconds 20] [--drivers 2] [--time-limit 1800] [--smoke]

Everything listens on 127.0.0.1. For each cluster size the script makes a fresh PostgreSQL database
(127.0.0.1:5432, migrated), writes the province into it through the store (alliances of up to 500 village
clinics with one doctor each, and a city and a county hospital whose specialists cover the 7 specialties;
an API token per account), starts that many `telehealth serve` processes on it and on the shared Redis
(127.0.0.1:6379, a key prefix of the run's own), and starts `--drivers` client processes, separate from the
nodes, that connect every account to the nodes in turn and keep the sockets open.

Then, step by step, the drivers make consultations arrive at the step's rate (consultations per second for
the whole cluster, a Poisson process split evenly over the drivers, each arrival taken by an idle clinic of
the driver, whatever happened to the previous ones) for `--step-seconds`, and wait for the step's
consultations to finish. Each one goes: the clinic creates it (consent with a drawn signature) -> the server
rings a specialist -> the specialist accepts -> both join the call -> the clinic sends an offer and two
candidates, the specialist an answer and a candidate -> the specialist hangs up, saves the note over HTTP,
signs it and is available again. The offer latency runs from the clinic's create sent to the offer's arrival
at the specialist (wall clock of one machine). Errors are failed commands, timeouts, withdrawn offers and
exceptions. Stepping stops after the first step whose offer p99 passes `--p99-limit-ms` (100), that has
errors, that finished fewer consultations than arrived, or whose arrivals fell short of the rate by more
than a Poisson count allows (the drivers could not keep up): the highest step before it is the sustained
rate (`--past-limit` keeps stepping past the latency limit while steps stay clean: every arrival signed,
no error; for CPU figures at higher rates on a machine whose latency is not the project's own). A warm-up
at the first rate (`--warmup`, not counted) opens the nodes' database connections and fills
their caches first.

CPU time is read from the processes themselves over each step (its arrivals and its drain): the nodes'
`/proc/PID/stat`, the Redis server's (found by its port with psutil; it serves other work on a shared
machine too) and the PostgreSQL backends of the run's database (children of the server found by its port,
whose command line names the database). Divided by the consultations finished, this is the CPU-ms per
consultation, steady on a machine shared with other work where latencies are not; the run's figure is over
its clean steps, and also net of what the nodes spend idle with every socket open (measured before the
steps), with the rate one core could carry at that cost. With 1 and 3 nodes in one invocation
(`--nodes 1,3`) the growth of the nodes' CPU-ms per consultation from 1 to 3 nodes is measured over the
rates both sizes ran clean. Memory per node is the resident size with every socket open, before the
first step and after the last.

The run is bounded: no step starts that would end after `--time-limit` seconds, and the whole run is cut off
(nodes and drivers stopped, exit status 2) a minute past it.

`--smoke` runs one node, a few dozen accounts and two short steps, to show that it works; its figures mean
nothing.

Prints a table per cluster size, then as its last line one JSON object (the shape of bench/_common.py), with
the figures of the first cluster size and each size's under `by_nodes`:

    {"bench": "capacity", "smoke": false,
     "figures": {"sustained_rate", "sustained_per_node", "offer_p50_ms", "offer_p99_ms" (the highest
                 sustained step's, else the first step's), "offer_at_rate", "errors", "cpu_ms_per_consultation",
                 "cpu_ms_per_consultation_net_of_idle", "cpu_bound_rate_per_core",
                 "redis_cpu_ms_per_consultation", "postgres_cpu_ms_per_consultation", "rss_mib_per_node",
                 "sockets", "cpu_ms_growth_1_to_3" (with 1 and 3 nodes),
                 "by_nodes": {N: {..., "steps": [{"rate", "achieved", "offer_p50_ms", "offer_p99_ms", ...}]}}},
     "floors":  {"p99_limit_ms"},
     "ratios":  {"offer_p99_vs_limit"},
     "goals":   {"sustained_per_node" (>= 50), "cpu_ms_growth_1_to_3" (<= 1.10, with 1 and 3 nodes)},
     "goals_met": BOOL}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import cpu_ms, free_port, goal, pct, print_goals, ratio, report, rss_kib  # noqa: E402

# The driver processes import this file again: the project's modules are imported only where used, so that a
# driver starts in a fraction of a second.
SECRET = "bench-secret-key-0123456789"
PASSWORD = "capacity-pass-2026"
SPECIALTIES = ("cardiology", "paediatrics", "neurology", "internal_medicine", "dermatology", "obstetrics",
               "general_surgery")
CLINICS_PER_ALLIANCE = 500
RACES = {"already_claimed", "offer_gone"}
SDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CANDIDATE = {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "sdpMid": "0",
             "sdpMLineIndex": 0}
NOTE = {"assessment": "Stable; no red flags.", "plan": "Review in a week.", "disposition": {"kind": "manage_locally"}}
WAIT_S = 30.0


# -- the province ------------------------------------------------------------------------------------------


async def fresh_database() -> tuple[str, Any]:
    """A new, migrated PostgreSQL database for one cluster size, and how to drop it."""
    import asyncpg

    from telehealth.records.db import create_engine, migrate

    name = f"th_cap_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres", timeout=5)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    engine = create_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()

    async def drop() -> None:
        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres", timeout=5)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    return url, drop


async def seed_province(db_url: str, clinics: int, specialists: int) -> tuple[list[str], list[str]]:
    """Alliances of village clinics (one doctor each) and two hospitals whose specialists cover every
    specialty in each alliance; an API token per account. Returns the clinics' and specialists' tokens."""
    import datetime as dt

    from telehealth.accounts import api_token_digest, hash_password_async, new_token
    from telehealth.domain import OrgLevel, Role, Title
    from telehealth.records.db import create_engine
    from telehealth.records.store import Store

    alliances = max(1, min(-(-clinics // CLINICS_PER_ALLIANCE), specialists // len(SPECIALTIES)))
    if specialists < len(SPECIALTIES) * alliances:
        raise SystemExit(f"--specialists must be at least {len(SPECIALTIES)} (one per specialty)")
    engine = create_engine(db_url)
    store = Store(engine)
    now = dt.datetime.now(dt.UTC)
    password_hash = await hash_password_async(PASSWORD)
    titles = (Title.attending, Title.associate_chief, Title.chief)
    clinic_tokens: list[str] = [""] * clinics
    specialist_tokens: list[str] = [""] * specialists
    gate = asyncio.Semaphore(4)

    async def account(username: str, name: str, role: Role, org_id: int, title: Title | None,
                      specialties: tuple[str, ...]) -> str:
        user = await store.insert_user(username, password_hash, name, role, organisation_id=org_id, now=now,
                                       title=title, specialties=specialties)
        token = new_token()
        await store.insert_api_token(api_token_digest(token), user.id, "capacity", now)
        return token

    async def alliance_seed(a: int) -> None:
        async with gate, store.transaction():
            alliance = await store.insert_alliance(f"Capacity Alliance {a + 1}", "city_group", region=f"Region {a}")
            hospitals = [await store.insert_organisation(f"Capacity City Hospital {a + 1}", OrgLevel.city_hospital,
                                                         alliance_id=alliance.id, region=f"Region {a}"),
                         await store.insert_organisation(f"Capacity County Hospital {a + 1}",
                                                         OrgLevel.county_hospital, alliance_id=alliance.id,
                                                         region=f"Region {a}")]
            # Specialist j works in alliance j % alliances; within it, the specialties go round.
            for j in range(a, specialists, alliances):
                k = j // alliances
                specialist_tokens[j] = await account(
                    f"cap.s{j}", f"Specialist {j}", Role.specialist, hospitals[k % 2].id, titles[k % 3],
                    (SPECIALTIES[k % len(SPECIALTIES)],))
        mine = list(range(a, clinics, alliances))
        for chunk in range(0, len(mine), 250):
            async with gate, store.transaction():
                for i in mine[chunk:chunk + 250]:
                    org = await store.insert_organisation(f"Capacity Village Clinic {i}", OrgLevel.village_clinic,
                                                          alliance_id=alliance.id, region=f"Region {a}")
                    clinic_tokens[i] = await account(f"cap.c{i}", f"Clinic doctor {i}", Role.clinic_doctor, org.id,
                                                     None, ())

    try:
        await asyncio.gather(*(alliance_seed(a) for a in range(alliances)))
    finally:
        await engine.dispose()
    return clinic_tokens, specialist_tokens


# -- nodes and the shared servers --------------------------------------------------------------------------


def _die_with_parent() -> None:
    """A node the script started stops when the script does, even when it is killed (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Node:
    def __init__(self, name: str, db_url: str, redis_url: str, prefix: str, data_dir: str, log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = (log_dir / f"{name}.log").open("wb")
        env = {**os.environ, "TELEHEALTH_SECRET_KEY": SECRET, "TELEHEALTH_LOG_LEVEL": "WARNING",
               "TELEHEALTH_REDIS_PREFIX": prefix}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "telehealth", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--node-name", name, "--data-dir", data_dir, "--database-url", db_url, "--redis-url", redis_url],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    async def ready(self) -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited (see its log)")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(self.base + "/readyz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def listener_pid(port: int) -> int | None:
    import psutil

    for c in psutil.net_connections("tcp"):
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            return int(c.pid)
    return None


class CpuMeter:
    """CPU time of the Redis server and of the PostgreSQL backends of one database, sampled often enough that
    a backend that exits during a step is counted up to its last sample."""

    def __init__(self, db_name: str) -> None:
        self.db_name = db_name
        self.redis_pid = listener_pid(6379)
        self.pg_pid = listener_pid(5432)
        self.last: dict[int, float] = {}
        self.mark: dict[int, float] = {}

    @staticmethod
    def _cpu(proc: Any) -> float:
        t = proc.cpu_times()
        return float(t.user + t.system) * 1000

    def sample(self) -> None:
        import psutil

        if self.redis_pid:
            with contextlib.suppress(psutil.Error):
                self.last[-1] = self._cpu(psutil.Process(self.redis_pid))
        if self.pg_pid:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(self.pg_pid).children():
                    with contextlib.suppress(psutil.Error):
                        if f" {self.db_name} " in " ".join(child.cmdline()) + " ":
                            self.last[child.pid] = self._cpu(child)

    def start(self) -> None:
        self.sample()
        self.mark = dict(self.last)

    def used(self) -> tuple[float, float]:
        """(Redis, PostgreSQL) CPU-ms since `start`; a backend first seen since then counts from 0."""
        self.sample()
        redis = self.last.get(-1, 0.0) - self.mark.get(-1, 0.0)
        pg = sum(v - self.mark.get(pid, 0.0) for pid, v in self.last.items() if pid != -1)
        return redis, pg


# -- the drivers -------------------------------------------------------------------------------------------


class Step:
    def __init__(self) -> None:
        self.offer_ms: list[float] = []
        self.arrivals = 0
        self.created = 0
        self.completed = 0
        self.races = 0
        self.no_idle_clinic = 0
        self.lag_ms: list[float] = []
        self.errors: list[str] = []

    def as_dict(self) -> dict[str, Any]:
        return {"offer_ms": self.offer_ms, "arrivals": self.arrivals, "created": self.created,
                "completed": self.completed, "races": self.races, "no_idle_clinic": self.no_idle_clinic,
                "lag_p99_ms": pct(self.lag_ms, 0.99) if self.lag_ms else 0.0, "errors": len(self.errors),
                "error_samples": self.errors[:5]}


class Failed(Exception):
    pass


class Socket:
    """One account's WebSocket: numbered commands, the events a consultation waits for, and signals."""

    def __init__(self, driver: Driver, ws: aiohttp.ClientWebSocketResponse, token: str, base: str,
                 specialist: bool) -> None:
        self.driver = driver
        self.ws = ws
        self.token = token
        self.base = base
        self.specialist = specialist
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.slots: dict[tuple[str, int], asyncio.Future[dict[str, Any]]] = {}
        self.signals: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self.seen_signals: set[str] = set()
        self.reader = asyncio.create_task(self._read())

    def slot(self, event: str, key: int) -> asyncio.Future[dict[str, Any]]:
        fut = self.slots.get((event, key))
        if fut is None:
            fut = self.slots[(event, key)] = asyncio.get_running_loop().create_future()
        return fut

    def inbox(self, session_id: int) -> asyncio.Queue[dict[str, Any]]:
        return self.signals.setdefault(session_id, asyncio.Queue())

    def take_signal(self, data: dict[str, Any]) -> None:
        if data["id"] not in self.seen_signals:
            self.seen_signals.add(data["id"])
            self.inbox(int(data["session_id"])).put_nowait(data)

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            arrived = time.time()
            data = json.loads(msg.data)
            if data.get("type") == "result":
                fut = self.pending.pop(data["id"], None)
                if fut and not fut.done():
                    fut.set_result(data)
                continue
            event, body = data.get("event"), data.get("data", {})
            if event == "offer":
                self.driver.spawn(self.driver.take_offer(self, body, arrived))
            elif event == "signal":
                self.take_signal(body)
            elif event in ("session_ready", "session_ended"):
                fut = self.slot(event, int(body["consultation_id"]))
                if not fut.done():
                    fut.set_result(body)
            elif event == "offer_withdrawn" and body.get("reason") != "accepted_by_other":
                self.driver.step.errors.append(f"offer withdrawn: {body.get('reason')}")
            elif event == "presence" and self.specialist:
                self.driver.step.errors.append(f"presence set by the server: {body.get('reason')}")
                self.driver.spawn(self.call("presence.set", status="available"))
        self.driver.step.errors.append("socket closed")

    async def call(self, type_: str, **body: Any) -> dict[str, Any]:
        self.next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.send_str(json.dumps({"id": self.next_id, "type": type_, **body}))
        try:
            reply = await asyncio.wait_for(fut, WAIT_S)
        except TimeoutError:
            raise Failed(f"{type_}: no answer in {WAIT_S:.0f} s") from None
        if reply["success"]:
            return dict(reply["result"])
        code = reply["error"]["code"]
        if code in RACES:
            self.driver.step.races += 1
        raise Failed(f"{type_}: {code}")

    async def wait(self, event: str, key: int) -> dict[str, Any]:
        fut = self.slot(event, key)
        try:
            return await asyncio.wait_for(fut, WAIT_S)
        except TimeoutError:
            raise Failed(f"no {event} in {WAIT_S:.0f} s") from None
        finally:
            self.slots.pop((event, key), None)

    async def signals_in(self, session_id: int, count: int) -> None:
        box = self.inbox(session_id)
        try:
            for _ in range(count):
                await asyncio.wait_for(box.get(), WAIT_S)
        except TimeoutError:
            raise Failed(f"signals missing after {WAIT_S:.0f} s") from None
        finally:
            self.signals.pop(session_id, None)


class Driver:
    def __init__(self, bases: list[str], clinics: list[tuple[str, int]], specialists: list[tuple[str, int]],
                 signature: str, seed: int) -> None:
        self.bases = bases
        self.clinic_accounts = clinics
        self.specialist_accounts = specialists
        self.signature = signature
        self.rng = random.Random(seed)
        self.step = Step()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.quiet = asyncio.Event()  # set while no consultation is under way
        self.quiet.set()
        self.idle: list[Socket] = []
        self.sockets: list[Socket] = []
        self.http: aiohttp.ClientSession | None = None

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        self.quiet.clear()
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not self.tasks:
            self.quiet.set()

    async def connect_all(self, http: aiohttp.ClientSession) -> int:
        self.http = http
        gate = asyncio.Semaphore(32)
        failures = 0

        async def one(token: str, node: int, specialist: bool) -> None:
            nonlocal failures
            async with gate:
                for attempt in range(3):
                    try:
                        ws = await http.ws_connect(self.bases[node].replace("http", "ws") + "/ws", heartbeat=20,
                                                   headers={"Authorization": f"Bearer {token}"})
                        hello = await ws.receive_json(timeout=30)
                        if hello.get("event") != "hello":
                            raise RuntimeError(f"no hello: {hello}")
                        break
                    except Exception:
                        if attempt == 2:
                            failures += 1
                            return
                        await asyncio.sleep(1)
                sock = Socket(self, ws, token, self.bases[node], specialist)
                self.sockets.append(sock)
                if specialist:
                    await sock.call("presence.set", status="available")
                else:
                    self.idle.append(sock)

        await asyncio.gather(*(one(t, n, False) for t, n in self.clinic_accounts),
                             *(one(t, n, True) for t, n in self.specialist_accounts))
        return failures

    async def consult(self, clinic: Socket, step: Step) -> None:
        """The clinic's side of one consultation; the clinic is idle again when it has ended."""
        try:
            sent = time.time()
            body = {"patient": {"name": "Capacity Test", "sex": "other", "birth_year": 1970},
                    "specialty": self.rng.choice(SPECIALTIES), "urgency": "urgent",
                    "chief_complaint": f"capacity t={sent:.6f}",
                    "consent": {"by": "patient", "name": "Capacity Test", "signature": self.signature}}
            cid = int((await clinic.call("consultation.create", **body))["consultation"]["id"])
            step.created += 1
            ready = await clinic.wait("session_ready", cid)
            sid = int(ready["session_id"])
            joined = await clinic.call("session.join", consultation_id=cid)
            for kept in joined.get("signals", []):
                clinic.take_signal(kept)
            await clinic.call("session.signal", session_id=sid, kind="offer", payload={"sdp": SDP})
            for _ in range(2):
                await clinic.call("session.signal", session_id=sid, kind="candidate", payload=CANDIDATE)
            await clinic.signals_in(sid, 2)
            await clinic.wait("session_ended", cid)
        except Failed as exc:
            step.errors.append(f"clinic {exc}")
        except Exception as exc:
            step.errors.append(f"clinic {exc!r}")
        finally:
            self.idle.append(clinic)

    async def take_offer(self, spec: Socket, offer: dict[str, Any], arrived: float) -> None:
        """The specialist's side: accept, call, hang up, sign the note, available again."""
        step = self.step
        try:
            sent = float(str(offer.get("chief_complaint", "")).split("t=")[-1])
            step.offer_ms.append((arrived - sent) * 1000)
            cid = int(offer["consultation_id"])
            sid = int((await spec.call("offer.accept", consultation_id=cid))["session_id"])
            joined = await spec.call("session.join", consultation_id=cid)
            for kept in joined.get("signals", []):
                spec.take_signal(kept)
            await spec.signals_in(sid, 3)
            await spec.call("session.signal", session_id=sid, kind="answer", payload={"sdp": SDP})
            await spec.call("session.signal", session_id=sid, kind="candidate", payload=CANDIDATE)
            await spec.call("session.hangup", session_id=sid)
            auth = {"Authorization": f"Bearer {spec.token}"}
            url = f"{spec.base}/api/consultations/{cid}/note"
            assert self.http is not None
            async with self.http.put(url, json=NOTE, headers=auth) as resp:
                if resp.status != 200:
                    raise Failed(f"note: HTTP {resp.status}")
            async with self.http.post(url + "/sign", json={}, headers=auth) as resp:
                if resp.status != 200:
                    raise Failed(f"sign: HTTP {resp.status}")
            step.completed += 1
        except Failed as exc:
            step.errors.append(f"specialist {exc}")
        except Exception as exc:
            step.errors.append(f"specialist {exc!r}")
        finally:
            with contextlib.suppress(Exception):
                await spec.call("presence.set", status="available")

    async def run_step(self, rate: float, seconds: float, drain: float) -> dict[str, Any]:
        """Poisson arrivals at `rate` for `seconds`, then wait (at most `drain` s) for what is under way."""
        step = self.step = Step()
        loop = asyncio.get_running_loop()
        start = loop.time()
        due = start + self.rng.expovariate(rate) if rate > 0 else start + seconds
        while due < start + seconds:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            step.lag_ms.append(max(0.0, loop.time() - due) * 1000)
            step.arrivals += 1
            if self.idle:
                clinic = self.idle.pop(self.rng.randrange(len(self.idle)))
                self.spawn(self.consult(clinic, step))
            else:
                step.no_idle_clinic += 1
            due += self.rng.expovariate(rate)
        await asyncio.sleep(max(0.0, start + seconds - loop.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.quiet.wait(), drain)
        if self.tasks:
            step.errors.append(f"{len(self.tasks)} consultations unfinished after the drain")
        return step.as_dict()


def driver_process(pipe: Connection, bases: list[str], clinics: list[tuple[str, int]],
                   specialists: list[tuple[str, int]], signature: str, seed: int, hard_limit: float) -> None:
    """One client process: connects its accounts, then runs each step the orchestrator sends."""
    # A driver never outlives the run, whatever happens to the script that started it.
    signal.signal(signal.SIGALRM, lambda *_: os._exit(3))
    signal.alarm(max(1, int(hard_limit)))

    async def run() -> None:
        driver = Driver(bases, clinics, specialists, signature, seed)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            failures = await driver.connect_all(http)
            pipe.send({"connected": len(driver.sockets), "failures": failures})
            while True:
                msg = await asyncio.to_thread(pipe.recv)
                if msg["cmd"] == "stop":
                    break
                pipe.send(await driver.run_step(msg["rate"], msg["seconds"], msg["drain"]))
            for sock in driver.sockets:
                with contextlib.suppress(Exception):
                    await sock.ws.close()

    asyncio.run(run())


# -- the orchestrator --------------------------------------------------------------------------------------


def summarise_step(rate: float, seconds: float, parts: list[dict[str, Any]], nodes_cpu: float, redis_cpu: float,
                   pg_cpu: float, elapsed: float, p99_limit: float, idle_cpu_per_s: float) -> dict[str, Any]:
    offers = [x for p in parts for x in p["offer_ms"]]
    completed = sum(p["completed"] for p in parts)
    arrivals = sum(p["arrivals"] for p in parts)
    errors = sum(p["errors"] for p in parts)
    per = max(1, completed)
    p99 = pct(offers, 0.99)
    row = {
        "rate": rate, "arrivals": arrivals, "completed": completed,
        "achieved": round(completed / seconds, 2),
        "offer_p50_ms": round(pct(offers, 0.50), 2), "offer_p99_ms": round(p99, 2), "offers": len(offers),
        "errors": errors, "races": sum(p["races"] for p in parts),
        "no_idle_clinic": sum(p["no_idle_clinic"] for p in parts),
        "driver_lag_p99_ms": round(max(p["lag_p99_ms"] for p in parts), 2),
        "seconds": round(elapsed, 1),
        "nodes_cpu_ms": round(nodes_cpu, 1), "redis_cpu_ms": round(redis_cpu, 1), "postgres_cpu_ms": round(pg_cpu, 1),
        "cpu_ms_per_consultation": round(nodes_cpu / per, 2),
        "cpu_ms_per_consultation_net_of_idle": round(max(0.0, nodes_cpu - idle_cpu_per_s * elapsed) / per, 2),
        "redis_cpu_ms_per_consultation": round(redis_cpu / per, 2),
        "postgres_cpu_ms_per_consultation": round(pg_cpu / per, 2),
        "error_samples": [s for p in parts for s in p["error_samples"]][:5],
    }
    why = []
    if not offers or p99 != p99 or p99 > p99_limit:
        why.append(f"offer p99 {row['offer_p99_ms']} ms > {p99_limit} ms" if offers else "no offers")
    if errors:
        why.append(f"{errors} errors")
    if completed < arrivals:
        why.append(f"{arrivals - completed} of {arrivals} not completed")
    # The drivers could not keep up with the schedule: fewer arrivals than a Poisson count allows (3 sigma).
    expected = rate * seconds
    if arrivals < expected - 3 * expected ** 0.5:
        why.append(f"{arrivals} arrivals of {expected:.0f} expected")
    # Clean: every arrival carried to its signed note without an error, whatever the latency (its CPU figures
    # count even where a busy machine stretched the latency past the limit).
    row["clean"] = errors == 0 and completed == arrivals
    row["sustained"] = not why
    row["why_not"] = "; ".join(why)
    return row


async def run_cluster(size: int, args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    from telehealth.records.consent import synthetic_signature

    prefix = f"cap{uuid.uuid4().hex[:8]}"
    data_dir = tempfile.mkdtemp(prefix="th-cap-")
    log_dir = Path(data_dir)
    db_url, drop = await fresh_database()
    nodes: list[Node] = []
    drivers: list[tuple[Any, Connection]] = []
    keep_logs = True  # until the run has ended without an error: the nodes' logs say what went wrong
    try:
        t0 = time.monotonic()
        clinic_tokens, specialist_tokens = await seed_province(db_url, args.clinics, args.specialists)
        print(f"[{size} node(s)] province seeded: {args.clinics} clinics, {args.specialists} specialists "
              f"in {time.monotonic() - t0:.1f} s", flush=True)
        nodes = [Node(f"node-{i + 1}", db_url, args.redis_url, prefix, data_dir, log_dir) for i in range(size)]
        await asyncio.gather(*(n.ready() for n in nodes))
        bases = [n.base for n in nodes]
        clinics = [(tok, i % size) for i, tok in enumerate(clinic_tokens)]
        specialists = [(tok, j % size) for j, tok in enumerate(specialist_tokens)]
        ctx = mp.get_context("spawn")
        count = max(1, min(args.drivers, len(clinics)))
        hard = max(60.0, deadline - time.monotonic() + 30)
        t0 = time.monotonic()
        for d in range(count):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=driver_process, daemon=True, args=(
                theirs, bases, clinics[d::count], specialists[d::count], synthetic_signature(), d, hard))
            proc.start()
            drivers.append((proc, mine))
        hellos = [await asyncio.to_thread(pipe.recv) for _, pipe in drivers]
        sockets = sum(h["connected"] for h in hellos)
        connect_s = time.monotonic() - t0
        print(f"[{size} node(s)] {sockets} sockets open ({sum(h['failures'] for h in hellos)} failed) "
              f"in {connect_s:.1f} s", flush=True)
        db_name = db_url.rsplit("/", 1)[1]
        meter = CpuMeter(db_name)
        await asyncio.sleep(1.0)
        # What the nodes spend with every socket open and nothing happening (heartbeats, presence, sweeps).
        idle_start = [cpu_ms(n.proc.pid) for n in nodes]
        await asyncio.sleep(args.idle_seconds)
        idle_cpu_per_s = [(cpu_ms(n.proc.pid) - s) / args.idle_seconds for n, s in zip(nodes, idle_start, strict=True)]
        rss_before = [rss_kib(n.proc.pid) for n in nodes]
        if args.warmup > 0:
            for _, pipe in drivers:
                pipe.send({"cmd": "step", "rate": args.rates[0] / count, "seconds": args.warmup, "drain": args.drain})
            warm = [await asyncio.to_thread(pipe.recv) for _, pipe in drivers]
            print(f"[{size} node(s)] warm-up: {sum(p['completed'] for p in warm)} consultations, "
                  f"{sum(p['errors'] for p in warm)} errors", flush=True)
        steps: list[dict[str, Any]] = []
        stopped = "every rate ran"
        for rate in args.rates:
            if time.monotonic() + args.step_seconds + args.drain > deadline:
                stopped = "time limit"
                break
            node_cpu_start = sum(cpu_ms(n.proc.pid) for n in nodes)
            meter.start()
            sampler = asyncio.create_task(_sample(meter))
            started = time.monotonic()
            for _, pipe in drivers:
                pipe.send({"cmd": "step", "rate": rate / count, "seconds": args.step_seconds, "drain": args.drain})
            parts = [await asyncio.to_thread(pipe.recv) for _, pipe in drivers]
            elapsed = time.monotonic() - started
            sampler.cancel()
            nodes_cpu = sum(cpu_ms(n.proc.pid) for n in nodes) - node_cpu_start
            redis_cpu, pg_cpu = meter.used()
            row = summarise_step(rate, args.step_seconds, parts, nodes_cpu, redis_cpu, pg_cpu, elapsed,
                                 args.p99_limit_ms, sum(idle_cpu_per_s))
            row["rss_mib"] = [round(rss_kib(n.proc.pid) / 1024, 1) for n in nodes]
            steps.append(row)
            print(f"[{size} node(s)] {rate:>6}/s: achieved {row['achieved']:>7}/s  offer p50 {row['offer_p50_ms']:>7} "
                  f"p99 {row['offer_p99_ms']:>8} ms  errors {row['errors']}  node CPU "
                  f"{row['cpu_ms_per_consultation']} ms/consultation  driver lag p99 {row['driver_lag_p99_ms']} ms"
                  + ("" if row["sustained"] else f"  -> {'on' if args.past_limit and row['clean'] else 'stop'}: "
                                                 f"{row['why_not']}"), flush=True)
            for sample in row["error_samples"]:
                print(f"    error: {sample}", flush=True)
            if not row["sustained"] and not (args.past_limit and row["clean"]):
                stopped = row["why_not"]
                break
        rss_after = [rss_kib(n.proc.pid) for n in nodes]
        for _, pipe in drivers:
            with contextlib.suppress(Exception):
                pipe.send({"cmd": "stop"})
        keep_logs = any(s["errors"] for s in steps)
        passed = [s for s in steps if s["sustained"]]
        best = max(passed, key=lambda s: s["rate"]) if passed else None
        shown = best or (steps[0] if steps else None)
        clean = [s for s in steps if s["clean"]]
        net = _per(clean, "nodes_cpu_ms") - sum(idle_cpu_per_s) * sum(s["seconds"] for s in clean) / max(
            1, sum(s["completed"] for s in clean))
        return {
            "nodes": size, "sockets": sockets, "connect_seconds": round(connect_s, 1),
            "sustained_rate": best["rate"] if best else 0.0,
            "sustained_per_node": round(best["rate"] / size, 2) if best else 0.0,
            "offer_p50_ms": shown["offer_p50_ms"] if shown else float("nan"),
            "offer_p99_ms": shown["offer_p99_ms"] if shown else float("nan"),
            "offer_at_rate": shown["rate"] if shown else 0.0,
            "errors": sum(s["errors"] for s in steps),
            "cpu_ms_per_consultation": _per(clean, "nodes_cpu_ms"),
            "cpu_ms_per_consultation_net_of_idle": round(net, 2),
            # What one core of the nodes could carry if CPU were all it took (no waiting on the database).
            "cpu_bound_rate_per_core": round(1000 / net, 1) if net > 0 else float("nan"),
            "redis_cpu_ms_per_consultation": _per(clean, "redis_cpu_ms"),
            "postgres_cpu_ms_per_consultation": _per(clean, "postgres_cpu_ms"),
            "idle_node_cpu_ms_per_s": [round(x, 1) for x in idle_cpu_per_s],
            "rss_mib_per_node": round(max(rss_after + rss_before) / 1024, 1),
            "rss_mib_before": [round(x / 1024, 1) for x in rss_before],
            "rss_mib_after": [round(x / 1024, 1) for x in rss_after],
            "stopped": stopped, "steps": steps,
        }
    finally:
        for proc, pipe in drivers:
            proc.join(20)
            if proc.is_alive():
                proc.kill()
            pipe.close()
        for node in nodes:
            node.stop()
        with contextlib.suppress(Exception):
            import redis.asyncio as aioredis

            client = aioredis.from_url(args.redis_url)
            keys = [k async for k in client.scan_iter(match=f"{{{prefix}}}*", count=1000)]
            for i in range(0, len(keys), 1000):
                await client.delete(*keys[i:i + 1000])
            await client.aclose()
        await drop()
        if keep_logs:
            print(f"[{size} node(s)] the nodes' logs are kept in {log_dir}", flush=True)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


async def _sample(meter: CpuMeter) -> None:
    while True:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(meter.sample)


def _per(steps: list[dict[str, Any]], key: str) -> float:
    done = sum(s["completed"] for s in steps)
    return round(sum(s[key] for s in steps) / done, 2) if done else float("nan")


def growth(runs: dict[int, dict[str, Any]]) -> float | None:
    """Nodes' CPU-ms per consultation on 3 nodes over 1 node, over the rates both ran clean."""
    if 1 not in runs or 3 not in runs:
        return None
    rates = ({s["rate"] for s in runs[1]["steps"] if s["clean"]}
             & {s["rate"] for s in runs[3]["steps"] if s["clean"]})
    if not rates:
        return float("nan")
    one = _per([s for s in runs[1]["steps"] if s["rate"] in rates], "nodes_cpu_ms")
    three = _per([s for s in runs[3]["steps"] if s["rate"] in rates], "nodes_cpu_ms")
    return round(three / one, 3)


async def main_async(args: argparse.Namespace) -> dict[int, dict[str, Any]]:
    deadline = time.monotonic() + args.time_limit
    runs: dict[int, dict[str, Any]] = {}
    for size in args.nodes:
        runs[size] = await run_cluster(size, args, deadline)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="1", help="cluster sizes (1, 2, 3), comma-separated; 1,3 measures growth")
    parser.add_argument("--clinics", type=int, default=300)
    parser.add_argument("--specialists", type=int, default=70)
    parser.add_argument("--rates", default="2,5,10,20,30,50,70",
                        help="consultations per second for the whole cluster, one step each, comma-separated")
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--drain", type=float, default=40.0,
                        help="at most this long after a step's arrivals for its consultations to finish")
    parser.add_argument("--drivers", type=int, default=2, help="client processes holding the sockets")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds at the first rate before the steps")
    parser.add_argument("--idle-seconds", type=float, default=3.0,
                        help="the nodes' CPU with every socket open and nothing happening, measured this long")
    parser.add_argument("--p99-limit-ms", type=float, default=100.0)
    parser.add_argument("--past-limit", action="store_true",
                        help="keep stepping past the latency limit while steps stay clean (CPU figures at higher "
                             "rates on a machine whose latency is not the project's own)")
    parser.add_argument("--time-limit", type=float, default=600.0, help="no step starts that would end later")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--smoke", action="store_true", help="one node, tiny sizes, two short steps: shows it runs")
    args = parser.parse_args()
    if args.smoke:
        args.nodes, args.clinics, args.specialists, args.rates = "1", 16, 7, "4,8"
        args.step_seconds, args.drain, args.drivers, args.idle_seconds, args.time_limit = 2.0, 15.0, 1, 0.5, 120.0
        args.warmup = 2.0
    args.nodes = [int(n) for n in str(args.nodes).split(",")]
    if any(n not in (1, 2, 3) for n in args.nodes):
        parser.error("--nodes takes sizes of 1, 2 or 3")
    args.rates = [float(r) for r in str(args.rates).split(",")]

    try:
        runs = asyncio.run(asyncio.wait_for(main_async(args), args.time_limit + 60))
    except TimeoutError:
        print("the run passed its time limit and was stopped", file=sys.stderr)
        sys.exit(2)

    header = ("nodes", "sockets", "sustained", "per node", "offer p50", "offer p99", "errors", "node CPU",
              "Redis CPU", "PG CPU", "RSS MiB", "stopped")
    print(" ".join(f"{h:>10}" for h in header))
    for r in runs.values():
        print(" ".join(f"{v:>10}" for v in (
            r["nodes"], r["sockets"], r["sustained_rate"], r["sustained_per_node"], r["offer_p50_ms"],
            r["offer_p99_ms"], r["errors"], r["cpu_ms_per_consultation"], r["redis_cpu_ms_per_consultation"],
            r["postgres_cpu_ms_per_consultation"], r["rss_mib_per_node"])), r["stopped"])
    first = runs[args.nodes[0]]
    keys = ("sustained_rate", "sustained_per_node", "offer_p50_ms", "offer_p99_ms", "offer_at_rate", "errors",
            "cpu_ms_per_consultation", "cpu_ms_per_consultation_net_of_idle", "cpu_bound_rate_per_core",
            "redis_cpu_ms_per_consultation", "postgres_cpu_ms_per_consultation", "rss_mib_per_node", "sockets")
    figures: dict[str, Any] = {k: first[k] for k in keys}
    figures["errors"] = sum(r["errors"] for r in runs.values())
    grown = growth(runs)
    if grown is not None:
        figures["cpu_ms_growth_1_to_3"] = grown
    figures["by_nodes"] = {str(n): {k: v for k, v in r.items()} for n, r in runs.items()}
    floors = {"p99_limit_ms": args.p99_limit_ms}
    ratios = {"offer_p99_vs_limit": ratio(first["offer_p99_ms"], args.p99_limit_ms)}
    goals = {"sustained_per_node": goal(max(r["sustained_per_node"] for r in runs.values()), ">=", 50.0)}
    if grown is not None:
        goals["cpu_ms_growth_1_to_3"] = goal(grown, "<=", 1.10)
    print_goals(goals)
    print(json.dumps(report("capacity", args.smoke, figures, floors, ratios, goals), separators=(",", ":")))


if __name__ == "__main__":
    main()
