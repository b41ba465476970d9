"""Two languages (zh_CN, en): Babel catalogs compiled at start, jinja2 rendering in the request's language."""

from __future__ import annotations

import contextvars
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LANGUAGES = ("zh_CN", "en")
LANGUAGE_COOKIE = "th_lang"

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


class Renderer:
    """Renders templates in a given language; one jinja2 environment for the whole app."""

    def __init__(self, templates_dir: Path, translations_dir: Path) -> None:
        self.translations = load_translations(translations_dir)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates_dir)),
            autoescape=jinja2.select_autoescape(["html", "xml"]),
            extensions=["jinja2.ext.i18n"],
            enable_async=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]

    def translate(self, language: str, message: str) -> str:
        return self.translations.get(language, NullTranslations()).gettext(message)

    def render(self, template: str, language: str, context: Mapping[str, Any]) -> str:
        token = _current.set(self.translations.get(language, NullTranslations()))
        try:
            return self.env.get_template(template).render(**context, lang=language)
        finally:
            _current.reset(token)
