"""The Content-Security-Policy: the pages may connect to their own site and to the configured WebSocket
origin, nowhere else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from telehealth.config import ConfigError, load_settings
from telehealth.server.app import create_app
from tests.conftest import make_settings


def directive(policy: str, name: str) -> str:
    found = [part.strip() for part in policy.split(";") if part.strip().startswith(name + " ")]
    assert len(found) == 1, policy
    return found[0]


async def test_pages_connect_only_to_their_own_site(client: TestClient) -> None:  # type: ignore[type-arg]
    for path in ("/login", "/api/me", "/nope"):
        policy = (await client.get(path)).headers["Content-Security-Policy"]
        assert directive(policy, "connect-src") == "connect-src 'self'", path


async def test_a_configured_websocket_origin_is_the_one_other_place(aiohttp_client: Any, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, security={"websocket_origin": "wss://ws.example.org:8443"})
    client = await aiohttp_client(create_app(settings))
    policy = (await client.get("/login")).headers["Content-Security-Policy"]
    assert directive(policy, "connect-src") == "connect-src 'self' wss://ws.example.org:8443"


@pytest.mark.parametrize("origin", ["ws:", "wss:", "https://ws.example.org", "wss://ws.example.org/ws",
                                    "wss://ws.example.org; script-src *", "wss://*", "wss://a b",
                                    "wss://ws.example.org:99999", "wss://user@ws.example.org", "wss://ws.example.org\n"])
def test_only_a_websocket_origin_is_accepted(origin: str) -> None:
    with pytest.raises(ConfigError, match="websocket_origin"):
        load_settings(profile="test", overrides={"security": {"websocket_origin": origin}}, env={})
