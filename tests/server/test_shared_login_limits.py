"""The login limits every node shares through Redis agree with the ones in a node's memory, figure for figure;
two nodes count one guesser together; and a Redis that does not answer leaves sign-ins limited per node."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis import asyncio as aioredis

from telehealth.config import load_settings
from telehealth.login_limits import CODE, KNOWN_ADDRESS_S, PASSWORD, LoginLimiter, MemoryLoginLimiter
from telehealth.records.seed import DEMO_PASSWORD
from telehealth.server.app import create_app
from telehealth.server.redis_login_limits import RedisLoginLimiter
from tests.conftest import make_settings
from tests.server.test_login_limits import log_in

REDIS_URL = "redis://127.0.0.1:6379/0"
# free 5, account_free 20, delay 2 s, at most 900 s, forgotten 300 s after the last wait.
SECURITY = load_settings(profile="test", env={}, overrides={"security": {"login_window_s": 300}}).security


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[LoginLimiter]:
    if request.param == "memory":
        yield MemoryLoginLimiter.from_settings(SECURITY)
        return
    prefix = f"limits-{uuid.uuid4().hex[:8]}"
    shared = RedisLoginLimiter(aioredis.from_url(REDIS_URL), SECURITY, prefix=prefix)
    try:
        yield shared
    finally:
        await shared.close()
        await forget(prefix)


async def forget(prefix: str) -> None:
    """Leave nothing behind in the shared Redis (a known address is kept there for 30 days)."""
    redis = aioredis.from_url(REDIS_URL)
    try:
        async for key in redis.scan_iter(match="{" + prefix + "}:*"):
            await redis.delete(key)
    finally:
        await redis.aclose()


async def test_the_delay_grows_alike(limiter: LoginLimiter) -> None:
    for _ in range(5):
        assert await limiter.begin(PASSWORD, "village1", "198.51.100.1", 1000) == 0
    assert await limiter.begin(PASSWORD, "village1", "198.51.100.1", 1000) == 2
    assert await limiter.begin(PASSWORD, "Village1 ", "198.51.100.1", 1001.5) == 1
    assert await limiter.begin(PASSWORD, "village1", "198.51.100.1", 1002) == 0
    assert await limiter.begin(PASSWORD, "village1", "198.51.100.1", 1002) == 4
    # Another address, and the other step, are not held.
    assert await limiter.begin(PASSWORD, "village1", "203.0.113.5", 1002) == 0
    assert await limiter.begin(CODE, "village1", "198.51.100.1", 1002) == 0
    # 299 s after the last wait ended (at 1006) the count is still there: this is the eighth failure, 8 s.
    assert await limiter.begin(PASSWORD, "village1", "198.51.100.1", 1305) == 0
    assert await limiter.begin(PASSWORD, "village1", "198.51.100.1", 1305) == 8
    # 300 s after that wait (to 1313) it is forgotten: five free failures again.
    for _ in range(5):
        assert await limiter.begin(PASSWORD, "village1", "198.51.100.1", 1613) == 0
    assert await limiter.begin(PASSWORD, "village1", "198.51.100.1", 1613) == 2
    # A whole sign-in clears it at once.
    await limiter.succeeded("village1", "198.51.100.1", 1700)
    for _ in range(5):
        assert await limiter.begin(PASSWORD, "village1", "198.51.100.1", 1700) == 0


async def test_the_account_counts_every_address_but_spares_a_known_one(limiter: LoginLimiter) -> None:
    await limiter.succeeded("village1", "203.0.113.5", 0)
    for a in range(4):
        for _ in range(6):  # the sixth from each address is refused, and one address adds at most five
            await limiter.begin(PASSWORD, "village1", f"198.51.100.{a}", 10)
    assert await limiter.begin(PASSWORD, "village1", "203.0.113.6", 10) == 2
    assert await limiter.begin(PASSWORD, "village1", "203.0.113.5", 10) == 0
    # Spared for 30 days after its sign-in, not longer.
    for a in range(4, 8):
        for _ in range(5):
            await limiter.begin(PASSWORD, "village1", f"198.51.100.{a}", KNOWN_ADDRESS_S)
    assert await limiter.begin(PASSWORD, "village1", "203.0.113.5", KNOWN_ADDRESS_S) == 2
    # A step passed clears that step's counts only.
    for _ in range(5):
        await limiter.begin(CODE, "admin", "198.51.100.1", 20)
    await limiter.passed(PASSWORD, "admin", "198.51.100.1")
    assert await limiter.begin(CODE, "admin", "198.51.100.1", 20) == 2


async def test_two_nodes_count_one_guesser_together(aiohttp_client: Any, tmp_path: Path) -> None:
    prefix = f"limits-{uuid.uuid4().hex[:8]}"
    shared = {"redis_url": REDIS_URL, "redis_prefix": prefix, "security": {"trusted_proxies": ["127.0.0.1"]}}
    first = await aiohttp_client(create_app(make_settings(tmp_path, **shared)))
    second = await aiohttp_client(create_app(make_settings(tmp_path, **shared)))
    for node in (first, second, first, second, first):
        assert (await log_in(node, "village1", "guess-123456", "198.51.100.66")).status == 401
    for node in (first, second):
        resp = await log_in(node, "village1", DEMO_PASSWORD, "198.51.100.66")
        assert resp.status == 429 and resp.headers["Retry-After"] == "2"
    # The owner, elsewhere, signs in on either node.
    assert (await log_in(second, "village1", DEMO_PASSWORD, "203.0.113.20")).status == 303
    await forget(prefix)


async def test_without_redis_a_node_limits_on_its_own(aiohttp_client: Any, tmp_path: Path) -> None:
    # Nothing listens on port 1: every Redis call fails, and the node counts in its memory instead.
    limiter = RedisLoginLimiter(aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1),
                                SECURITY, prefix="nowhere")
    try:
        for _ in range(5):
            assert await limiter.begin(PASSWORD, "village1", "198.51.100.1", 0) == 0
        assert await limiter.begin(PASSWORD, "village1", "198.51.100.1", 0) == 2
        await limiter.succeeded("village1", "198.51.100.1", 1)
        assert await limiter.begin(PASSWORD, "village1", "198.51.100.1", 2) == 0
    finally:
        await limiter.close()
