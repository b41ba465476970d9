"""Redis restarted empty under a running node: the node reconnects, rebuilds the queue from the store,
and offers reach specialists again. Uses a redis-server of its own on a free port."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from telehealth.records.consent import synthetic_signature
from telehealth.server import keys
from tests.conftest import make_settings
from tests.support.processes import free_port
from tests.support.wsclient import Node, serve

SIGNATURE = synthetic_signature()
CREATE = {
    "patient": {"name": "Lin Fang", "sex": "female", "birth_year": 1984}, "specialty": "cardiology",
    "urgency": "routine", "chief_complaint": "palpitations at night", "consent": {"by": "patient", "name": "Lin Fang", "signature": SIGNATURE},
}


class RedisProcess:
    def __init__(self, port: int, folder: Path) -> None:
        self.port = port
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    redis = RedisProcess(free_port(), tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture
async def node(tmp_path: Path, redis_process: RedisProcess) -> AsyncIterator[Node]:
    await asyncio.sleep(0.2)
    settings = make_settings(tmp_path, redis_url=f"redis://127.0.0.1:{redis_process.port}/0",
                             matching={"ring_timeout_s": 20})
    async with serve(settings) as n:
        yield n


async def test_a_redis_restart_loses_no_consultation(node: Node, redis_process: RedisProcess) -> None:
    clinic = await node.connect("village1")
    created = [(await clinic.ok("consultation.create", **CREATE))["consultation"]["id"] for _ in range(3)]
    broker = node.server.app[keys.BROKER]  # type: ignore[union-attr]
    assert await broker.queue_length("cardiology") == 3

    redis_process.stop()
    redis_process.start()  # back, and empty
    for _ in range(100):
        try:
            if await broker.queue_length("cardiology") == 3:
                break
        except Exception:
            pass  # still reconnecting
        await asyncio.sleep(0.1)
    head = await broker.queue_head("cardiology", 10)
    assert [e.consultation_id for e in head] == created  # rebuilt from the store, in the same order

    # Pub/sub works again: a specialist coming online is rung for the oldest request.
    specialist = await node.connect("cardio.chief")
    await specialist.ok("presence.set", status="available")
    offer = await specialist.event("offer", timeout=10)
    assert offer["consultation_id"] == created[0]
    accepted = await specialist.ok("offer.accept", consultation_id=created[0])
    await clinic.event("session_ready", session_id=accepted["session_id"], timeout=10)


async def test_a_redis_restart_keeps_the_place_of_declined_and_ringing_requests(
        node: Node, redis_process: RedisProcess) -> None:
    clinic = await node.connect("village1")
    first = (await clinic.ok("consultation.create", **CREATE))["consultation"]["id"]
    second = (await clinic.ok("consultation.create", **CREATE))["consultation"]["id"]
    broker = node.server.app[keys.BROKER]  # type: ignore[union-attr]

    # The first request is declined (back in the queue, after the second was queued), then rung to another
    # specialist, and Redis is lost while it rings.
    attending = await node.connect("cardio.attending")
    await attending.ok("presence.set", status="available")
    assert (await attending.event("offer", timeout=10))["consultation_id"] == first
    await attending.ok("offer.decline", consultation_id=first, reason="busy_with_patient")
    chief = await node.connect("cardio.chief")
    await chief.ok("presence.set", status="available")
    assert (await chief.event("offer", timeout=10))["consultation_id"] == first
    live = await broker.get(first)
    assert live is not None and live.state.value == "offered"
    score = live.entry.score

    redis_process.stop()
    redis_process.start()  # back, and empty
    head = []
    for _ in range(100):
        try:
            head = await broker.queue_head("cardiology", 10)
            if len(head) == 2:
                break
        except Exception:
            pass  # still reconnecting
        await asyncio.sleep(0.1)
    # Rebuilt from the store by the time each first entered the queue, not by the last return to it.
    assert [e.consultation_id for e in head] == [first, second]
    assert head[0].score == pytest.approx(score, abs=1e-3)
