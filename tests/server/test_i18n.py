"""Every text the pages show has its Simplified Chinese translation."""

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from telehealth.server.i18n import web_dir

WEB = web_dir()


def catalog() -> dict[str, str]:
    with (WEB / "translations" / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return {m.id: m.string for m in read_po(fh, locale="zh_CN") if m.id}


def test_every_template_string_is_translated() -> None:
    found = {msg for _, _, msg, _, _ in extract_from_dir(
        str(WEB / "templates"), method_map=[("**.html", "jinja2")],
        options_map={"**.html": {"extensions": "jinja2.ext.i18n"}}) if isinstance(msg, str)}
    assert len(found) > 100
    translations = catalog()
    missing = sorted(m for m in found if not translations.get(m))
    assert missing == []


def test_form_messages_are_translated() -> None:
    server = Path(__file__).resolve().parents[2] / "telehealth" / "server"
    messages: set[str] = set()
    for name in ("people_pages.py",):
        found = set(re.findall(r'errors\[[^\]]+\] = "([^"]+)"', (server / name).read_text()))
        assert len(found) >= 10, name
        messages |= found
    # The request form's messages beside each field come from the input schema.
    from telehealth.schema import _NEXT_TO_FIELD

    messages |= set(_NEXT_TO_FIELD.values())
    from telehealth.server.consult_pages import CONSENT_MISSING, CONSENT_UNREADABLE

    messages |= {CONSENT_MISSING, CONSENT_UNREADABLE}
    translations = catalog()
    assert sorted(m for m in messages if not translations.get(m)) == []
