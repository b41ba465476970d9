"""Reserved inpatient beds in the browser: the specialist refers up for admission from the note panel, choosing
a reserved bed that signing books; the administrator's bed page and the statistics at PC and phone width, in
Chinese."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestServer

from telehealth.server import keys
from tests.browser.test_journey import request_consultation, wait_for_frames

pytestmark = pytest.mark.browser
CITY = "Qingshan First People's Hospital"
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


async def test_specialist_refers_up_for_admission_with_a_reserved_bed(browsers: Any, live_server: TestServer) -> None:
    store = live_server.app[keys.STORE]
    city = await store.get_organisation_by_name(CITY)
    day = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date() + dt.timedelta(days=3)
    assert await store.publish_beds([(city.id, "cardiology", day, 8)]) == (8, 2)
    clinic = await browsers("clinic")
    specialist = await browsers("specialist")
    await clinic.login("village1")
    await specialist.login("cardio.chief")
    await specialist.page.wait_for_selector("#connection[data-state=online]")
    cid = await request_consultation(clinic, "Chest pain at rest since the morning")
    await specialist.page.wait_for_selector(f"#offer[data-consultation='{cid}']:not([hidden])")
    await specialist.page.click("#btn-accept")
    await specialist.page.wait_for_url(f"**/specialist/consultations/{cid}")
    assert await wait_for_frames(specialist.page) >= 5
    await specialist.page.click("#btn-hangup")
    await clinic.page.wait_for_selector("#state[data-state=ended]")

    page = specialist.page
    await page.fill("#note-assessment", "Unstable angina.")
    await page.select_option("#note-disposition", "refer_up")
    await page.wait_for_selector("#booking-panel:not([hidden])")
    assert await page.is_hidden("#bed-panel")
    await page.check("#note-admission")
    await page.wait_for_selector("#bed-panel:not([hidden])")
    await page.locator("#note-bed option[value]:not([value=''])").first.wait_for(state="attached")
    options = await page.locator("#note-bed option").all_inner_texts()
    assert len(options) == 3 and all(day.isoformat() in o and CITY in o for o in options[1:])
    first = await page.locator("#note-bed option").nth(1).get_attribute("value")
    await page.select_option("#note-bed", first)
    await page.fill("#note-details", "Admit to cardiology for monitoring.")
    await page.wait_for_selector("#note-status:has-text('Draft saved')")
    await specialist.shot("bed-chosen")
    await page.click("#btn-sign")
    await page.wait_for_selector("#note-status:text-matches('^Signed at')")
    held = await store.get_bed_booking(cid)
    assert held is not None and str(held.id) == first
    (ref,) = await store.list_referrals(consultation_id=cid)
    assert (ref.direction, ref.bed_id, ref.to_org_id, ref.department) == ("up", held.id, city.id, "cardiology")
    # The clinic sees the bed on its consultation page and on the record.
    await clinic.page.wait_for_selector("#bed", timeout=15_000)
    bed = await clinic.page.inner_text("#bed")
    # The record page writes the day as its reader does (this page is in English).
    assert f"{day.day} {day:%b} {day.year}" in bed and CITY in bed and f"bed {held.number}" in bed
    await clinic.shot("bed")
    await clinic.page.click("text=The full record")
    await clinic.page.wait_for_url(f"**/records/{cid}")
    assert f"bed {held.number}" in await clinic.page.inner_text("#record-bed")
    await clinic.shot("record-page")


@pytest.mark.parametrize("viewport", [(1280, 900), (390, 844)], ids=["pc", "phone"])
async def test_the_bed_pages_in_chinese_at_pc_and_phone_width(browsers: Any, live_server: TestServer,
                                                              viewport: tuple[int, int]) -> None:
    store = live_server.app[keys.STORE]
    city = await store.get_organisation_by_name(CITY)
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    await store.publish_beds([(city.id, "neurology", today + dt.timedelta(days=1), 9)])
    admin = await browsers("admin", locale="zh-CN", viewport=viewport)
    await admin.login("alliance.admin")
    await admin.goto("/admin/beds", "beds")
    page = admin.page
    assert await page.inner_text("h1") == "住院床位"
    assert await page.evaluate(OVERFLOW) <= 0
    await page.select_option("#bed-ward", "cardiology")
    await page.fill("#bed-count", "12")
    await page.click("#beds-form button[type=submit]")
    await page.wait_for_selector("#beds-notice")
    assert "已发布 12 张床位，其中 3 张新预留给基层上转患者。" in await page.inner_text("#beds-notice")
    await admin.shot("published")
    assert await page.evaluate(OVERFLOW) <= 0
    await admin.goto(f"/admin/statistics?from={today.isoformat()}&to={(today + dt.timedelta(days=7)).isoformat()}",
                     "statistics")
    table = await page.inner_text("#reserved-beds-table")
    assert "9" in table and "3 (33.3 %)" in table  # neurology: 3 of 9 reserved (a quarter of 9 is 2.25)
    assert await page.evaluate(OVERFLOW) <= 0
