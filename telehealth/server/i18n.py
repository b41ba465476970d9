"""Two languages (zh_CN, en): Babel catalogs compiled at start, jinja2 rendering in the request's language,
local time, one mapping from codes to words, and the diagnosis names loaded in the background."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import io
import logging
import multiprocessing
import threading
from collections.abc import AsyncIterator, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from telehealth.records.icd10 import (
    DiagnosisIndex,
    build_and_keep_index,
    build_index,
    cached_index,
    default_data_dirs,
)
from telehealth.server import keys

LANGUAGES = ("zh_CN", "en")
LANGUAGE_COOKIE = "th_lang"
DEFAULT_TZ = ZoneInfo("Asia/Shanghai")

log = logging.getLogger("telehealth.i18n")

_current: contextvars.ContextVar[NullTranslations] = contextvars.ContextVar("translations")


def web_dir() -> Path:
    """The folder of templates, static files and catalogs, in a checkout or an installed package."""
    here = Path(__file__).resolve().parent.parent.parent / "web"
    if here.is_dir():
        return here
    import telehealth_web  # type: ignore[import-not-found]  # the wheel ships web/ under this name

    return Path(telehealth_web.__path__[0])


def load_translations(translations_dir: Path) -> dict[str, NullTranslations]:
    """Compile each catalog in memory, so what runs always matches the .po files."""
    result: dict[str, NullTranslations] = {"en": NullTranslations()}
    for lang in LANGUAGES:
        po = translations_dir / lang / "LC_MESSAGES" / "messages.po"
        if lang == "en" or not po.exists():
            continue
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=lang)
        buf = io.BytesIO()
        write_mo(buf, catalog)
        buf.seek(0)
        result[lang] = Translations(fp=buf)
    return result


def pick_language(request: web.Request, user_language: str | None, default: str) -> str:
    if user_language in LANGUAGES:
        return user_language  # type: ignore[return-value]
    cookie = request.cookies.get(LANGUAGE_COOKIE)
    if cookie in LANGUAGES:
        return cookie  # type: ignore[return-value]
    for part in request.headers.get("Accept-Language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return default


def gettext(message: str) -> str:
    return _current.get(NullTranslations()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _current.get(NullTranslations()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a message for the catalog; translated where it is shown."""
    return message


# Every code a page shows, as words: one table, translated at render time through the catalog.
LABELS: dict[str, dict[str, str]] = {
    "specialty": {"cardiology": N_("Cardiology"), "paediatrics": N_("Paediatrics"), "neurology": N_("Neurology"),
                  "internal_medicine": N_("Internal medicine"), "dermatology": N_("Dermatology"),
                  "obstetrics": N_("Obstetrics"), "general_surgery": N_("General surgery")},
    "urgency": {"emergency": N_("Emergency"), "urgent": N_("Urgent"), "routine": N_("Routine")},
    "title": {"resident": N_("Resident"), "attending": N_("Attending physician"),
              "associate_chief": N_("Associate chief physician"), "chief": N_("Chief physician")},
    "state": {"requested": N_("Waiting for consent"), "queued": N_("Waiting in queue"),
              "offered": N_("Ringing a specialist"), "accepted": N_("Accepted"), "in_call": N_("In call"),
              "ended": N_("Call ended"), "signed": N_("Opinion signed"), "closed": N_("Closed"),
              "cancelled": N_("Cancelled"), "expired": N_("Expired")},
    "role": {"clinic_doctor": N_("Clinic doctor"), "specialist": N_("Specialist"), "admin": N_("Administrator")},
    "level": {"village_clinic": N_("Village clinic"), "township_centre": N_("Township health centre"),
              "county_hospital": N_("County hospital"), "city_hospital": N_("City hospital")},
    "decline": {"outside_specialty": N_("Outside my specialty"), "busy_with_patient": N_("Busy with a patient"),
                "needs_senior": N_("Needs a more senior colleague"), "other": N_("Other")},
    "end_reason": {"hangup": N_("Hung up"), "network": N_("Connection lost"), "timeout": N_("Timed out"),
                   "server_shutdown": N_("Server restarted"), "connection_lost": N_("Connection lost"),
                   "cancelled": N_("Cancelled")},
    "verdict": {"video_ok": N_("Video OK"), "audio_only": N_("Audio only"), "cannot_connect": N_("Cannot connect")},
    "consent_by": {"patient": N_("The patient"), "guardian": N_("A guardian"), "relative": N_("A close relative")},
    "sex": {"female": N_("Female"), "male": N_("Male"), "other": N_("Other")},
    "referral_status": {"open": N_("Open"), "closed": N_("Closed")},
    "precheck_cause": {"slow_link": N_("The connection is slow."), "packet_loss": N_("Many packets are lost on the way."),
                       "long_delay": N_("The delay is long."),
                       "camera_blocked": N_("The camera is blocked or missing: allow it in the browser."),
                       "no_udp": N_("The network lets no UDP through (a firewall); ask for the relay server to be set up."),
                       "turn_unreachable": N_("The relay server cannot be reached from this network."),
                       "blocked": N_("The connection was blocked on the way.")},
    "disposition": {"manage_locally": N_("Manage at the clinic"),
                    "follow_up": N_("Manage at the clinic with a follow-up"),
                    "refer_up": N_("Refer up to a hospital"), "refer_down": N_("Refer down to a member unit")},
    "decision": {"accept_advice": N_("Advice accepted"), "adapt_advice": N_("Advice adapted"),
                 "refer_as_suggested": N_("Referred as suggested")},
    "side": {"clinic": N_("Clinic"), "specialist": N_("Specialist")},
    "ice_state": {"new": N_("starting"), "checking": N_("checking"), "connected": N_("connected"),
                  "completed": N_("connected"), "disconnected": N_("interrupted"), "failed": N_("failed"),
                  "closed": N_("closed")},
    "presence": {"available": N_("Available"), "busy": N_("Busy"), "away": N_("Away")},
    "direction": {"up": N_("Referral up"), "down": N_("Referral down")},
    "agreement_state": {"proposed": N_("Proposed, awaiting both sides"),
                        "clinic_approved": N_("Awaiting the hospital's side"),
                        "hospital_approved": N_("Awaiting the clinic's side"), "in_effect": N_("In effect"),
                        "declined": N_("Declined"), "ended": N_("Ended")},
    "alliance_kind": {"county_community": N_("County medical community"), "city_group": N_("City medical group")},
    "audit": {
        "login.ok": N_("Logged in"), "login.failed": N_("Failed login"),
        "login.password_ok": N_("Signed in with the password (second step to come)"),
        "second_factor.enrol": N_("Set up a second factor"),
        "second_factor.enrol_failed": N_("Failed to set up a second factor"),
        "second_factor.use": N_("Used the second factor"), "second_factor.failed": N_("Gave a wrong second-factor code"),
        "second_factor.reset": N_("Reset a second factor"),
        "second_factor.recovery_codes": N_("Made new recovery codes"),
        "admin.audit_verify": N_("Checked the audit trail"), "admin.audit_view": N_("Viewed the audit trail"),
        "admin.export_csv": N_("Exported the session log"), "admin.network": N_("Viewed clinic networks"),
        "admin.session_detail": N_("Viewed a session timeline"), "admin.session_log": N_("Viewed the session log"),
        "admin.statistics": N_("Viewed the policy statistics"), "agreement.create": N_("Signed an agreement"),
        "agreement.end": N_("Ended an agreement"), "agreement.propose": N_("Proposed an agreement"),
        "agreement.approve": N_("Approved an agreement"), "agreement.decline": N_("Declined an agreement"), "api_token.create": N_("Created an API token"),
        "attachment.add": N_("Added an attachment"), "attachment.view": N_("Opened an attachment"),
        "consultation.create": N_("Asked for a consultation"), "consultation.decision": N_("Recorded a decision"),
        "consultation.consent": N_("Recorded a patient's consent after the request"),
        "consultation.view": N_("Opened a consultation"),
        "consultation.view_denied": N_("Was refused a consultation"),
        "consultation.view_events": N_("Viewed a consultation's events"), "duty.add": N_("Added a duty day"),
        "duty.delete": N_("Removed a duty day"), "note.addendum": N_("Added an addendum"),
        "note.draft": N_("Saved an opinion draft"), "note.sign": N_("Signed an opinion"),
        "note.view": N_("Read an opinion"), "organisation.create": N_("Added an organisation"),
        "organisation.reserved_share": N_("Changed the reserved share"),
        "alliance.member_share": N_("Changed the alliance's rule for reserved shares"),
        "organisation.update": N_("Changed an organisation"), "precheck.report": N_("Ran a connection check"),
        "record.export_fhir": N_("Exported a record (FHIR)"), "record.view": N_("Opened a record"),
        "referral.close": N_("Closed a referral"), "referral.task_done": N_("Did a follow-up task"),
        "referral.view_denied": N_("Was refused a referral"), "slot.book": N_("Booked a slot"),
        "slot.cancel": N_("Cancelled a slot"), "slots.import": N_("Imported slots"),
        "slots.publish": N_("Published slots"), "beds.publish": N_("Published inpatient beds"),
        "bed.book": N_("Booked a reserved bed"),
        "beds.import": N_("Imported inpatient beds"), "user.create": N_("Added an account"),
        "user.password": N_("Set a password"), "user.update": N_("Changed an account"),
        "api_token.revoke": N_("Revoked an API token"), "result.import": N_("Imported test results (FHIR)"),
        "result.recognised_items": N_("Changed the mutually recognised test results"),
        "result.record": N_("Recorded a test result"), "result.view": N_("Viewed test results"),
        "result.view_denied": N_("Was refused test results"), "user.password_change": N_("Changed their password"),
        "user.password_change_refused": N_("Was refused a password change"),
    },
}

# The audit page's filter by family of actions ("note." is every action on opinions).
LABELS["audit_family"] = {
    "admin.": N_("Administration (all)"), "record.": N_("Records (all)"), "note.": N_("Opinions (all)"),
    "consultation.": N_("Consultations (all)"), "attachment.": N_("Attachments (all)"),
    "referral.": N_("Referrals (all)"), "slot.": N_("Slot bookings (all)"), "slots.": N_("Slot publishing (all)"),
    "user.": N_("Accounts (all)"), "organisation.": N_("Organisations (all)"), "agreement.": N_("Agreements (all)"),
    "duty.": N_("Duty roster (all)"), "login.": N_("Sign-ins (all)"), "result.": N_("Test results (all)"),
}

# The names of an audit entry's details, and which table of words its value comes from.
LABELS["audit_detail"] = {
    "page": N_("page"), "results": N_("results"), "from": N_("from"), "to": N_("to"), "format": N_("format"),
    "by": N_("consent by"), "level": N_("kind"), "changed": N_("changed"), "token": N_("token"), "user": N_("account"),
    "days": N_("days"), "start": N_("from"), "end": N_("until"), "clinic": N_("clinic"), "hospital": N_("hospital"),
    "clinic_org_id": N_("clinic"), "hospital_org_id": N_("hospital"), "specialist_id": N_("specialist"),
    "specialty": N_("specialty"), "urgency": N_("urgency"), "state": N_("state"), "end_reason": N_("end reason"),
}
DETAIL_KINDS = {"by": "consent_by", "level": "level", "specialty": "specialty", "urgency": "urgency", "state": "state",
                "end_reason": "end_reason"}

# Each event of a consultation's timeline as a sentence; %(who)s is the side that acted.
EVENT_SENTENCES: dict[str, str] = {
    "requested": N_("%(who)s asked for a consultation"),
    "consent_recorded": N_("The patient's consent was recorded"),
    "queued": N_("Queued for a specialist"),
    "offered": N_("Rang %(count)s specialist(s)"),
    "accepted": N_("The specialist accepted"),
    "declined": N_("A specialist declined: %(reason)s"),
    "ring_timeout": N_("A specialist did not answer in time"),
    "ring_withdrawn": N_("The ring was withdrawn"),
    "given_back": N_("The specialist gave the consultation back to the queue"),
    "requeued": N_("Back in the queue"),
    "expired": N_("Expired: no specialist within the time limit"),
    "call_started": N_("Call %(session)s started"),
    "session_opened": N_("Call %(session)s opened"),
    "joined": N_("%(who)s joined the call"),
    "rejoined": N_("%(who)s rejoined the call"),
    "sdp_offer": N_("%(who)s set up the connection"),
    "sdp_answer": N_("%(who)s answered the connection set-up"),
    "ice_state": N_("%(who)s's connection: %(state)s"),
    "adapted": N_("%(who)s's video stepped to %(level)s"),
    "left": N_("%(who)s left the call: %(reason)s"),
    "call_ended": N_("The call ended: %(reason)s"),
    "session_ended": N_("Call %(session)s closed"),
    "handover": N_("Handed over to another specialist"),
    "answered_in_writing": N_("Answered in writing, without a call"),
    "note_signed": N_("The specialist signed the opinion"),
    "addendum_signed": N_("The specialist added an addendum"),
    "attachment_added": N_("%(who)s added an attachment"),
    "referral_opened": N_("A referral was opened"),
    "slot_booked": N_("An outpatient slot was booked"),
    "slot_cancelled": N_("The outpatient slot was cancelled"),
    "bed_booked": N_("A reserved inpatient bed was booked for admission"),
    "referral_task_done": N_("A follow-up task was done"),
    "referral_closed": N_("The referral was closed with its outcome"),
    "acknowledged": N_("The clinic doctor recorded their decision"),
    "closed": N_("The clinic doctor recorded their decision"),
    "cancelled": N_("The clinic cancelled the consultation"),
}
WHO = {"clinic": N_("The clinic doctor"), "specialist": N_("The specialist"), "": N_("The server")}
# The call's video ladder (web/static/js/adapt.js), by the rung's name as the page reports it.
VIDEO_LEVELS = {"high": N_("full video (900 kbit/s)"), "medium": N_("reduced video (350 kbit/s)"),
                "low": N_("lowest video (150 kbit/s)"), "audio_only": N_("audio only")}
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WEEKDAYS_ZH = "一二三四五六日"
WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def label(code: object, kind: str) -> str:
    """The words for a code of the given kind, in the language being rendered; never the bare code when the
    table knows it."""
    if code is None or code == "":
        return "—"
    value = code.value if hasattr(code, "value") else str(code)
    message = LABELS.get(kind, {}).get(str(value))
    return gettext(message) if message else str(value)


def format_local(value: dt.datetime | dt.date | str | None, lang: str, tz: dt.tzinfo = DEFAULT_TZ,
                 style: str = "datetime") -> str:
    """A moment in the alliance's time zone, 24-hour: `2026年12月2日 14:29` or `2 Dec 2026, 14:29`.
    Styles: datetime, full (with seconds), date, day (date with the weekday), time, seconds (time with seconds),
    short (no year), monthday (the day without year or time). A naive datetime is taken as UTC, as the store keeps them."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value) if "T" in value or " " in value else dt.date.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, dt.datetime):
        moment = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(tz)
        day: dt.date = moment.date()
    else:
        moment, day = None, value
    zh = lang == "zh_CN"
    if zh:
        date_text = f"{day.year}年{day.month}月{day.day}日"
        short_text = f"{day.month}月{day.day}日"
        weekday = f"（周{WEEKDAYS_ZH[day.weekday()]}）"
    else:
        date_text = f"{day.day} {MONTHS_EN[day.month - 1]} {day.year}"
        short_text = f"{day.day} {MONTHS_EN[day.month - 1]}"
        weekday = f"{WEEKDAYS_EN[day.weekday()]} "
    if style == "date":
        return date_text
    if style == "monthday":
        return short_text
    if style == "day":
        return f"{date_text}{weekday}" if zh else f"{weekday}{date_text}"
    if moment is None:
        return date_text
    clock = moment.strftime("%H:%M")
    if style == "time":
        return clock
    if style == "seconds":
        return moment.strftime("%H:%M:%S")
    if style == "full":
        seconds = moment.strftime("%H:%M:%S")
        return f"{date_text} {seconds}" if zh else f"{date_text}, {seconds}"
    if style == "short":
        return f"{short_text} {clock}" if zh else f"{short_text}, {clock}"
    return f"{date_text} {clock}" if zh else f"{date_text}, {clock}"


def audit_details(detail: Mapping[str, Any] | None, lang: str, tz: dt.tzinfo = DEFAULT_TZ) -> str:
    """An audit entry's details as words, `from 2026年11月6日 · to 2026年12月3日`, not as JSON: names from the
    table, codes as their words, dates and times in the alliance's zone."""
    parts = []
    for key, value in (detail or {}).items():
        name = label(key, "audit_detail")
        if key in DETAIL_KINDS:
            text = label(value, DETAIL_KINDS[key])
        elif isinstance(value, str) and len(value) >= 10 and value[:4].isdigit() and value[4:5] == "-":
            text = format_local(value, lang, tz, "date" if len(value) == 10 else "datetime")
        else:
            text = str(value)
        parts.append(f"{name} {text}")
    return " · ".join(parts)


def format_week(code: str) -> str:
    """An ISO week as people say it: `2026-W49` as `2026年第49周` / `Week 49, 2026`."""
    year, _, week = str(code).partition("-W")
    if not (year.isdigit() and week.isdigit()):
        return str(code)
    return gettext("Week %(week)s, %(year)s") % {"week": int(week), "year": year}


def format_duration(seconds: float | None) -> str:
    """Seconds in words, never a bare `s` or `min`: `45 秒`, `2.5 分钟`, `1 小时 5 分钟` / `45 seconds`,
    `2.5 minutes`, `1 hour 5 minutes`."""
    if seconds is None:
        return "—"
    if seconds < 120:
        n = round(seconds)
        return ngettext("%(n)s second", "%(n)s seconds", n) % {"n": n}
    if seconds < 3600:
        text = f"{seconds / 60:.1f}".removesuffix(".0")
        return ngettext("%(n)s minute", "%(n)s minutes", 1 if text == "1" else 2) % {"n": text}
    hours, rest = divmod(int(seconds), 3600)
    text = ngettext("%(n)s hour", "%(n)s hours", hours) % {"n": hours}
    if rest // 60:
        text += " " + ngettext("%(n)s minute", "%(n)s minutes", rest // 60) % {"n": rest // 60}
    return text


def unit(symbol: str) -> str:
    """A measurement unit in the page's language."""
    return gettext({"ms": N_("ms"), "%": "%", "kbit/s": N_("kbit/s"), "s": N_("seconds"), "min": N_("minutes")}
                   .get(symbol, symbol))


def event_sentence(kind: str, data: Mapping[str, Any] | None, side: str, session: int | None = None) -> str:
    """One event of the timeline as a sentence in the page's language."""
    data = data or {}
    message = EVENT_SENTENCES.get(kind)
    if kind == "sdp_offer" and data.get("ice_restart"):
        message = N_("%(who)s restarted the connection")
    if message is None:
        if kind in LABELS["state"]:
            return gettext("State: %(state)s") % {"state": label(kind, "state")}
        return gettext("Other event")
    level = data.get("level")
    if isinstance(level, int) and 0 <= level < len(VIDEO_LEVELS):
        level = list(VIDEO_LEVELS)[level]
    level_text = gettext(VIDEO_LEVELS[level]) if isinstance(level, str) and level in VIDEO_LEVELS else "—"
    specialists = data.get("specialists")
    reason = data.get("reason")
    values = {
        "who": gettext(WHO.get(side, WHO[""])),
        "count": len(specialists) if isinstance(specialists, list) else 1,
        "reason": label(reason, "decline") if kind == "declined" else label(reason, "end_reason"),
        "state": label(data.get("state"), "ice_state"),
        "level": level_text,
        "session": session if session is not None else "",
    }
    return gettext(message) % values


class Renderer:
    """Renders templates in a given language; one jinja2 environment for the whole app."""

    def __init__(self, templates_dir: Path, translations_dir: Path, tz: dt.tzinfo = DEFAULT_TZ) -> None:
        self.translations = load_translations(translations_dir)
        self.tz = tz
        self.diagnoses: DiagnosisNames | None = None
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates_dir)),
            autoescape=jinja2.select_autoescape(["html", "xml"]),
            extensions=["jinja2.ext.i18n"],
            enable_async=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
        self.env.filters.update(localtime=self._localtime, label=label, duration=format_duration, unit=unit,
                                week=format_week, details=self._details,
                                diagnosis=self._diagnosis)
        self.env.globals.update(event_sentence=event_sentence)

    @jinja2.pass_context
    def _localtime(self, context: jinja2.runtime.Context, value: Any, style: str = "datetime") -> str:
        return format_local(value, str(context.get("lang", "zh_CN")), self.tz, style)

    @jinja2.pass_context
    def _details(self, context: jinja2.runtime.Context, detail: Mapping[str, Any] | None) -> str:
        return audit_details(detail, str(context.get("lang", "zh_CN")), self.tz)

    @jinja2.pass_context
    def _diagnosis(self, context: jinja2.runtime.Context, code: str, stored: str = "") -> str:
        """A diagnosis code's name in the page's language (the name kept in the note when the index has none)."""
        index = self.diagnoses.index if self.diagnoses else None
        name = index.name(code, str(context.get("lang", "zh_CN"))) if index else None
        return name or stored or code

    def translate(self, language: str, message: str) -> str:
        return self.translations.get(language, NullTranslations()).gettext(message)

    def render(self, template: str, language: str, context: Mapping[str, Any]) -> str:
        token = _current.set(self.translations.get(language, NullTranslations()))
        try:
            # The pages' scripts format times in the same zone as the server (web/static/js/when.js).
            zone = getattr(self.tz, "key", None) or str(self.tz)
            return self.env.get_template(template).render(**context, lang=language, timezone_name=zone)
        finally:
            _current.reset(token)


class DiagnosisNames:
    """The diagnosis index as the server holds it: None while it loads at start, then ready. `gate`, when
    given, holds the build until it is set (a test uses it to see the loading state); a search waits up to
    `wait_s` for the index before it answers that it is loading."""

    def __init__(self, dirs: Iterable[Path], gate: threading.Event | None = None, wait_s: float = 10.0) -> None:
        self.dirs = list(dirs)
        self.gate = gate
        self.wait_s = wait_s
        self.index: DiagnosisIndex | None = None
        self.ready = asyncio.Event()

    def _build(self) -> DiagnosisIndex:
        if self.gate is not None:
            self.gate.wait()
        try:
            # In a process of its own: the build is pure Python for seconds, and in a thread it would hold
            # the interpreter lock against the event loop (rings, signaling and timers would stall meanwhile).
            # A start after the first reads the index kept by the first.
            kept = cached_index(self.dirs)
            if kept is not None:
                return kept
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                return pool.submit(build_and_keep_index, self.dirs).result()
        except Exception:
            # A damaged download must not leave the search loading for ever: English names still work.
            log.exception("the Chinese ICD-10 names could not be read; diagnosis search is in English only")
            return build_index([])

    async def load(self) -> None:
        try:
            self.index = await asyncio.to_thread(self._build)
        finally:
            self.ready.set()
        if not self.index.has_chinese:
            log.warning("diagnosis search: English names only (Chinese names not installed)")


DIAGNOSES: web.AppKey[DiagnosisNames] = web.AppKey("diagnoses", DiagnosisNames)


async def i18n_ctx(app: web.Application) -> AsyncIterator[None]:
    """The language layer's start: pages in the alliance's time zone, and the diagnosis index built in the
    background so the server answers at once and the first search does not wait for it."""
    settings = app[keys.SETTINGS]
    renderer = app[keys.RENDERER]
    renderer.tz = settings.slots.tz
    names = app[DIAGNOSES] if DIAGNOSES in app else DiagnosisNames(default_data_dirs(settings.data_dir))
    if DIAGNOSES not in app:
        app[DIAGNOSES] = names
    renderer.diagnoses = names
    task = asyncio.create_task(names.load(), name="diagnosis-index")
    try:
        yield
    finally:
        if names.gate is not None:
            names.gate.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
