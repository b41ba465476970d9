"""In Chromium, under the pages' Content-Security-Policy: the page's own WebSocket and the configured
WebSocket origin connect; any other address is blocked by the policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from telehealth.server.app import create_app
from tests.conftest import make_settings
from tests.support.processes import free_port

pytestmark = pytest.mark.browser

TRY_SOCKETS = """
async (urls) => {
  const blocked = [];
  document.addEventListener("securitypolicyviolation", (e) => blocked.push(e.blockedURI));
  const attempt = (url) => new Promise((resolve) => {
    let ws;
    try { ws = new WebSocket(url); } catch (e) { resolve("refused"); return; }
    ws.onopen = () => { ws.close(); resolve("open"); };
    ws.onerror = () => resolve("error");
  });
  const outcome = {};
  for (const url of urls) outcome[url] = await attempt(url);
  await new Promise((r) => setTimeout(r, 300));
  return { outcome, blocked };
}
"""


@pytest.fixture
async def live_server(tmp_path: Path) -> AsyncIterator[TestServer]:
    port = free_port()
    # The same server reached as 127.0.0.1 stands in for a WebSocket host of its own.
    settings = make_settings(tmp_path, security={"websocket_origin": f"ws://127.0.0.1:{port}"},
                             allowed_origins=[f"http://localhost:{port}"])
    server = TestServer(create_app(settings), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


async def test_the_page_connects_to_its_own_and_the_configured_websocket_only(
        browsers: Any, live_server: TestServer) -> None:
    port = live_server.port
    other = free_port()
    b = await browsers("csp")
    await b.goto("/login")
    own, configured, elsewhere = f"ws://localhost:{port}/ws", f"ws://127.0.0.1:{port}/ws", f"ws://localhost:{other}/ws"
    seen = await b.page.evaluate(TRY_SOCKETS, [own, configured, elsewhere])
    assert seen["outcome"][own] == "open" and seen["outcome"][configured] == "open", seen
    assert seen["outcome"][elsewhere] != "open" and any(f":{other}" in url for url in seen["blocked"]), seen
    assert not any(f":{port}" in url for url in seen["blocked"]), seen
