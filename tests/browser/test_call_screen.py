"""The call screen on both sides, in Chinese and in English, on a 1366x768 laptop and a 390x844 phone: the
controls over the video and always on screen, the timer, one's own and the other side's mute and camera, the
network bars, the keys, full screen and picture-in-picture, the report beside or under the video, a photo
announced, and what the screen says once the call ended. Screenshots of each state at both widths."""

from __future__ import annotations

import asyncio
import re
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

CALL_STATE = """() => { const c = window.telehealthCall;
  return { notice: document.getElementById('call-state').dataset.state, session: c && c.sessionId, role: c && c.role,
    ice: c && c.pc && c.pc.iceConnectionState, signaling: c && c.pc && c.pc.signalingState,
    page: document.getElementById('page').dataset.state }; }"""
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
    for person in (clinic, specialist):
        # A loaded machine may take a while to bring the first call up; say where it stood if it did not.
        frames = await wait_for_frames(person.page, timeout=60)
        assert frames >= 5, (person.name, frames, await person.page.evaluate(CALL_STATE))
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


# What the call screen says, shown or spoken (labels, tooltips): its text, with what people typed left out.
CALL_SCREEN_WORDS = """() => {
  const chat = document.getElementById('call-chat');
  // The chat's own words, not the messages people wrote.
  const parts = [document.getElementById('call').innerText, chat.querySelector('h2').innerText,
    chat.querySelector('form').innerText, ...[...chat.querySelectorAll('li.system')].map((li) => li.innerText)];
  for (const root of [document.getElementById('call'), chat]) {
    for (const el of root.querySelectorAll('[aria-label], [title], [placeholder]')) {
      if (!el.checkVisibility() && !el.closest('.hud, .controls')) continue;
      for (const a of ['aria-label', 'title', 'placeholder']) if (el.getAttribute(a)) parts.push(el.getAttribute(a));
    }
  }
  return parts.join(' ');
}"""


def assert_one_language(words: str, locale: str, typed: tuple[str, ...] = ()) -> None:
    for text in typed:
        words = words.replace(text, " ")
    if locale == "zh-CN":
        # Key names stay as printed on the keyboard.
        latin = [w for w in re.findall(r"[A-Za-z]{2,}", words) if w != "Alt"]
        assert latin == [], latin
    else:
        assert re.findall(r"[\u3400-\u9fff]", words) == [], words


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
    for person in (clinic, specialist):
        assert_one_language(await person.page.evaluate(CALL_SCREEN_WORDS), locale)

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


def people_for(locale: str) -> tuple[str, str]:
    return ("village1", "neuro.chief") if locale == "zh-CN" else ("village2", "cardio.chief")


TEXT = {
    "zh-CN": {"mute": "静音", "unmute": "取消静音", "camera_off": "关闭摄像头", "camera_on": "打开摄像头",
              "peer_muted": "对方已静音", "peer_camera_off": "对方已关闭摄像头", "paused": "对方网络较弱，视频已暂停",
              "full": "全屏", "exit_full": "退出全屏", "pip": "画中画", "exit_pip": "退出画中画"},
    "en-GB": {"mute": "Mute", "unmute": "Unmute", "camera_off": "Camera off", "camera_on": "Camera on",
              "peer_muted": "The other side is muted", "peer_camera_off": "The other side's camera is off",
              "paused": "The other side's video is paused: their connection is weak", "full": "Full screen",
              "exit_full": "Exit full screen", "pip": "Picture in picture", "exit_pip": "Exit picture in picture"},
}


async def poll(page: Any, script: str, want: Any, timeout: float = 15.0) -> Any:
    """The script's value once it equals `want` (the pages' strict CSP rules out wait_for_function)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    value = await page.evaluate(script)
    while value != want and loop.time() < deadline:
        await asyncio.sleep(0.2)
        value = await page.evaluate(script)
    return value


def seconds(timer: str) -> int:
    parts = [int(p) for p in timer.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


TRACKS = """() => { const s = window.telehealthCall.localStream;
  return { audio: s.getAudioTracks().every((t) => t.enabled), video: s.getVideoTracks().every((t) => t.enabled) }; }"""
VISIBLE = "(sel) => { const el = document.querySelector(sel); return Boolean(el && el.checkVisibility()); }"


async def visible(page: Any, selector: str) -> bool:
    return bool(await page.evaluate(VISIBLE, selector))


@pytest.mark.parametrize("locale", list(LANGS))
async def test_timer_network_bars_and_mute_and_camera_on_both_sides(browsers: Any, locale: str) -> None:
    text = TEXT[locale]
    clinic, specialist, _ = await call_between(browsers, locale, WIDE, *people_for(locale))
    cp, sp = clinic.page, specialist.page

    # The timer counts from the connection, as minutes and seconds.
    first = await cp.inner_text("#call-timer")
    assert await poll(cp, "() => document.getElementById('call-timer').textContent !== " + repr(first), True)
    later = await cp.inner_text("#call-timer")
    assert len(later) == 5 and later[2] == ":" and seconds(later) > seconds(first)

    # Network bars beside the quality word, as many lit as the word says (once a round trip is measured).
    assert await poll(cp, "() => document.getElementById('quality').dataset.level !== 'unknown'", True)
    level = await cp.get_attribute("#quality", "data-level")
    assert level in ("good", "fair", "poor")
    bars = await cp.get_attribute("#quality-bars", "data-bars")
    assert bars == {"good": "4", "fair": "2", "poor": "1"}[level]
    beside = await cp.evaluate("""() => {
      const b = document.getElementById('quality-bars').getBoundingClientRect();
      const w = document.getElementById('quality').getBoundingClientRect();
      return b.width > 0 && b.right <= w.left && w.left - b.right < 40
        && Math.abs((b.top + b.bottom) / 2 - (w.top + w.bottom) / 2) < 8; }""")
    assert beside

    # Mute: the button says how to undo it, one's own tile shows it, the other side is told.
    await cp.click("#btn-mute")
    assert (await cp.inner_text("#btn-mute")).strip() == text["unmute"]
    assert await visible(cp, "#local-muted")
    assert (await cp.evaluate(TRACKS))["audio"] is False
    await sp.wait_for_selector("#remote-muted:not([hidden])")
    assert text["peer_muted"] in await sp.inner_text("#remote-muted")
    # Camera off: the same, and the other side sees words where the video was, not a black rectangle.
    await cp.click("#btn-camera")
    assert (await cp.inner_text("#btn-camera")).strip() == text["camera_on"]
    assert await visible(cp, "#local-cam-off") and await visible(cp, "#local-cover")
    assert (await cp.evaluate(TRACKS))["video"] is False
    await sp.wait_for_selector("#remote-tile[data-video=off]")
    assert await visible(sp, "#remote-cover")
    assert (await sp.inner_text("#remote-cover")).strip() == text["peer_camera_off"]
    await at_each_size([clinic, specialist], "muted-camera-off")
    for person in (clinic, specialist):
        assert_one_language(await person.page.evaluate(CALL_SCREEN_WORDS), locale)

    # Both back on: the buttons and tiles say so on both sides.
    await cp.click("#btn-mute")
    await cp.click("#btn-camera")
    assert (await cp.inner_text("#btn-mute")).strip() == text["mute"]
    assert (await cp.inner_text("#btn-camera")).strip() == text["camera_off"]
    assert await cp.evaluate(TRACKS) == {"audio": True, "video": True}
    await sp.wait_for_selector("#remote-muted", state="hidden")
    await sp.wait_for_selector("#remote-tile[data-video=on]")
    assert not await visible(sp, "#remote-cover") and not await visible(cp, "#local-muted")

    # The clinic's link gets too weak for video: the specialist reads why there is no picture.
    for _ in range(6):
        await cp.evaluate("() => window.telehealthCall.adapt({ loss_pct: 30, rtt_ms: 900, available_kbps: 50 })")
    await sp.wait_for_selector("#remote-tile[data-video=paused]")
    assert (await sp.inner_text("#remote-cover")).strip() == text["paused"]
    await at_each_size([specialist], "peer-video-paused")

    # A reload mid-call: the timer goes on from where it was, not from zero.
    before = seconds(await sp.inner_text("#call-timer"))
    await sp.reload()
    await sp.wait_for_selector("#call-state[data-state=connected]", timeout=30_000)
    assert seconds(await sp.inner_text("#call-timer")) >= before


MODES = """() => ({ full: document.fullscreenElement ? document.fullscreenElement.id : null,
  pip: document.pictureInPictureElement ? document.pictureInPictureElement.id : null,
  fullLabel: document.getElementById('btn-fullscreen').getAttribute('aria-label'),
  pipShown: !document.getElementById('btn-pip').hidden,
  pipLabel: document.getElementById('btn-pip').getAttribute('aria-label') })"""


@pytest.mark.parametrize("locale", list(LANGS))
async def test_keys_full_screen_and_picture_in_picture(browsers: Any, locale: str) -> None:
    text = TEXT[locale]
    clinic, specialist, _ = await call_between(browsers, locale, WIDE, *people_for(locale))
    cp, sp = clinic.page, specialist.page

    # Alt+M and Alt+V work the call wherever the focus is, even in the middle of typing the report, and type
    # nothing into it.
    await sp.click("#note-assessment")
    await sp.keyboard.type("TIA")
    await sp.keyboard.press("Alt+KeyM")
    assert (await sp.inner_text("#btn-mute")).strip() == text["unmute"]
    await cp.wait_for_selector("#remote-muted:not([hidden])")
    await sp.keyboard.press("Alt+KeyV")
    assert (await sp.inner_text("#btn-camera")).strip() == text["camera_on"]
    await cp.wait_for_selector("#remote-tile[data-video=off]")
    assert await sp.input_value("#note-assessment") == "TIA"
    await sp.keyboard.press("Alt+KeyM")
    await sp.keyboard.press("Alt+KeyV")
    assert (await sp.inner_text("#btn-mute")).strip() == text["mute"]
    await cp.wait_for_selector("#remote-tile[data-video=on]")
    # A plain m in the chat is just a letter.
    await cp.click("#chat-text")
    await cp.keyboard.type("mv")
    assert (await cp.inner_text("#btn-mute")).strip() == text["mute"]

    for where, (w, h) in SIZES.items():
        await cp.set_viewport_size({"width": w, "height": h})
        # Full screen: the stage fills the screen with its controls, the button offers the way back.
        await cp.click("#btn-fullscreen")
        full = await poll(cp, "() => document.fullscreenElement ? document.fullscreenElement.id : null", "stage")
        assert full == "stage"
        label = "() => document.getElementById('btn-fullscreen').getAttribute('aria-label')"
        assert await poll(cp, label, text["exit_full"]) == text["exit_full"]  # told after the change
        await assert_controls_on_screen(clinic, f"full screen ({where})")
        await clinic.shot(f"full-screen-{where}", full_page=False)
        await cp.click("#btn-fullscreen")
        assert await poll(cp, "() => document.fullscreenElement === null", True)
        assert await poll(cp, label, text["full"]) == text["full"]

        # Picture-in-picture of the other side's video, and back.
        modes = await cp.evaluate(MODES)
        assert modes["pipShown"], modes
        await cp.click("#btn-pip")
        assert await poll(cp, "() => document.pictureInPictureElement && document.pictureInPictureElement.id",
                          "remote-video") == "remote-video"
        pip = "() => document.getElementById('btn-pip').getAttribute('aria-label')"
        assert await poll(cp, pip, text["exit_pip"]) == text["exit_pip"]
        await clinic.shot(f"picture-in-picture-{where}", full_page=False)
        await cp.click("#btn-pip")
        assert await poll(cp, "() => document.pictureInPictureElement === null", True)
        assert await poll(cp, pip, text["pip"]) == text["pip"]

    # Alt+H hangs up.
    await sp.keyboard.press("Alt+KeyH")
    await cp.wait_for_selector("#call-state[data-state=ended]")
    await sp.wait_for_selector("#call-state[data-state=ended]")




@pytest.mark.parametrize("locale", list(LANGS))
async def test_a_still_photo_that_arrives_is_announced_with_its_thumbnail(browsers: Any, locale: str) -> None:
    arrived, sent = ("收到一张照片：snapshot-", "照片已发送：snapshot-") if locale == "zh-CN" \
        else ("A photo arrived: snapshot-", "Photo sent: snapshot-")
    clinic, specialist, _ = await call_between(browsers, locale, WIDE, *people_for(locale))
    cp, sp = clinic.page, specialist.page
    assert await sp.is_hidden("#call-toast")
    await cp.click("#btn-snapshot")
    # The specialist is told over the video, with the photo small; it opens full size.
    await sp.wait_for_selector("#call-toast[data-kind=arrived]")
    assert (await sp.inner_text("#toast-text")).startswith(arrived)
    assert await poll(sp, "() => { const i = document.getElementById('toast-image');"
                          " return i.complete && i.naturalWidth; }", 640) == 640
    href = await sp.get_attribute("#toast-link", "href")
    assert href and "/attachments/" in href
    # The clinic sees what it sent.
    await cp.wait_for_selector("#call-toast[data-kind=sent]")
    assert (await cp.inner_text("#toast-text")).startswith(sent)
    assert await poll(cp, "() => document.getElementById('toast-image').naturalWidth", 640) == 640
    # The photo is in the attachments too, and the toast is on screen at both sizes.

    async def check(person: Any, where: str) -> None:
        box = await person.page.evaluate("""() => { const r = document.getElementById('call-toast').getBoundingClientRect();
          return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth && r.top >= 0
            && r.bottom <= window.innerHeight; }""")
        assert box, (person.name, where)

    await sp.wait_for_selector("#attachment-list li:has-text('snapshot-') img")
    await at_each_size([clinic, specialist], "photo-toast", check)
    for person in (clinic, specialist):
        assert_one_language(await person.page.evaluate(CALL_SCREEN_WORDS), locale, typed=("snapshot-", ".jpg"))
    await sp.click("#toast-close")
    assert await sp.is_hidden("#call-toast")


AFTER = {
    "zh-CN": {"ended": "通话已结束", "duration": "时长 ", "quality": "通话结束", "chat_closed": "文字交流已关闭。",
              "next_clinic": "专家正在撰写会诊报告，签署后将显示在本页。",
              "next_specialist": "请在旁边撰写并签署会诊报告。报告签署前可以重新发起通话。",
              "next_signed": "会诊报告已签署。", "rejoin": "重新加入通话"},
    "en-GB": {"ended": "The call has ended", "duration": "Duration ", "quality": "Call ended",
              "chat_closed": "The chat is closed.",
              "next_clinic": "The specialist is writing the report. It appears on this page once it is signed.",
              "next_specialist": "Write and sign the report beside the call. You can start the call again while it "
                                 "is not signed.",
              "next_signed": "The report is signed.", "rejoin": "Rejoin the call"},
}

ENDED_SCREEN = """() => ({
  quality: document.getElementById('quality').textContent, level: document.getElementById('quality').dataset.level,
  bars: document.getElementById('quality-bars').dataset.bars,
  videos: [document.getElementById('remote-video').srcObject, document.getElementById('local-video').srcObject]
    .filter(Boolean).length,
  chatDisabled: document.getElementById('chat-text').disabled,
  placeholder: document.getElementById('chat-text').placeholder,
  lastChat: document.querySelector('#chat-log li:last-child') && document.querySelector('#chat-log li:last-child').className
    + '|' + document.querySelector('#chat-log li:last-child').textContent,
  controls: document.getElementById('call-controls').checkVisibility(),
  duration: document.getElementById('ended-duration').textContent,
  next: document.getElementById('ended-next').textContent,
  rejoin: document.getElementById('btn-rejoin').checkVisibility() })"""


@pytest.mark.parametrize("locale", list(LANGS))
async def test_after_hang_up_the_screen_says_the_call_ended_then_the_report_comes(browsers: Any, locale: str) -> None:
    text = AFTER[locale]
    clinic, specialist, cid = await call_between(browsers, locale, WIDE, *people_for(locale))
    cp, sp = clinic.page, specialist.page
    await cp.fill("#chat-text", "BP 150/95")
    await cp.click("#chat-form button[type=submit]")
    await sp.wait_for_selector("#chat-log li:has-text('BP 150/95')")
    await sp.click("#btn-hangup")

    # The video area, the chat and the quality word all say that the call ended; each side is told what comes
    # next, and may call again.
    for person, next_key in ((clinic, "next_clinic"), (specialist, "next_specialist")):
        await person.page.wait_for_selector("#call-ended:not([hidden])")
        screen = await person.page.evaluate(ENDED_SCREEN)
        assert text["ended"] in await person.page.inner_text("#call-state")
        assert screen["quality"] == text["quality"] and screen["level"] == "ended" and screen["bars"] == "0"
        assert screen["videos"] == 0 and not screen["controls"]
        assert screen["chatDisabled"] and screen["placeholder"] == text["chat_closed"]
        assert screen["lastChat"].startswith("system|") and text["ended"] in screen["lastChat"]
        assert screen["duration"].startswith(text["duration"]) and screen["next"] == text[next_key]
        assert screen["rejoin"], (person.name, screen)
    assert await cp.is_hidden("#report-pending")  # said once, on the stage
    for person in (clinic, specialist):
        assert_one_language(await person.page.evaluate(CALL_SCREEN_WORDS), locale, typed=("BP",))
    await at_each_size([clinic, specialist], "call-ended")

    # The clinic calls again: a new call between the same two, timer from zero.
    await cp.click("#btn-rejoin")
    await cp.wait_for_selector("#call[data-call=live]")
    await sp.wait_for_selector("#call[data-call=live]")
    await sp.wait_for_selector("#state[data-state=in_call]")
    await cp.wait_for_selector("#state[data-state=in_call]")
    assert await wait_for_frames(cp, 5) >= 5
    assert await wait_for_frames(sp, 5) >= 5
    assert seconds(await cp.inner_text("#call-timer")) < 60
    assert not (await cp.evaluate(ENDED_SCREEN))["chatDisabled"]
    await clinic.shot("rejoined", full_page=False)
    await sp.keyboard.press("Alt+KeyH")
    await cp.wait_for_selector("#call-ended:not([hidden])")

    # After a reload the clinic's page still says the report is being written, and offers the call again.
    await cp.reload()
    await cp.wait_for_selector("#report-pending:not([hidden])")
    assert (await cp.inner_text("#report-pending")).strip() == text["next_clinic"]
    assert (await cp.inner_text("#btn-join")).strip() == text["rejoin"]
    await at_each_size([clinic], "report-being-written")

    # The specialist signs: their stage says so and offers no more call; the clinic's page shows the report.
    await sp.fill("#note-assessment", "Transient ischaemic attack likely." if locale == "en-GB" else "考虑短暂性脑缺血发作。")
    await sp.select_option("#note-disposition", "manage_locally")
    await sp.click("#btn-sign")
    await sp.wait_for_selector("#state[data-state=signed]")
    assert (await sp.inner_text("#ended-next")).strip() == text["next_signed"]
    assert await sp.is_hidden("#btn-rejoin") and await sp.is_hidden("#btn-join")
    await cp.wait_for_selector("#record", timeout=15_000)
    assert "ischaemic" in await cp.inner_text("#record") or "脑缺血" in await cp.inner_text("#record")
    assert await cp.is_hidden("#btn-join") and await cp.is_hidden("#report-pending")
    assert await cp.is_hidden("#call")
    await at_each_size([clinic, specialist], "report-signed")
    assert cid > 0
