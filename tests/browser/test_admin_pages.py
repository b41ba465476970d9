"""The administrators' pages on a PC (1366x768) and a phone (390x844), in Chinese and in English: the
navigation between them is on each, its own page marked, and it never makes the page wider than the screen
(on a phone it scrolls sideways by itself)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser

PAGES = ["/admin", "/admin/consultations", "/admin/slots", "/admin/statistics", "/admin/users",
         "/admin/organisations", "/admin/audit", "/admin/network", "/admin/recognised-items"]
SCREENS = {"pc": (1366, 768), "phone": (390, 844)}


@pytest.mark.parametrize("screen", sorted(SCREENS))
async def test_the_navigation_on_every_administrators_page(browsers: Any, screen: str) -> None:
    for locale in ("zh-CN", "en-GB"):
        admin = await browsers(f"admin-{screen}-{locale}", locale=locale, viewport=SCREENS[screen])
        await admin.login("alliance.admin")
        for path in PAGES:
            await admin.goto(path, f"{screen}-{locale}{path.replace('/', '_')}")
            page = admin.page
            assert await page.locator("#admin-nav").is_visible(), path
            current = page.locator("#admin-nav a[aria-current=page]")
            assert await current.count() == 1 and await current.get_attribute("href") == path, path
            widths = await page.evaluate("[document.getElementById('admin-nav').getBoundingClientRect().width,"
                                         " window.innerWidth]")
            assert widths[0] <= widths[1], (path, widths)
            # The marked page is within reach: scrolled into view on a phone when asked.
            await current.scroll_into_view_if_needed()
            assert await current.is_visible(), path
