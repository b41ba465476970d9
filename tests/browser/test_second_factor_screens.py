"""The second factor in headless Chromium at a phone's width (in Chinese) and a PC's (in English): setting up the
app from the account page, the recovery codes, and the code step of the next sign-in, with pyotp as the app."""

from __future__ import annotations

import time
from typing import Any

import pyotp
import pytest
from aiohttp.test_utils import TestServer

from telehealth.server import keys

pytestmark = pytest.mark.browser


class Clock:
    """The server's clock, moved to the next 30-second step instead of waiting for it."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def fits_the_width(page: Any) -> bool:
    """Nothing sticks out sideways: the page scrolls only down."""
    return bool(await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


@pytest.mark.parametrize(("locale", "viewport", "words"), [
    ("zh-CN", (390, 844), {"enrol": "设置两步验证", "codes": "恢复码", "step": "第二步验证", "on": "已开启"}),
    ("en-GB", (1280, 900), {"enrol": "Set up the second factor", "codes": "Recovery codes", "step": "Second step",
                            "on": "On:"}),
])
async def test_setting_up_and_signing_in_with_the_app(browsers: Any, live_server: TestServer, locale: str,
                                                      viewport: tuple[int, int], words: dict[str, str]) -> None:
    clock = Clock()
    live_server.app[keys.SERVICES].clock = clock
    doctor = await browsers("doctor", locale=locale, viewport=viewport)
    page = doctor.page
    await doctor.login("village1")
    await doctor.goto("/account", "account-off")
    await page.click("#enrol-second-factor")
    await page.wait_for_selector("#qr svg")
    await doctor.shot("enrol")
    assert words["enrol"] in await page.inner_text("h1")
    box = await page.locator("#qr svg").bounding_box()
    # The QR code is drawn, square, and fits the screen with room to spare.
    assert box and 150 <= box["width"] <= 240 and abs(box["width"] - box["height"]) < 1
    assert await fits_the_width(page)
    secret = (await page.inner_text("#secret")).replace(" ", "")
    await page.fill("#code", pyotp.TOTP(secret).at(clock.now))
    await page.click("#enrol button[type=submit]")
    await page.wait_for_selector("#recovery-codes")
    await doctor.shot("recovery-codes")
    assert words["codes"] in await page.inner_text("h1")
    codes = await page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    assert await fits_the_width(page)
    await page.click("#continue")
    await page.wait_for_selector("#second-factor-status")
    await doctor.shot("account-on")
    assert words["on"] in await page.inner_text("#second-factor-status")

    # Signed out and in again: the password, then the code of the next step.
    await page.click("form[action='/logout'] button[type=submit]")
    await page.wait_for_url("**/login")
    await page.fill("#username", "village1")
    await page.fill("#password", "demo-pass-2026")
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_selector("#second-step")
    await doctor.shot("code-step")
    assert words["step"] in await page.inner_text("h1")
    assert await fits_the_width(page)
    clock.now += 30
    await page.fill("#code", pyotp.TOTP(secret).at(clock.now))
    await page.click("#second-step button[type=submit]")
    await page.wait_for_url("**/clinic")
    await doctor.shot("home")
