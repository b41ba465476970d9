"""A referral up in the browser: the specialist books a reserved outpatient slot from the note panel and signs;
the clinic sees the booked time and place, and opens the printable record."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.test_journey import request_consultation, wait_for_frames

pytestmark = pytest.mark.browser


async def test_specialist_books_a_reserved_slot_and_the_clinic_sees_it(browsers: Any) -> None:
    clinic = await browsers("clinic")
    specialist = await browsers("specialist")
    await clinic.login("village5")
    await specialist.login("cardio.attending")
    await specialist.page.wait_for_selector("#connection[data-state=online]")
    cid = await request_consultation(clinic, "Breathless on climbing stairs")
    await specialist.page.wait_for_selector(f"#offer[data-consultation='{cid}']:not([hidden])")
    await specialist.page.click("#btn-accept")
    await specialist.page.wait_for_url(f"**/specialist/consultations/{cid}")
    assert await wait_for_frames(specialist.page) >= 5
    await specialist.page.click("#btn-hangup")
    await clinic.page.wait_for_selector("#state[data-state=ended]")

    page = specialist.page
    await page.fill("#note-assessment", "Suspected heart failure, NYHA II.")
    await page.select_option("#note-disposition", "refer_up")
    await page.wait_for_selector("#booking-panel:not([hidden])")
    await page.locator("#booking-slot option").first.wait_for(state="attached")
    label = await page.locator("#booking-slot option").first.inner_text()
    await page.click("#btn-book")
    await page.wait_for_selector("#booking-current:not([hidden])")
    assert label.split(" · ")[0] in await page.inner_text("#booking-current")
    await page.fill("#note-details", "Echocardiography and BNP at the outpatient visit.")
    await page.wait_for_selector("#note-status:has-text('Draft saved')")
    await specialist.shot("booked")
    await page.click("#btn-sign")
    await page.wait_for_selector("#note-status:text-matches('^Signed at')")

    await clinic.page.wait_for_selector("#booking", timeout=15_000)
    booking = await clinic.page.inner_text("#booking")
    assert label.split(" · ")[0] in booking
    await clinic.shot("booking")
    await clinic.page.click("text=The full record")
    await clinic.page.wait_for_url(f"**/records/{cid}")
    await clinic.page.wait_for_selector("#record-booking")
    record = await clinic.page.inner_text("#record-page")
    assert "Suspected heart failure" in record and "Referral up" in record
    await clinic.shot("record-page")
