"""The clinic's connection check in headless Chromium (fake camera) against the server's own peer: the
verdict in plain words with the figures, kept for the administrator's view of clinic networks."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytestmark = pytest.mark.browser


async def test_the_connection_check_in_the_browser(browsers: Any) -> None:
    clinic = await browsers("clinic")
    await clinic.login("village3")
    await clinic.page.click("text=Check my connection")
    await clinic.page.wait_for_url("**/clinic/precheck")
    await clinic.shot("precheck")
    await clinic.page.click("#btn-precheck")
    await clinic.page.wait_for_selector("#precheck-state[data-state=measuring]", timeout=20_000)
    await clinic.shot("measuring")
    await clinic.page.wait_for_selector("#precheck-state[data-state=video_ok]", timeout=30_000)
    await clinic.page.wait_for_selector("#precheck-figures:not([hidden])")
    up = await clinic.page.inner_text("#fig-up")
    down = await clinic.page.inner_text("#fig-down")
    assert up.endswith("kbit/s") and int(up.split()[0]) > 100, up
    # The download is the server's fixed-rate test stream: how much of it arrived (all of it, on loopback).
    stream = re.fullmatch(r"(\d+) kbit/s of the server's (\d+) kbit/s test stream", down)
    assert stream is not None, down
    got, sent = (int(v) for v in stream.groups())
    assert 100 < sent < 400 and got >= 0.85 * sent, down
    await clinic.shot("verdict")

    admin = await browsers("admin")
    await admin.login("alliance.admin")
    await admin.goto("/admin/network")
    assert await admin.page.locator("#network tr[data-verdict=video_ok]").count() == 1
