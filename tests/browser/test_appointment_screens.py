"""Booked consultations in the browser: the clinic books a time inside a specialist's hours on its page, in
Chinese; the specialist's page lists it and shows the reminder that arrives over the WebSocket."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestServer

from telehealth.server import keys
from tests.browser.test_journey import sign

pytestmark = pytest.mark.browser
TZ = ZoneInfo("Asia/Shanghai")


async def test_the_clinic_books_on_its_page_and_the_specialist_is_reminded(browsers: Any,
                                                                         live_server: TestServer) -> None:
    services = live_server.app[keys.SERVICES]
    store = services.store
    chief = await store.get_user_by_username("cardio.chief")
    day = dt.datetime.now(TZ).date() + dt.timedelta(days=2)
    nine = dt.datetime(day.year, day.month, day.day, 9, tzinfo=TZ)
    await store.insert_consultation_hours(specialist_id=chief.id, hospital_org_id=chief.organisation_id,
                                          department="cardiology", starts_at=nine, ends_at=nine + dt.timedelta(hours=3),
                                          created_by=chief.id, now=dt.datetime.now(dt.UTC))
    clinic = await browsers("clinic", locale="zh-CN")
    specialist = await browsers("specialist")
    await clinic.login("village1")
    await specialist.login("cardio.chief")
    page = clinic.page
    await clinic.goto("/clinic/appointments", "appointments")
    assert "可预约的会诊时间" in await page.inner_text("#hours")
    await page.fill("#patient_name", "王秀英")
    await page.select_option("#patient_sex", "female")
    await page.fill("#patient_birth_year", "1956")
    await page.select_option("#specialty", "cardiology")
    await page.fill("#chief_complaint", "活动后胸闷")
    await page.select_option("#specialist_id", str(chief.id))
    await page.fill("#starts_at", f"{day.isoformat()}T10:00")
    await page.fill("#consent_name", "王秀英")
    await sign(page)
    await page.click("#new-consultation button[type=submit]")
    row = page.locator("#booked tr[data-status=booked]")
    await row.wait_for()
    assert f"{day.isoformat()} 10:00" in await row.inner_text() and "已预约" in await row.inner_text()
    await clinic.shot("booked")

    await specialist.goto("/specialist/appointments", "appointments")
    aid = await row.get_attribute("data-appointment")
    await specialist.page.wait_for_selector(f"#booked tr[data-appointment='{aid}']")
    await specialist.page.wait_for_selector("#page[data-connection=online]")
    start = dt.datetime(day.year, day.month, day.day, 10, tzinfo=TZ).astimezone(dt.UTC)
    outcome = await services.appointments.sweep(start - dt.timedelta(hours=24))
    assert [r.kind for r in outcome.reminded] == ["day_before"]
    reminder = specialist.page.locator(f"#reminder-list li[data-appointment='{aid}']")
    await reminder.wait_for()
    assert "Tomorrow" in await reminder.inner_text()
    await page.locator(f"#reminder-list li[data-appointment='{aid}']").wait_for()
    await specialist.shot("reminded")
