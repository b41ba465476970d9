"""The call screen on both sides, in Chinese and in English, on a 1366x768 laptop and a 390x844 phone: the
controls over the video and always on screen, the timer, one's own and the other side's mute and camera, the
network bars, the keys, full screen and picture-in-picture, the report beside or under the video, a photo
announced, and what the screen says once the call ended. Screenshots of each state at both widths."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.browser.test_journey import request_consultation, request_consultation_zh, wait_for_frames

pytestmark = pytest.mark.browser

WIDE = (1366, 768)
PHONE = (390, 844)
SIZES = {"wide": WIDE, "phone": PHONE}
LANGS = {"zh-CN": "zh", "en-GB": "en"}

# Each control of the stage, as the person sees it: inside the window, and not covered by anything else.
CONTROLS_ON_SCREEN = """() => {
  const out = [];
  for (const el of document.querySelectorAll('#call-controls button, #btn-fullscreen, #btn-pip')) {
    if (el.hidden || el.closest('[hidden]')) continue;
    const r = el.getBoundingClientRect();
    const inside = r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0
      && r.right <= window.innerWidth && r.bottom <= window.innerHeight;
    const hit = inside && document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    out.push({ id: el.id, inside, reachable: Boolean(hit && hit.closest('button') === el) });
  }
  return out;
}"""

OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


async def call_between(browsers: Any, locale: str, size: tuple[int, int], clinic_user: str,
                       specialist_user: str) -> tuple[Any, Any, int]:
    """A clinic and a specialist in the same language and window size, in a call with video both ways."""
    clinic = await browsers(f"clinic-{locale}", locale=locale, viewport=size)
    specialist = await browsers(f"specialist-{locale}", locale=locale, viewport=size)
    await clinic.login(clinic_user)
    await specialist.login(specialist_user)
    await specialist.page.wait_for_selector("#connection[data-state=online]")
    if locale == "zh-CN":
        cid = await request_consultation_zh(clinic)
    else:
        cid = await request_consultation(clinic, "Chest pain for two hours")
    await specialist.page.wait_for_selector(f"#offer[data-consultation='{cid}']:not([hidden])")
    await specialist.page.click("#btn-accept")
    await specialist.page.wait_for_url(f"**/specialist/consultations/{cid}")
    assert await wait_for_frames(clinic.page) >= 5
    assert await wait_for_frames(specialist.page) >= 5
    for person in (clinic, specialist):
        await person.page.wait_for_selector("#remote-tile[data-video=on]")
    return clinic, specialist, cid


async def at_each_size(people: list[Any], label: str, check: Any = None) -> None:
    """Resize every window to the laptop and the phone in turn; check and take a screenshot at each."""
    for name, (w, h) in SIZES.items():
        for person in people:
            await person.page.set_viewport_size({"width": w, "height": h})
        await asyncio.sleep(0.3)  # a layout pass and a repaint of the videos
        for person in people:
            if check is not None:
                await check(person, name)
            await person.page.evaluate("() => window.scrollTo(0, 0)")
            await person.shot(f"{label}-{name}", full_page=False)


async def assert_controls_on_screen(person: Any, where: str) -> None:
    controls = await person.page.evaluate(CONTROLS_ON_SCREEN)
    assert len(controls) >= 5, controls
    assert all(c["inside"] and c["reachable"] for c in controls), (person.name, where, controls)
    assert await person.page.evaluate(OVERFLOW) <= 0, (person.name, where)


@pytest.mark.parametrize("locale", list(LANGS))
async def test_the_controls_stay_over_the_video_and_on_screen(browsers: Any, locale: str) -> None:
    clinic, specialist, _ = await call_between(
        browsers, locale, WIDE, "village1" if locale == "zh-CN" else "village2",
        "neuro.chief" if locale == "zh-CN" else "cardio.chief")

    async def check(person: Any, where: str) -> None:
        page = person.page
        # Laid over the video: the controls are inside the stage's box.
        inside = await page.evaluate("""() => {
          const s = document.getElementById('stage').getBoundingClientRect();
          const c = document.getElementById('call-controls').getBoundingClientRect();
          return c.top >= s.top && c.bottom <= s.bottom + 0.5 && c.left >= s.left && c.right <= s.right + 0.5; }""")
        assert inside, (person.name, where)
        await assert_controls_on_screen(person, where)
        # Scrolled to the very bottom of the page (the report, the attachments): still there.
        await page.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight)")
        await asyncio.sleep(0.2)
        await assert_controls_on_screen(person, f"{where}, scrolled down")

    await at_each_size([clinic, specialist], "in-call", check)

    # The specialist's report: beside the video on the laptop, under it on the phone; typing a long report
    # never pushes the controls away.
    page = specialist.page
    for where, (w, h) in SIZES.items():
        await page.set_viewport_size({"width": w, "height": h})
        await page.evaluate("() => window.scrollTo(0, 0)")
        await asyncio.sleep(0.3)
        place = await page.evaluate("""() => {
          const s = document.getElementById('stage').getBoundingClientRect();
          const n = document.getElementById('note').getBoundingClientRect();
          return { beside: n.left >= s.right - 1 && n.top < s.bottom, under: n.top >= s.bottom - 1 }; }""")
        assert place["beside" if where == "wide" else "under"], (where, place)
        await page.click("#note-plan")
        await page.keyboard.type("Aspirin 100 mg daily. " * 3 + "\n" * 12 + "Review in a week.")
        await assert_controls_on_screen(specialist, f"typing the report ({where})")
        await specialist.shot(f"typing-report-{where}", full_page=False)
