"""The whole journey in two headless Chromium windows through the real server: request, ring, accept,
video both ways, chat, hang up."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from telehealth.accounts import hash_password
from telehealth.domain import Role
from telehealth.records.seed import DEMO_PASSWORD
from telehealth.server import keys

pytestmark = pytest.mark.browser

# A 1x1 PNG: enough for the content check and for the page to show it.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

FRAMES_DECODED = """
async () => {
  const call = window.telehealthCall;
  if (!call || !call.pc) return 0;
  let frames = 0;
  (await call.pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") frames = r.framesDecoded || 0;
  });
  return frames;
}
"""


async def wait_for_frames(page: Any, minimum: int = 5, timeout: float = 30.0) -> int:
    """Decoded video frames as the page's own getStats reports them, once at least `minimum` arrived."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    frames = 0
    while loop.time() < deadline:
        frames = int(await page.evaluate(FRAMES_DECODED))
        if frames >= minimum:
            break
        await asyncio.sleep(0.5)
    return frames


async def sign(page: Any) -> None:
    """The patient signs the consent on the screen: a stroke across the signature pad."""
    pad = page.locator("#signature-pad")
    await pad.scroll_into_view_if_needed()
    box = await pad.bounding_box()
    await page.mouse.move(box["x"] + 20, box["y"] + box["height"] / 2)
    await page.mouse.down()
    for i in range(1, 12):
        await page.mouse.move(box["x"] + 20 + i * (box["width"] - 40) / 11,
                              box["y"] + box["height"] / 2 + (12 if i % 2 else -12))
    await page.mouse.up()
    assert await page.get_attribute("#signature-pad", "data-signed") == "true"


async def request_consultation(clinic: Any, complaint: str = "Chest pain for two hours") -> int:
    page = clinic.page
    await page.click("text=New consultation")
    await page.wait_for_url("**/clinic/consultations/new")
    await clinic.shot("new-consultation")
    await page.fill("#patient_name", "Wang Xiuying")
    await page.select_option("#patient_sex", "female")
    await page.fill("#patient_birth_year", "1956")
    await page.select_option("#specialty", "cardiology")
    await page.select_option("#urgency", "urgent")
    await page.fill("#chief_complaint", complaint)
    await page.select_option("#consent_by", "patient")
    await page.fill("#consent_name", "Wang Xiuying")
    await sign(page)
    await page.click("text=Send the request")
    await page.wait_for_url("**/clinic/consultations/*")
    await clinic.shot("waiting")
    return int(page.url.rsplit("/", 1)[1])


async def test_request_ring_accept_call_chat_hangup(browsers: Any, tmp_path: Path) -> None:
    clinic = await browsers("clinic")
    specialist = await browsers("specialist")
    await clinic.login("village1")
    await specialist.login("cardio.chief")
    await specialist.page.wait_for_selector("#connection[data-state=online]")

    cid = await request_consultation(clinic)
    await clinic.page.wait_for_selector("#state[data-state=offered]")
    ecg = tmp_path / "ecg.png"
    ecg.write_bytes(PNG)
    await clinic.page.set_input_files("#upload-file", str(ecg))
    await clinic.page.click("#upload-form button[type=submit]")
    await clinic.page.wait_for_selector("#attachment-list li:has-text('ecg.png')")

    # The request rings on the specialist's dashboard; accepting opens the call view.
    await specialist.page.wait_for_selector(f"#offer[data-consultation='{cid}']:not([hidden])")
    await specialist.shot("ringing")
    await specialist.page.click("#btn-accept")
    await specialist.page.wait_for_url(f"**/specialist/consultations/{cid}")

    # The specialist sees the clinic's attachment beside the call.
    await specialist.page.wait_for_selector("#attachment-list li:has-text('ecg.png') img")
    # The clinic is told, and both see the other's video.
    await clinic.page.wait_for_selector("#ready-banner:not([hidden])")
    assert await wait_for_frames(clinic.page) >= 5
    assert await wait_for_frames(specialist.page) >= 5
    await clinic.page.wait_for_selector("#call-state[data-state=connected]")
    await clinic.shot("in-call")
    await specialist.shot("in-call")

    await clinic.page.fill("#chat-text", "BP 150/95, ECG attached on paper")
    await clinic.page.click("#chat-form button[type=submit]")
    await specialist.page.wait_for_selector("#chat-log li:has-text('BP 150/95')")

    await specialist.page.click("#btn-hangup")
    await clinic.page.wait_for_selector("#call-state[data-state=ended]")
    await clinic.page.wait_for_selector("#state[data-state=ended]")
    await clinic.shot("ended")

    # The specialist writes the report (saved as they type), picks a diagnosis, signs.
    page = specialist.page
    await page.fill("#note-subjective", "Chest pain on exertion for two weeks, 10 minutes at a time.")
    await page.fill("#note-assessment", "Stable angina pectoris, low risk.")
    await page.fill("#note-icd", "I20")
    option = page.locator("#icd-options option[data-code='I20.8']")
    await option.wait_for(state="attached")
    await page.fill("#note-icd", str(await option.get_attribute("value")))
    await page.wait_for_selector("#note-diagnoses li:has-text('I20.8')")
    await page.fill("#note-plan", "Aspirin 100 mg daily; exercise ECG at the county hospital within a week.")
    await page.select_option("#note-disposition", "follow_up")
    await page.fill("#note-follow-up", "2026-12-08")
    await page.wait_for_selector("#note-status:has-text('Draft saved')")
    await specialist.shot("note-draft")
    await page.reload()  # the draft survives a closed tab
    for _ in range(50):  # the page's strict CSP rules out wait_for_function
        if "Stable angina" in await page.locator("#note-assessment").input_value():
            break
        await asyncio.sleep(0.2)
    assert "Stable angina" in await page.locator("#note-assessment").input_value()
    await page.click("#btn-sign")
    await page.wait_for_selector("#note-status:text-matches('^Signed at')")
    await specialist.shot("signed")

    # The clinic's record view shows the signed opinion.
    await clinic.page.wait_for_selector("#record", timeout=15_000)
    record = await clinic.page.inner_text("#record")
    # The follow-up date as an English reader writes it (2026-12-08 was typed).
    assert "Stable angina pectoris" in record and "I20.8" in record and "follow-up on 8 Dec 2026" in record
    await clinic.shot("record")

    # The clinic doctor decides, which closes the record.
    await clinic.page.check("input[name=decision][value=accept_advice]")
    await clinic.page.click("#decision-form button[type=submit]")
    await clinic.page.wait_for_selector("#decision[data-decision=accept_advice]")
    await clinic.page.wait_for_selector("#state[data-state=closed]")
    await clinic.shot("closed")


async def test_clinic_cancels_while_waiting(browsers: Any) -> None:
    clinic = await browsers("clinic", locale="zh-CN")
    await clinic.login("village2")
    assert "远程会诊" in await clinic.page.content()
    await clinic.page.click("text=发起会诊")
    await clinic.page.wait_for_url("**/clinic/consultations/new")
    await clinic.page.click("main button[type=submit]")  # empty form: messages next to the fields
    await clinic.page.wait_for_selector("#patient_name-error")
    await clinic.shot("form-errors")
    await clinic.page.goto(clinic.base + "/clinic")
    cid = await request_consultation_zh(clinic)
    await clinic.page.wait_for_selector("#state[data-state=queued]")
    await clinic.page.click("#btn-cancel")
    await clinic.page.wait_for_selector("#state[data-state=cancelled]")
    await clinic.shot("cancelled")
    assert cid > 0


async def request_consultation_zh(clinic: Any) -> int:
    page = clinic.page
    await page.click("text=发起会诊")
    await page.fill("#patient_name", "赵六")
    await page.select_option("#patient_sex", "male")
    await page.fill("#patient_birth_year", "1949")
    await page.select_option("#specialty", "neurology")
    await page.fill("#chief_complaint", "头晕三天")
    await page.fill("#consent_name", "赵六")
    await sign(page)
    await page.click("main button[type=submit]")
    await page.wait_for_url("**/clinic/consultations/*")
    return int(page.url.rsplit("/", 1)[1])


async def test_the_clinic_reloads_its_tab_mid_call_and_the_call_resumes(browsers: Any) -> None:
    clinic = await browsers("clinic")
    specialist = await browsers("specialist")
    await clinic.login("village3")
    await specialist.login("med.assoc")
    await specialist.page.wait_for_selector("#connection[data-state=online]")
    cid = await request_consultation(clinic, "Irregular pulse since yesterday")
    await specialist.page.wait_for_selector(f"#offer[data-consultation='{cid}']:not([hidden])")
    await specialist.page.click("#btn-accept")
    assert await wait_for_frames(clinic.page) >= 5
    assert await wait_for_frames(specialist.page) >= 5

    await clinic.page.reload()
    await clinic.shot("reloaded")
    # A new page, a new peer connection: frames arrive again on both sides.
    assert await wait_for_frames(clinic.page, 10) >= 10
    before = int(await specialist.page.evaluate(FRAMES_DECODED))
    assert await wait_for_frames(specialist.page, before + 10) >= before + 10
    await clinic.page.wait_for_selector("#call-state[data-state=connected]")
    await clinic.shot("resumed")
    await specialist.shot("resumed")


async def test_a_colleague_at_the_clinic_takes_over_the_call(browsers: Any, live_server: Any) -> None:
    store = live_server.app[keys.STORE]
    first = await store.get_user_by_username("village5")
    await store.insert_user("village5.night", hash_password(DEMO_PASSWORD), "Night doctor", Role.clinic_doctor,
                            organisation_id=first.organisation_id, now=dt.datetime.now(dt.UTC))
    clinic = await browsers("clinic")
    colleague = await browsers("colleague")
    specialist = await browsers("specialist")
    await clinic.login("village5")
    await specialist.login("cardio.attending")
    await specialist.page.wait_for_selector("#connection[data-state=online]")
    cid = await request_consultation(clinic, "Ankle swelling for a week")
    await specialist.page.wait_for_selector(f"#offer[data-consultation='{cid}']:not([hidden])")
    await specialist.page.click("#btn-accept")
    assert await wait_for_frames(clinic.page) >= 5
    # The colleague opens the consultation: asked, not pushed, to take over.
    await colleague.login("village5.night")
    await colleague.goto(f"/clinic/consultations/{cid}", "consultation")
    await colleague.page.wait_for_selector("#call-state[data-state=colleague_in_call]")
    await colleague.page.click("#btn-take-over")
    await clinic.page.wait_for_selector("#call-state[data-state=handed_over]")
    assert "Night doctor" in await clinic.page.inner_text("#call-state")
    assert await wait_for_frames(colleague.page) >= 5
    before = int(await specialist.page.evaluate(FRAMES_DECODED))
    assert await wait_for_frames(specialist.page, before + 10) >= before + 10
    await colleague.shot("took-over")
    await clinic.shot("handed-over")


async def ring_one_of_two(browsers: Any, complaint: str) -> tuple[Any, Any, Any, int]:
    """A clinic asks while two specialists are available; (clinic, the one rung, the other, consultation)."""
    clinic = await browsers("clinic")
    first = await browsers("first")
    second = await browsers("second")
    await clinic.login("village4")
    await first.login("cardio.chief")
    await first.page.wait_for_selector("#connection[data-state=online]")
    await second.login("med.assoc")
    await second.page.wait_for_selector("#connection[data-state=online]")
    cid = await request_consultation(clinic, complaint)
    # One of them is rung (the one idle longest).
    rung, other = first, second
    try:
        await first.page.wait_for_selector(f"#offer[data-consultation='{cid}']:not([hidden])", timeout=5_000)
    except Exception:
        rung, other = second, first
        await rung.page.wait_for_selector(f"#offer[data-consultation='{cid}']:not([hidden])")
    return clinic, rung, other, cid


async def the_other_takes_it(clinic: Any, other: Any, cid: int, label: str) -> None:
    await other.page.wait_for_selector(f"#offer[data-consultation='{cid}']:not([hidden])", timeout=15_000)
    await other.shot(label)
    await other.page.click("#btn-accept")
    await other.page.wait_for_url(f"**/specialist/consultations/{cid}")
    await clinic.page.wait_for_selector("#ready-banner:not([hidden])")


async def test_a_declined_offer_passes_to_the_next_specialist(browsers: Any) -> None:
    clinic, rung, other, cid = await ring_one_of_two(browsers, "Shortness of breath on stairs")
    await rung.page.select_option("#decline-reason", "busy_with_patient")
    await rung.shot("declining")
    await rung.page.click("#btn-decline")
    await rung.page.wait_for_selector("#offer", state="hidden")
    await the_other_takes_it(clinic, other, cid, "rung-after-decline")


@pytest.mark.ring_timeout(6)
async def test_an_unanswered_offer_passes_to_the_next_specialist_when_the_ring_runs_out(browsers: Any) -> None:
    clinic, rung, other, cid = await ring_one_of_two(browsers, "Palpitations since the morning")
    # The countdown shows the seconds left; nobody answers.
    assert re.fullmatch(r"\d+ seconds?", await rung.page.inner_text("#offer-countdown"))
    await rung.shot("ringing")
    await the_other_takes_it(clinic, other, cid, "rung-after-timeout")
    await rung.page.wait_for_selector("#offer", state="hidden")
    await clinic.shot("ready")


PAGES = {
    "village1": ["/clinic", "/clinic/consultations/new"],
    "cardio.chief": ["/specialist"],
    "admin": ["/admin", "/admin/consultations", "/admin/users", "/admin/organisations", "/admin/slots"],
}
HEADINGS = {
    "zh-CN": {"/clinic": "远程会诊", "/clinic/consultations/new": "发起会诊", "/specialist": "会诊队列",
              "/admin": "系统管理", "/admin/consultations": "会诊日志", "/admin/users": "人员管理",
              "/admin/organisations": "机构管理", "/admin/slots": "门诊号源"},
    "en-GB": {"/clinic": "Remote consultations", "/clinic/consultations/new": "New consultation",
              "/specialist": "Consultation queue", "/admin": "Administration", "/admin/consultations": "Session log",
              "/admin/users": "People", "/admin/organisations": "Organisations", "/admin/slots": "Outpatient slots"},
}


@pytest.mark.parametrize("locale", ["zh-CN", "en-GB"])
async def test_every_page_in_both_languages(browsers: Any, locale: str) -> None:
    for username, paths in PAGES.items():
        person = await browsers(f"{username}-{locale}", locale=locale)
        await person.login(username)
        for path in paths:
            await person.goto(path)
            assert await person.page.get_attribute("html", "lang") == ("zh-CN" if locale == "zh-CN" else "en")
            assert HEADINGS[locale][path] in await person.page.inner_text("h1")
            # Every control has an accessible name.
            unnamed = await person.page.evaluate("""() => [...document.querySelectorAll(
                'input:not([type=hidden]), select, textarea, button')].filter((el) => {
                  const id = el.id && document.querySelector(`label[for="${el.id}"]`);
                  return !(id || el.closest('label') || el.getAttribute('aria-label') || el.textContent.trim());
                }).map((el) => el.outerHTML.slice(0, 80))""")
            assert unnamed == [], (path, unnamed)


async def test_the_clinic_side_fits_a_phone(browsers: Any) -> None:
    phone = await browsers("phone", locale="zh-CN", viewport=(390, 844))
    await phone.login("village2")
    for path in ("/clinic", "/clinic/consultations/new"):
        await phone.goto(path, f"phone{path.replace('/', '_')}")
        overflow = await phone.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (path, overflow)
    cid = await request_consultation_zh(phone)
    await phone.page.wait_for_selector("#state[data-state=queued]")
    await phone.shot("phone-waiting")
    overflow = await phone.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0 and cid > 0
