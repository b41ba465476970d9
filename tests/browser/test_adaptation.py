"""A call that adapts: the ladder's rules on their own (the page's module), then in a real call between two
Chromium windows: poor link samples step the clinic's video down to audio only (its sender's parameters
change, both sides are told why), good ones step it back up; audio is never touched."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.browser.test_journey import request_consultation, wait_for_frames

pytestmark = pytest.mark.browser

POLICY = """async () => {
  const m = await import('/static/js/adapt.js');
  const state = { level: 0, poor: 0, good: 0 };
  const poor = { loss_pct: 15, rtt_ms: 200, available_kbps: 800 };
  const good = { loss_pct: 0, rtt_ms: 40, available_kbps: 2000 };
  const trail = [];
  for (let i = 0; i < 8; i++) { const d = m.step(state, poor); if (d) trail.push(d.level + ':' + d.reason); }
  for (let i = 0; i < 16; i++) { const d = m.step(state, good); if (d) trail.push(d.level + ':' + d.reason); }
  // One good sample between poor ones does not step down; a short bandwidth estimate does.
  const s2 = { level: 0, poor: 0, good: 0 };
  const flicker = [m.step(s2, poor), m.step(s2, good), m.step(s2, poor)].filter(Boolean).length;
  const narrow = [m.step(s2, { loss_pct: 0, rtt_ms: 50, available_kbps: 200 }),
                  m.step(s2, { loss_pct: 0, rtt_ms: 50, available_kbps: 200 })].filter(Boolean).map((d) => d.level);
  return { trail, flicker, narrow };
}"""

SENDERS = """() => {
  const pc = window.telehealthCall.pc;
  const out = {};
  for (const s of pc.getSenders()) {
    if (!s.track) continue;
    const e = (s.getParameters().encodings || [{}])[0] || {};
    out[s.track.kind] = { active: e.active !== false, maxBitrate: e.maxBitrate || null };
  }
  return out;
}"""


async def test_the_ladder_rules(browsers: Any) -> None:
    clinic = await browsers("clinic")
    await clinic.login("village1")
    result = await clinic.page.evaluate(POLICY)
    assert result["trail"] == ["1:weak_link", "2:weak_link", "3:weak_link", "2:recovered", "1:recovered",
                               "0:recovered"]
    assert result["flicker"] == 0 and result["narrow"] == [1]


async def test_a_call_steps_down_to_audio_only_and_back(browsers: Any) -> None:
    clinic = await browsers("clinic")
    specialist = await browsers("specialist")
    await clinic.login("village2")
    await specialist.login("cardio.chief")
    await specialist.page.wait_for_selector("#connection[data-state=online]")
    cid = await request_consultation(clinic, "Cough and fever for five days")
    await specialist.page.wait_for_selector(f"#offer[data-consultation='{cid}']:not([hidden])")
    await specialist.page.click("#btn-accept")
    assert await wait_for_frames(clinic.page) >= 5
    assert await wait_for_frames(specialist.page) >= 5

    poor = "() => window.telehealthCall.adapt({ loss_pct: 25, rtt_ms: 900, available_kbps: 60 })"
    for _ in range(2):
        await clinic.page.evaluate(poor)
    await asyncio.sleep(0.5)
    senders = await clinic.page.evaluate(SENDERS)
    assert senders["video"] == {"active": True, "maxBitrate": 350000} and senders["audio"]["active"]
    assert await clinic.page.get_attribute("#call-state", "data-state") == "adapt_medium"
    for _ in range(4):
        await clinic.page.evaluate(poor)
    await asyncio.sleep(0.5)
    senders = await clinic.page.evaluate(SENDERS)
    assert senders["video"]["active"] is False and senders["audio"]["active"] is True
    assert await clinic.page.get_attribute("#call-state", "data-state") == "adapt_audio_only"
    await specialist.page.wait_for_selector("#call-state[data-state=peer_adapt_audio_only]")
    await clinic.shot("audio-only")
    await specialist.shot("peer-audio-only")
    # Audio still flows to the specialist while the clinic's video is paused.
    before = await specialist.page.evaluate("""async () => {
      let n = 0; (await window.telehealthCall.pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'audio') n = r.packetsReceived; }); return n; }""")
    await asyncio.sleep(1.0)
    after = await specialist.page.evaluate("""async () => {
      let n = 0; (await window.telehealthCall.pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'audio') n = r.packetsReceived; }); return n; }""")
    assert after > before + 20

    good = "() => window.telehealthCall.adapt({ loss_pct: 0, rtt_ms: 20, available_kbps: 3000 })"
    for _ in range(15):
        await clinic.page.evaluate(good)
    await asyncio.sleep(0.5)
    senders = await clinic.page.evaluate(SENDERS)
    assert senders["video"] == {"active": True, "maxBitrate": 900000}
    await specialist.page.wait_for_selector("#call-state[data-state=peer_adapt_high]")


async def test_a_snapshot_reaches_the_specialist_while_video_is_paused(browsers: Any, live_server: Any) -> None:
    clinic = await browsers("clinic")
    specialist = await browsers("specialist")
    await clinic.login("village4")
    await specialist.login("cardio.attending")
    await specialist.page.wait_for_selector("#connection[data-state=online]")
    cid = await request_consultation(clinic, "A spreading rash on the forearm")
    await specialist.page.wait_for_selector(f"#offer[data-consultation='{cid}']:not([hidden])")
    await specialist.page.click("#btn-accept")
    assert await wait_for_frames(clinic.page) >= 5
    # The link is too weak for video: the clinic's video is paused...
    for _ in range(6):
        await clinic.page.evaluate("() => window.telehealthCall.adapt({ loss_pct: 30, rtt_ms: 900, "
                                   "available_kbps: 50 })")
    await specialist.page.wait_for_selector("#call-state[data-state=peer_adapt_audio_only]")
    # ...and a still photo still gets through, at the camera's full size.
    await clinic.page.click("#btn-snapshot")
    await clinic.page.wait_for_selector("#call-state[data-state=snapshot_sent]", timeout=15_000)
    image = specialist.page.locator("#attachment-list li:has-text('snapshot-') img")
    await image.wait_for(timeout=15_000)
    for _ in range(50):
        if await image.evaluate("(img) => img.complete && img.naturalWidth > 0"):
            break
        await asyncio.sleep(0.1)
    assert await image.evaluate("(img) => [img.naturalWidth, img.naturalHeight]") == [640, 480]
    await specialist.shot("snapshot-arrived")
    from telehealth.server import keys

    rows = await live_server.app[keys.STORE].list_attachments(cid)
    shots = [r for r in rows if r["filename"].startswith("snapshot-")]
    assert len(shots) == 1 and shots[0]["content_type"] == "image/jpeg" and shots[0]["kind"] == "clinical"
