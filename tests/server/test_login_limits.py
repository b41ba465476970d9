"""Login limits through the real server: per account and per (account, address), a delay that grows, never a
lock of everyone behind one address; the same for the API's tokens; the forwarded address only from a proxy."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from telehealth.records import schema as t
from telehealth.records.seed import DEMO_PASSWORD
from telehealth.server import keys
from telehealth.server.app import create_app
from tests.conftest import csrf_from, make_settings

ATTACKER = "198.51.100.66"
OWNER = "203.0.113.20"


class Clock:
    """The server's clock, moved by the test instead of waited for."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def proxied_client(aiohttp_client: Any, tmp_path: Path, **security: Any) -> tuple[TestClient, Clock]:  # type: ignore[type-arg]
    settings = make_settings(tmp_path, security={"trusted_proxies": ["127.0.0.1"], **security})
    client = await aiohttp_client(create_app(settings))
    clock = Clock()
    client.app[keys.SERVICES].clock = clock  # type: ignore[index]
    return client, clock


async def log_in(client: TestClient, username: str, password: str, address: str) -> Any:  # type: ignore[type-arg]
    client.session.cookie_jar.clear()
    page = await client.get("/login")
    return await client.post("/login", data={"username": username, "password": password,
                                             "csrf_token": csrf_from(await page.text())},
                             headers={"X-Forwarded-For": address}, allow_redirects=False)


async def test_one_address_guessing_many_accounts_locks_no_one_out_elsewhere(
        aiohttp_client: Any, tmp_path: Path) -> None:
    client, _ = await proxied_client(aiohttp_client, tmp_path)
    targets = ["village1", "village2", "cardio.chief", "admin", "nobody.at.all"]
    for username in targets:
        for _ in range(5):
            assert (await log_in(client, username, "guess-123456", ATTACKER)).status == 401
        # The attacker's address now waits for each of them, even with the right password.
        assert (await log_in(client, username, DEMO_PASSWORD, ATTACKER)).status == 429
    # The owners, from their own addresses, sign in at once.
    for username in ["village1", "village2", "cardio.chief", "admin"]:
        resp = await log_in(client, username, DEMO_PASSWORD, OWNER)
        assert resp.status == 303, username
    # And an account the attacker did not try signs in from the attacker's own (shared) address: no
    # address is locked as a whole.
    assert (await log_in(client, "village3", DEMO_PASSWORD, ATTACKER)).status == 303


async def test_the_delay_grows_and_the_right_password_after_it_signs_in(aiohttp_client: Any, tmp_path: Path) -> None:
    client, clock = await proxied_client(aiohttp_client, tmp_path)
    for _ in range(5):
        assert (await log_in(client, "village1", "guess-123456", ATTACKER)).status == 401
    # login_delay_s is 2: the sixth attempt waits 2 s, and is told so in the page and in Retry-After.
    resp = await log_in(client, "village1", DEMO_PASSWORD, ATTACKER)
    assert resp.status == 429 and resp.headers["Retry-After"] == "2"
    assert "2 秒" in await resp.text()
    clock.advance(2)
    assert (await log_in(client, "village1", "guess-123456", ATTACKER)).status == 401
    # The seventh waits twice as long: 4 s. A second in, 3 are left; the right password still waits.
    assert (await log_in(client, "village1", DEMO_PASSWORD, ATTACKER)).headers["Retry-After"] == "4"
    clock.advance(1)
    resp = await log_in(client, "village1", DEMO_PASSWORD, ATTACKER)
    assert resp.status == 429 and resp.headers["Retry-After"] == "3"
    clock.advance(3)
    assert (await log_in(client, "village1", "guess-123456", ATTACKER)).status == 401
    assert (await log_in(client, "village1", DEMO_PASSWORD, ATTACKER)).headers["Retry-After"] == "8"
    clock.advance(8)
    resp = await log_in(client, "village1", DEMO_PASSWORD, ATTACKER)
    assert resp.status == 303 and resp.headers["Location"] == "/clinic"
    # The sign-in cleared the count: a typing mistake now is a plain wrong password.
    assert (await log_in(client, "village1", "typo-123456", ATTACKER)).status == 401


async def test_guesses_from_many_addresses_slow_the_account_but_not_an_address_it_used(
        aiohttp_client: Any, tmp_path: Path) -> None:
    client, _ = await proxied_client(aiohttp_client, tmp_path, account_login_attempts=10)
    assert (await log_in(client, "village1", DEMO_PASSWORD, OWNER)).status == 303
    # Two addresses with five guesses each reach the account's 10: a new address waits, the owner's does not.
    for address in ("198.51.100.1", "198.51.100.2"):
        for _ in range(5):
            assert (await log_in(client, "village1", "guess-123456", address)).status == 401
    assert (await log_in(client, "village1", DEMO_PASSWORD, "198.51.100.3")).status == 429
    assert (await log_in(client, "village1", DEMO_PASSWORD, OWNER)).status == 303


async def test_the_api_token_endpoint_counts_and_waits_alike(aiohttp_client: Any, tmp_path: Path) -> None:
    client, clock = await proxied_client(aiohttp_client, tmp_path)
    store = client.app[keys.STORE]  # type: ignore[index]
    async with store.engine.begin() as conn:
        await conn.execute(sa.update(t.users).where(t.users.c.username == "village2").values(active=False))

    async def mint(username: str, password: str, address: str = ATTACKER) -> Any:
        return await client.post("/api/tokens", json={"username": username, "password": password},
                                 headers={"X-Forwarded-For": address})

    wrong = await mint("village1", "guess-123456")
    deactivated = await mint("village2", DEMO_PASSWORD)
    # A deactivated account with its right password hears what a wrong password hears.
    assert wrong.status == deactivated.status == 401
    assert (await wrong.json()) == (await deactivated.json())
    for _ in range(4):
        assert (await mint("village1", "guess-123456")).status == 401
        assert (await mint("village2", DEMO_PASSWORD)).status == 401
    for username in ("village1", "village2"):
        resp = await mint(username, DEMO_PASSWORD)
        assert resp.status == 429 and resp.headers["Retry-After"] == "2"
        body = await resp.json()
        assert body["error"]["code"] == "login_rate_limited" and "2" in body["error"]["message_en"]
    # The web form and the API share the count.
    assert (await log_in(client, "village1", DEMO_PASSWORD, ATTACKER)).status == 429
    clock.advance(2)
    assert (await mint("village1", DEMO_PASSWORD)).status == 201
    assert (await mint("village2", DEMO_PASSWORD)).status == 401


async def test_the_forwarded_address_counts_only_from_a_configured_proxy(aiohttp_client: Any, tmp_path: Path) -> None:
    direct = await aiohttp_client(create_app(make_settings(tmp_path / "direct")))
    # Without a configured proxy the header is the client's own claim: a new address with every guess is
    # still the one peer guessing.
    for i in range(5):
        assert (await log_in(direct, "village1", "guess-123456", f"198.51.100.{i}")).status == 401
    assert (await log_in(direct, "village1", DEMO_PASSWORD, OWNER)).status == 429
    # Behind a configured proxy the same requests are five addresses, one guess each.
    proxied, _ = await proxied_client(aiohttp_client, tmp_path / "proxied")
    for i in range(5):
        assert (await log_in(proxied, "village1", "guess-123456", f"198.51.100.{i}")).status == 401
    assert (await log_in(proxied, "village1", DEMO_PASSWORD, "198.51.100.0")).status == 303
