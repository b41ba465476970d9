"""Every page, in Chinese and in English, as its reader sees it: times in the alliance's zone, 24-hour, dates
written out (never UTC, an offset, an ISO timestamp or AM/PM), and words where the records keep codes (no
event kind, end reason, audit action, state or bare `s`/`min` unit in the visible text). The pages are filled
by real calls, notes, referrals and checks first, so each kind of time and code is on them."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from telehealth.domain import EndReason
from telehealth.server import keys
from telehealth.server.auth import access_of
from telehealth.server.i18n import EVENT_SENTENCES, LABELS
from tests.conftest import make_settings
from tests.records.test_notes import CREATE, accepted_consultation, api
from tests.records.test_referrals import DOWN, UP, book_first
from tests.support.wsclient import Node, serve

SHANGHAI = ZoneInfo("Asia/Shanghai")
VISIBLE_ATTRIBUTES = ("title", "aria-label", "placeholder", "alt")


class VisibleText(HTMLParser):
    """The text a person reads: text nodes (templates included, as scripts show them) and the attributes a
    screen shows or reads aloud; not scripts, styles, values or data attributes, nor what the page marks as
    not language (`translate="no"`: a key to type into an app, say)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0
        self._machine: list[str] = []  # the open elements marked translate="no" (and those nested in them)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._machine or ("translate", "no") in attrs:
            self._machine.append(tag)
            return
        if tag in ("script", "style"):
            self._skip += 1
        self.parts.extend(v for k, v in attrs if k in VISIBLE_ATTRIBUTES and v)

    def handle_endtag(self, tag: str) -> None:
        if self._machine:
            if tag in self._machine:
                while self._machine.pop() != tag:
                    pass
            return
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and not self._machine and data.strip():
            self.parts.append(data.strip())


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return "\n".join(parser.parts)


TIME_FAULTS = {
    "UTC": re.compile(r"\bUTC\b|\bGMT\b"), "an offset": re.compile(r"[+-]\d{2}:\d{2}\b|\dZ\b"),
    "an ISO timestamp": re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}"),
    "an ISO date": re.compile(r"(?<![\w-])\d{4}-\d{2}-\d{2}(?![\w-])"),
    "a 12-hour time": re.compile(r"\d\s*(AM|PM|a\.m\.|p\.m\.)|上午|下午", re.IGNORECASE),
    "an ISO week": re.compile(r"\d{4}-W\d{2}"),
}
UNIT_FAULT = re.compile(r"\d\s*(s|min|h)\b")
# Every code the records keep and a page used to show: with an underscore or a dot it is never a word.
CODES = sorted({code for kind in ("state", "end_reason", "audit", "decline", "disposition", "decision", "specialty",
                                  "verdict", "precheck_cause", "title", "role", "level")
                for code in LABELS[kind]} | set(EVENT_SENTENCES) | {r.value for r in EndReason})
CODE_FAULT = re.compile(r"(?<![\w.@/-])(" + "|".join(re.escape(c) for c in CODES if "_" in c or "." in c)
                        + r"|hangup|requested|queued|offered|sdp_offer|session_opened)(?![\w.@/-])")


def faults(text: str) -> list[str]:
    found = [f"{what}: {m.group(0)!r}" for what, rx in TIME_FAULTS.items() for m in rx.finditer(text)]
    found += [f"a unit as a code: {m.group(0)!r}" for m in UNIT_FAULT.finditer(text)]
    found += [f"a raw code: {m.group(0)!r}" for m in CODE_FAULT.finditer(text)]
    if '{"' in text:
        found.append("JSON in the text")
    return found


@dataclass
class World:
    node: Node
    up: int
    down: int
    patient: int
    specialist: int


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with serve(make_settings(tmp_path)) as node:
        assert not isinstance(node.server, str)
        app = node.server.app
        store = app[keys.STORE]
        # A referral up after a call with every kind of event: both join, the link is checked, the video
        # steps down, quality is measured, the specialist hangs up; then a booked slot, a signed note, an
        # addendum and the clinic's decision.
        clinic = await node.connect("village6")
        specialist = await node.connect("neuro.chief")
        up = int((await clinic.ok("consultation.create", **CREATE))["consultation"]["id"])
        sid = (await specialist.ok("consultation.take", consultation_id=up))["session_id"]
        await specialist.ok("session.join", consultation_id=up)
        await clinic.ok("session.join", consultation_id=up)
        await specialist.ok("session.ice_state", session_id=sid, state="connected")
        await clinic.ok("session.ice_state", session_id=sid, state="connected")
        await specialist.ok("session.signal", session_id=sid, kind="quality_notice",
                            payload={"level": "medium", "reason": "weak_link"})
        for rtt in (80, 240):
            await clinic.ok("session.quality", session_id=sid, rtt_ms=rtt, loss_pct=2.5, bitrate_kbps=300)
        await specialist.ok("session.hangup", session_id=sid)
        await api(node, "PUT", f"/api/consultations/{up}/note", "neuro.chief", UP)
        await book_first(node, up)
        status, _ = await api(node, "POST", f"/api/consultations/{up}/note/sign", "neuro.chief", {})
        assert status == 200
        status, _ = await api(node, "POST", f"/api/consultations/{up}/note/addenda", "neuro.chief",
                              {"text": "CT: no bleeding."})
        assert status in (200, 201)
        status, _ = await api(node, "POST", f"/api/consultations/{up}/decision", "village6",
                              {"decision": "accept_advice", "note": ""})
        assert status == 200
        # A referral down with dated tasks.
        down = await accepted_consultation(node)
        await api(node, "PUT", f"/api/consultations/{down}/note", "neuro.chief", DOWN)
        status, _ = await api(node, "POST", f"/api/consultations/{down}/note/sign", "neuro.chief", {})
        assert status == 200
        patient = (await store.get_consultation(up)).patient_id
        today = dt.datetime.now(SHANGHAI).date()
        status, _ = await api(node, "POST", f"/api/patients/{patient}/results", "village6",
                              {"type_code": "11524-6", "performed_on": today.isoformat(), "text": "Sinus rhythm."})
        assert status == 201
        # A connection check with its figures and a cause.
        doctor = await store.get_user_by_username("village6")
        now = dt.datetime.now(dt.UTC)
        await store.insert_precheck("a" * 32, doctor.organisation_id, doctor.id, now)
        await store.set_precheck_uplink("a" * 32, {"up_kbps": 420.0, "rtt_ms": 180.0, "up_loss_pct": 6.0})
        await store.finish_precheck("a" * 32, downlink={"kbps": 300.0}, verdict="audio_only", cause="packet_loss",
                                    now=now)
        chief = await store.get_user_by_username("neuro.chief")
        await clinic.close()
        await specialist.close()
        yield World(node, up, down, patient, chief.id)


async def page(world: World, user: str, path: str, lang: str) -> str:
    token = await world.node.token(user)
    headers = {"Authorization": f"Bearer {token}", "Accept-Language": "zh-CN" if lang == "zh_CN" else "en",
               "Cookie": f"th_lang={lang}"}
    async with world.node.http.get(world.node.url(path), headers=headers, allow_redirects=False) as resp:
        assert resp.status == 200, (user, path, resp.status)
        html = await resp.text()
    assert f'<html lang="{"zh-CN" if lang == "zh_CN" else "en"}">' in html, (user, path, "not in", lang)
    return html


def pages(world: World) -> list[tuple[str, str]]:
    """(user, path) of every page, each seen by someone allowed to see it."""
    up, down = world.up, world.down
    return [
        ("village6", "/clinic"), ("village6", "/clinic/consultations/new"), ("village6", "/clinic/precheck"),
        ("village6", f"/clinic/consultations/{up}"), ("village6", f"/clinic/consultations/{down}"),
        ("village6", f"/records/{up}"), ("village6", f"/records/{down}"), ("village6", "/account"),
        ("village6", "/account/second-factor"), ("village6", "/clinic/appointments"),
        ("neuro.chief", "/specialist"), ("neuro.chief", "/specialist/appointments"), ("neuro.chief", f"/specialist/consultations/{up}"),
        ("neuro.chief", f"/records/{up}"),
        ("alliance.admin", "/admin"), ("alliance.admin", "/admin/consultations"),
        ("alliance.admin", f"/admin/consultations/{up}"), ("alliance.admin", f"/admin/consultations/{down}"),
        ("alliance.admin", "/admin/users"), ("alliance.admin", f"/admin/users/{world.specialist}"),
        ("alliance.admin", "/admin/organisations"), ("alliance.admin", "/admin/slots"), ("alliance.admin", "/admin/beds"),
        ("alliance.admin", "/admin/statistics"), ("alliance.admin", "/admin/network"),
        ("alliance.admin", "/admin/recognised-items"), ("alliance.admin", f"/records/{down}"),
        # Last: the audit trail then holds every view above.
        ("alliance.admin", "/admin/audit"),
    ]


def html_routes(world: World) -> set[str]:
    """The paths of every page the server renders for a signed-in person (not the API, exports or probes)."""
    assert not isinstance(world.node.server, str)
    found = set()
    for route in world.node.server.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if route.method != "GET" or access_of(getattr(route, "handler", None)) is None:
            continue
        if path.startswith(("/api/", "/ws", "/static")) or path.endswith(".csv") or path in (
                "/", "/login", "/healthz", "/readyz", "/metrics",
                # The sign-in's second steps, before any session: they need the password step's cookie.
                "/login/code", "/login/enrol"):
            continue
        found.add(re.sub(r"\{[a-z_]+\}", "{}", path))
    return found


async def test_every_page_shows_local_times_and_words_in_both_languages(world: World) -> None:
    visited = pages(world)
    assert {re.sub(r"/\d+(?=/|$)", "/{}", p) for _, p in visited} == html_routes(world)
    problems: list[str] = []
    texts: dict[tuple[str, str], str] = {}
    for lang in ("zh_CN", "en"):
        for user, path in visited:
            text = visible_text(await page(world, user, path, lang))
            texts[(lang, path)] = text
            problems += [f"{lang} {path}: {fault}" for fault in faults(text)]
    assert problems == [], "\n".join(problems)
    # What the pages say instead, checked on the timeline and the record.
    zh, en = texts[("zh_CN", f"/admin/consultations/{world.up}")], texts[("en", f"/admin/consultations/{world.up}")]
    assert re.search(r"\d{2}:\d{2}:\d{2}\n专家接听", zh) and re.search(r"\d{2}:\d{2}:\d{2}\nThe specialist accepted", en)
    assert "专家的视频调整为标清视频（350 kbit/s）" in zh and "The specialist left the call" not in en
    assert "The call ended: Hung up" in en and "通话结束：挂断" in zh
    record_zh, record_en = texts[("zh_CN", f"/records/{world.up}")], texts[("en", f"/records/{world.up}")]
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}", record_zh)
    assert re.search(r"\d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4}, \d{2}:\d{2}", record_en)
    # The referral's From and To are the institutions, by their names in the page's language.
    assert re.search(r"转出机构\n松溪", record_zh) or re.search(r"转出机构\n\S+卫生室", record_zh), record_zh
    assert "Referred from\n" in record_en and "起始日期" not in record_zh
    audit = texts[("zh_CN", "/admin/audit")]
    assert "打开病历" in audit and "record.view" not in audit


def test_the_fault_finder_finds_each_fault() -> None:
    """Each rule catches what it is for and lets the right words through."""
    for bad in ("2026-12-03T06:29:00+00:00", "06:29 UTC", "2026-12-03", "2:29 PM", "下午2:29", "45 s", "2.5 min",
                "hangup", "login.ok", "in_call", '{"reason": "x"}', "2026-W49"):
        assert faults(bad), bad
    for good in ("2026年12月3日 14:29", "3 Dec 2026, 14:29", "45 秒", "45 seconds", "2.5 minutes", "挂断",
                 "The call ended: Hung up", "2026年第49周", "900 kbit/s", "user@example.org", "2 %"):
        assert faults(good) == [], good


async def test_the_session_log_export_is_in_local_time(world: World) -> None:
    token = await world.node.token("alliance.admin")
    async with world.node.http.get(world.node.url("/admin/consultations.csv"),
                                   headers={"Authorization": f"Bearer {token}"}) as resp:
        rows = list(csv.reader(io.StringIO(await resp.text())))
    assert not isinstance(world.node.server, str)
    created = (await world.node.server.app[keys.STORE].get_consultation(world.up)).created_at
    (row,) = [r for r in rows[1:] if r[0] == str(world.up)]
    assert row[1] == created.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
    assert "T" not in row[1] and "+" not in row[1]


def test_every_word_for_a_code_has_its_chinese() -> None:
    from telehealth.server.i18n import VIDEO_LEVELS, WHO
    from tests.server.test_i18n import catalog

    translations = catalog()
    messages = {m for table in LABELS.values() for m in table.values()} | set(EVENT_SENTENCES.values()) \
        | set(WHO.values()) | set(VIDEO_LEVELS.values())
    assert sorted(m for m in messages if not translations.get(m)) == []


async def test_every_administrators_page_has_the_navigation_with_its_own_page_marked(world: World) -> None:
    admin_pages = [p for u, p in pages(world) if p.startswith("/admin")]
    expected = {p: "/admin/consultations" if p.startswith("/admin/consultations/") else
                "/admin/users" if p.startswith("/admin/users/") else p for p in admin_pages}
    marked = {}
    for path in admin_pages:
        html = await page(world, "alliance.admin", path, "zh_CN")
        nav = re.search(r'<nav class="admin-nav[^"]*" id="admin-nav".*?</nav>', html, re.S)
        assert nav, path
        links = re.findall(r'<a href="([^"]+)"', nav.group(0))
        assert len(links) == 10 and set(expected.values()) <= set(links), (path, links)
        marked[path] = re.findall(r'<a href="([^"]+)" aria-current="page">', nav.group(0))
    assert marked == {p: [expected[p]] for p in admin_pages}
    # Not on the pages of clinics and specialists, nor on an administrator's view of a record.
    for user, path in (("village6", "/clinic"), ("neuro.chief", "/specialist"), ("alliance.admin", f"/records/{world.up}")):
        assert 'id="admin-nav"' not in await page(world, user, path, "en"), path


def test_lengths_weeks_and_audit_details_in_words() -> None:
    from telehealth.server import i18n

    english = [i18n.format_duration(s) for s in (0, 1, 45, 150, 60 * 60 + 5 * 60, 4 * 3600)]
    assert english == ["0 seconds", "1 second", "45 seconds", "2.5 minutes", "1 hour 5 minutes", "4 hours"]
    assert i18n.format_week("2026-W49") == "Week 49, 2026" and i18n.format_week("later") == "later"
    token = i18n._current.set(i18n.load_translations(i18n.web_dir() / "translations")["zh_CN"])
    try:
        assert [i18n.format_duration(s) for s in (45, 150, 3900)] == ["45 秒", "2.5 分钟", "1 小时 5 分钟"]
        assert i18n.format_week("2026-W49") == "2026年第49周"
        # 2026-11-30T20:00Z is 1 December 04:00 in Shanghai: the day moves with the zone.
        details = {"from": "2026-11-06", "start": "2026-11-30T20:00:00+00:00", "level": "village_clinic", "page": 2}
        assert i18n.audit_details(details, "zh_CN") == \
            "自 2026年11月6日 · 自 2026年12月1日 04:00 · 类别 村卫生室 · 页码 2"
    finally:
        i18n._current.reset(token)


async def test_an_administrators_error_page_renders(world: World) -> None:
    """The error page has no page path to mark: it is shown, not a server error."""
    token = await world.node.token("alliance.admin")
    async with world.node.http.get(world.node.url("/admin/consultations?page=0"),
                                   headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 400 and resp.content_type == "text/html"
    async with world.node.http.get(world.node.url("/clinic"), headers={"Authorization": f"Bearer {token}"},
                                   allow_redirects=False) as resp:
        assert resp.status == 403
