"""A request keeps its place in the queue through the real server, on each broker: taken, given back after its
call dropped, then rung and declined, it is still ahead of a request made after it, with the same
`waiting_since`; and the clinic sees the same position."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from telehealth.records.consent import synthetic_signature
from tests.conftest import make_settings
from tests.support.wsclient import Node, Peer, serve

REDIS_URL = "redis://127.0.0.1:6379/0"
CREATE = {
    "patient": {"name": "Lin Fang", "sex": "female", "birth_year": 1984}, "specialty": "cardiology",
    "urgency": "routine", "chief_complaint": "palpitations at night",
    "consent": {"by": "patient", "name": "Lin Fang", "signature": synthetic_signature()},
}


@pytest.fixture(params=["memory", "redis"])
async def node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Node]:
    prefix = f"qp{uuid.uuid4().hex[:10]}"
    overrides = {} if request.param == "memory" else {"redis_url": REDIS_URL, "redis_prefix": prefix}
    try:
        # A short grace period, so that a dropped call ends soon after its connection is lost.
        settings = make_settings(tmp_path, signaling={"reconnect_grace_s": 0.5}, **overrides)
        async with serve(settings) as n:
            yield n
    finally:
        if request.param == "redis":
            client = aioredis.from_url(REDIS_URL)
            keys = [k async for k in client.scan_iter(match=f"{{{prefix}}}*", count=1000)]
            if keys:
                await client.delete(*keys)
            await client.aclose()


async def queue(specialist: Peer) -> list[tuple[int, float]]:
    items: list[dict[str, Any]] = (await specialist.ok("queue.list"))["items"]
    return [(i["consultation_id"], i["waiting_since"]) for i in items]


async def test_given_back_and_declined_it_keeps_its_place(node: Node) -> None:
    clinic = await node.connect("village1")
    first = (await clinic.ok("consultation.create", **CREATE))["consultation"]["id"]
    second = (await clinic.ok("consultation.create", **CREATE))["consultation"]["id"]
    specialist = await node.connect("cardio.chief")
    before = await queue(specialist)
    assert [i[0] for i in before] == [first, second]

    # Taken; the call starts, the specialist's connection drops and they do not come back in time; back at
    # the desk, they give the request back to the queue.
    session_id = (await specialist.ok("consultation.take", consultation_id=first))["session_id"]
    assert [i[0] for i in await queue(specialist)] == [second]
    await specialist.ok("session.join", consultation_id=first)
    await clinic.ok("session.join", consultation_id=first)
    await specialist.close()
    ended = await clinic.event("session_ended", session_id=session_id, timeout=20)
    assert ended["reason"] == "network"
    specialist = await node.connect("cardio.chief")
    await specialist.ok("consultation.requeue", consultation_id=first)
    assert await queue(specialist) == before
    assert (await clinic.ok("consultation.watch", consultation_id=second))["consultation"]["position"] == 2

    # Rung when the specialist is free again, and declined: back in the same place.
    await specialist.ok("presence.set", status="available")
    assert (await specialist.event("offer", timeout=10))["consultation_id"] == first
    await specialist.ok("offer.decline", consultation_id=first, reason="busy_with_patient")
    assert await queue(specialist) == before
