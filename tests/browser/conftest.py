"""Headless Chromium (Debian's, through Playwright) with a fake camera, against a real server on loopback.

Every page a test visits is saved as a screenshot under test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from telehealth.records.seed import DEMO_PASSWORD
from telehealth.server.app import create_app
from tests.conftest import make_settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream", "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]

# A test must never depend on another address of the machine than loopback: drop every other ICE
# candidate before it reaches the peer connection.
LOOPBACK_ONLY = """
(() => {
  const keep = (c) => !c || !c.candidate || / 127\\.0\\.0\\.1 /.test(c.candidate);
  const add = RTCPeerConnection.prototype.addIceCandidate;
  RTCPeerConnection.prototype.addIceCandidate = function (c, ...rest) {
    return keep(c) ? add.call(this, c, ...rest) : Promise.resolve();
  };
  const setRemote = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (d, ...rest) {
    if (d && d.sdp) {
      d = { type: d.type, sdp: d.sdp.split("\\r\\n").filter(
        (l) => !l.startsWith("a=candidate:") || / 127\\.0\\.0\\.1 /.test(l)).join("\\r\\n") };
    }
    return setRemote.call(this, d, ...rest);
  };
})();
"""

pytestmark = pytest.mark.browser


@pytest.fixture
async def live_server(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[TestServer]:
    # People click slower than tests: a realistic ring time, unless the test is about the ring running out.
    marker = request.node.get_closest_marker("ring_timeout")
    settings = make_settings(tmp_path, matching={"ring_timeout_s": marker.args[0] if marker else 20})
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def playwright() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        yield pw


class Browser:
    """One person in one browser profile; saves a screenshot of each page it visits."""

    def __init__(self, context: Any, base: str, name: str, test_name: str) -> None:
        self.context = context
        self.base = base
        self.name = name
        self.test_name = test_name
        self.shots = 0
        self.page: Any = None

    async def open(self) -> Any:
        self.page = await self.context.new_page()
        self.page.set_default_timeout(15_000)
        return self.page

    async def shot(self, label: str, *, full_page: bool = True) -> None:
        """The whole page, or (full_page=False) what the window shows, as a screen with a stuck call stage."""
        ARTIFACTS.mkdir(exist_ok=True)
        self.shots += 1
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.test_name}-{self.name}-{self.shots:02d}-{label}")
        await self.page.screenshot(path=str(ARTIFACTS / f"{safe}.png"), full_page=full_page)

    async def goto(self, path: str, label: str | None = None) -> None:
        await self.page.goto(self.base + path)
        await self.shot(label or path.strip("/").replace("/", "_") or "root")

    async def login(self, username: str, password: str = DEMO_PASSWORD) -> None:
        await self.goto("/login", "login")
        await self.page.fill("#username", username)
        await self.page.fill("#password", password)
        await self.page.click("form[action='/login'] button[type=submit]")
        await self.page.wait_for_load_state("networkidle")
        await self.shot("home")


@pytest.fixture
async def browsers(playwright: Any, live_server: TestServer, tmp_path: Path,
                   request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    contexts: list[Any] = []
    base = str(live_server.make_url("")).rstrip("/")
    # Tests reach the server as localhost: a secure context for the camera without TLS.
    base = base.replace("127.0.0.1", "localhost")

    async def make(name: str, locale: str = "en-GB", viewport: tuple[int, int] = (1100, 900)) -> Browser:
        ctx = await playwright.chromium.launch_persistent_context(
            str(tmp_path / f"profile-{name}"), executable_path=CHROMIUM, headless=True, args=ARGS,
            permissions=["camera", "microphone"], locale=locale,
            viewport={"width": viewport[0], "height": viewport[1]})
        contexts.append(ctx)
        await ctx.add_init_script(LOOPBACK_ONLY)
        b = Browser(ctx, base, name, request.node.name)
        await b.open()
        return b

    try:
        yield make
    finally:
        for ctx in contexts:
            await ctx.close()
