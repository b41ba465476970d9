"""Fixtures for real WebRTC calls on loopback: host candidates limited to 127.0.0.1, a coturn of our own."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aioice.ice
import pytest
from aiohttp.test_utils import TestServer

from telehealth.server.app import create_app
from tests.conftest import make_settings
from tests.support.processes import ROOT, free_port

pytestmark = pytest.mark.media


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice leaves 127.0.0.1 out of its host candidates; these tests must use nothing else."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@dataclass(frozen=True)
class Turn:
    url: str
    secret: str


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Turn]:
    """coturn from the project's example configuration, on free ports, allowed to relay on loopback."""
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.skip("coturn is not installed (.ci/run installs it)")
    port, low = free_port(), 40000 + secrets.randbelow(20000)
    secret = secrets.token_hex(16)
    log = (tmp_path / "coturn.log").open("wb")
    proc = subprocess.Popen(
        [binary, "-c", str(ROOT / "config" / "turnserver.conf"), "--static-auth-secret", secret,
         "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "--listening-port", str(port),
         "--min-port", str(low), "--max-port", str(low + 200), "--allow-loopback-peers",
         "--pidfile", str(tmp_path / "turnserver.pid"), "--realm", "telehealth.test",
         "--no-tls", "--no-dtls"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        yield Turn(f"turn:127.0.0.1:{port}?transport=udp", secret)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


async def start_server(tmp_path: Path, **overrides: object) -> TestServer:
    server = TestServer(create_app(make_settings(tmp_path, **overrides)), host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    s = await start_server(tmp_path, matching={"ring_timeout_s": 20})
    try:
        yield s
    finally:
        await s.close()
        await asyncio.sleep(0)
