"""X-Forwarded-For is believed only from a configured proxy: for the audit's address and for the login limits."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from telehealth.config import ConfigError, load_settings
from telehealth.records import schema as t
from telehealth.records.seed import DEMO_PASSWORD
from telehealth.server import keys
from telehealth.server.app import create_app
from telehealth.server.proxies import forwarded_client
from tests.conftest import csrf_from, make_settings


async def log_in(client: TestClient, username: str, password: str, forwarded: str) -> int:  # type: ignore[type-arg]
    client.session.cookie_jar.clear()
    page = await client.get("/login")
    resp = await client.post("/login", data={"username": username, "password": password,
                                             "csrf_token": csrf_from(await page.text())},
                             headers={"X-Forwarded-For": forwarded}, allow_redirects=False)
    return resp.status


async def audited(client: TestClient, action: str) -> list[str]:  # type: ignore[type-arg]
    a = t.audit_log
    async with client.app[keys.STORE].engine.connect() as conn:  # type: ignore[index]
        return [r.remote for r in await conn.execute(sa.select(a.c.remote).where(a.c.action == action)
                                                      .order_by(a.c.id))]


async def test_from_anyone_else_the_header_is_ignored(client: TestClient) -> None:  # type: ignore[type-arg]
    assert await log_in(client, "village1", "wrong-password", "203.0.113.9") == 401
    resp = await client.post("/api/tokens", json={"username": "village1", "password": DEMO_PASSWORD},
                             headers={"X-Forwarded-For": "203.0.113.9"})
    assert resp.status == 201
    assert await audited(client, "login.failed") == ["127.0.0.1"]
    assert await audited(client, "api_token.create") == ["127.0.0.1"]
    # Naming another address with each guess does not escape the limit of the account from the address that
    # is guessing: five failures, then the right password waits too.
    for i in range(5):
        assert await log_in(client, "village2", "guess", f"198.51.100.{i}") == 401
    assert await log_in(client, "village2", DEMO_PASSWORD, "198.51.100.200") == 429


async def test_behind_a_trusted_proxy_the_forwarded_client_counts(aiohttp_client: Any, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, security={"trusted_proxies": ["127.0.0.1", "10.0.0.0/8"]})
    client = await aiohttp_client(create_app(settings))
    # What the client claimed first is left of what the proxies saw; the nearest untrusted hop is the client.
    assert await log_in(client, "village1", "wrong-password", "1.2.3.4, 198.51.100.7, 10.1.2.3") == 401
    assert await audited(client, "login.failed") == ["198.51.100.7"]
    # One address guessing is limited; someone else behind the same proxy still logs in.
    for _ in range(5):
        assert await log_in(client, "village2", "guess", "198.51.100.66") == 401
    assert await log_in(client, "village2", DEMO_PASSWORD, "198.51.100.66") == 429
    assert await log_in(client, "village2", DEMO_PASSWORD, "203.0.113.20") == 303
    assert (await audited(client, "login.ok"))[-1] == "203.0.113.20"


def test_the_walk_through_the_hops() -> None:
    trusted = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert forwarded_client("10.0.0.5", ["203.0.113.1"], trusted) == "203.0.113.1"
    assert forwarded_client("203.0.113.50", ["10.0.0.1"], trusted) == "203.0.113.50"
    assert forwarded_client("10.0.0.5", ["evil, 203.0.113.1, 10.0.0.7"], trusted) == "203.0.113.1"
    assert forwarded_client("10.0.0.5", ["203.0.113.1, not-an-address"], trusted) == "10.0.0.5"
    assert forwarded_client("10.0.0.5", ["10.0.0.9", "10.0.0.8"], trusted) == "10.0.0.9"
    assert forwarded_client("::1", ["2001:db8::7"], trusted) == "2001:db8::7"
    assert forwarded_client("::ffff:10.0.0.5", ["203.0.113.1"], trusted) == "203.0.113.1"
    assert forwarded_client("10.0.0.5", [], trusted) == "10.0.0.5"


@pytest.mark.parametrize("proxy", ["nginx", "10.0.0.0/33", "10.0.0.1 10.0.0.2"])
def test_a_proxy_is_an_address_or_a_network(proxy: str) -> None:
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_settings(profile="test", overrides={"security": {"trusted_proxies": [proxy]}}, env={})


async def test_a_forwarded_host_opens_the_websocket_only_through_a_trusted_proxy(
        aiohttp_client: Any, tmp_path: Path) -> None:
    """A page of evil.example could not set the header itself, but a client that claims it must not pass the
    Origin check for it either."""
    headers = {"Origin": "https://evil.example", "X-Forwarded-Host": "evil.example"}
    direct = await aiohttp_client(create_app(make_settings(tmp_path / "direct")))
    resp = await direct.get("/ws", headers={**headers, "Connection": "Upgrade", "Upgrade": "websocket",
                                            "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert resp.status == 403 and "bad_origin" in await resp.text()
    proxied = await aiohttp_client(create_app(make_settings(tmp_path / "proxied",
                                                            security={"trusted_proxies": ["127.0.0.1"]})))
    ws = await proxied.ws_connect("/ws", headers=headers)
    await ws.close()
