"""Every text the pages show has its Simplified Chinese translation."""


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
    messages: set[str] = set()
    # The forms' messages beside each field come from the input schemas; the service operations' own
    # rules are checked with every other server message.
    from telehealth.schema import _NEXT_TO_FIELD

    messages |= set(_NEXT_TO_FIELD.values())
    from telehealth.server.consult_pages import CONSENT_MISSING, CONSENT_UNREADABLE

    messages |= {CONSENT_MISSING, CONSENT_UNREADABLE}
    translations = catalog()
    assert sorted(m for m in messages if not translations.get(m)) == []
