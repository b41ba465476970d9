"""Every message the server can send a user has its Simplified Chinese translation, and is a template (named
values filled after translation), never a string built before it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from babel.messages.pofile import read_po

from telehealth.server.i18n import web_dir

PACKAGE = Path(__file__).resolve().parents[1] / "telehealth"
# Calls whose message argument reaches a user: (callable name, index of the message argument).
MESSAGE_CALLS = {"TelehealthError": 1, "InputError": 1, "StoreUnavailable": 0, "require": 1,
                 "require_assigned_specialist": 2, "_refuse": 1, "refuse": 2}


def catalog() -> dict[str, str]:
    with (web_dir() / "translations" / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return {m.id: m.string for m in read_po(fh, locale="zh_CN") if isinstance(m.id, str) and m.id}


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def server_messages() -> Iterator[tuple[str, int, ast.expr]]:
    """(file, line, message expression) of every message passed to an error or a rule check."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            index = MESSAGE_CALLS.get(_name(node.func))
            if index is None:
                continue
            if index < len(node.args):
                yield str(path.relative_to(PACKAGE)), node.lineno, node.args[index]
            for kw in node.keywords:
                if kw.arg == "message":
                    yield str(path.relative_to(PACKAGE)), node.lineno, kw.value


def test_the_scan_finds_the_messages() -> None:
    literal = [m for _, _, m in server_messages() if isinstance(m, ast.Constant)]
    assert len(literal) > 100


def test_no_message_is_built_before_translation() -> None:
    """A message made with an f-string or `%` cannot be found in the catalog: name the values instead."""
    built = [f"{f}:{line}" for f, line, m in server_messages()
             if isinstance(m, ast.JoinedStr | ast.BinOp) or (isinstance(m, ast.Call) and _name(m.func) == "format")]
    assert built == []


def test_every_server_message_has_its_chinese() -> None:
    translations = catalog()
    missing = sorted({m.value for _, _, m in server_messages()
                      if isinstance(m, ast.Constant) and isinstance(m.value, str) and not translations.get(m.value)})
    assert missing == []


def test_messages_beside_form_fields_have_their_chinese() -> None:
    from telehealth.schema import _NEXT_TO_FIELD
    from telehealth.server.consult_pages import CONSENT_MISSING, CONSENT_UNREADABLE

    translations = catalog()
    wanted = set(_NEXT_TO_FIELD.values()) | {CONSENT_MISSING, CONSENT_UNREADABLE}
    assert sorted(m for m in wanted if not translations.get(m)) == []


def test_messages_for_a_missing_record_have_their_chinese() -> None:
    from telehealth.server.api import NO_SUCH

    translations = catalog()
    assert sorted(m for m in [*NO_SUCH.values(), "no such record"] if not translations.get(m)) == []
