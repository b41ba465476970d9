"""Diagnosis search in Chinese and English: loading state at start, pinyin, the searcher's own and department's
codes first, and the report naming each diagnosis in the page's language."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from telehealth.records import icd10
from telehealth.server.app import create_app
from telehealth.server.i18n import DIAGNOSES, DiagnosisNames
from tests.conftest import make_settings
from tests.records.test_notes import DRAFT, accepted_consultation, api
from tests.support.wsclient import Node, serve


@pytest.fixture(scope="session")
def chinese_names() -> Path:
    """The GNU Health wheel in the user's cache, fetched once (the README's set-up step)."""
    folder = icd10.default_data_dirs("data")[1]
    return icd10.fetch(folder)


@pytest.fixture
async def node(tmp_path: Path, chinese_names: Path) -> AsyncIterator[Node]:
    async with serve(make_settings(tmp_path)) as n:
        await n.server.app[DIAGNOSES].ready.wait()  # type: ignore[union-attr]
        yield n


async def search(node: Node, query: str, user: str = "neuro.chief", lang: str = "zh-CN") -> tuple[int, Any]:
    token = await node.token(user)
    async with node.http.get(node.url("/api/icd10"), params={"q": query},
                             headers={"Authorization": f"Bearer {token}", "Accept-Language": lang}) as resp:
        return resp.status, await resp.json()


def codes(body: Any) -> list[str]:
    return [r["code"] for r in body["results"]]


async def test_search_says_it_is_loading_until_the_index_is_built(tmp_path: Path, chinese_names: Path) -> None:
    app = create_app(make_settings(tmp_path))
    gate = threading.Event()
    names = DiagnosisNames([chinese_names.parent], gate=gate, wait_s=0)
    app[DIAGNOSES] = names
    async with serve_app(app) as node:
        status, body = await search(node, "心绞痛")
        assert status == 503 and body["error"]["code"] == "busy" and body["error"]["retry_after_s"] > 0
        assert "加载" in body["error"]["message"]
        gate.set()
        await names.ready.wait()
        status, body = await search(node, "心绞痛")
        assert status == 200 and body["chinese"] is True
        assert codes(body)[:5] == ["I20", "I20.0", "I20.1", "I20.8", "I20.9"]


async def test_chinese_words_and_pinyin_initials_find_the_category_and_its_children(node: Node) -> None:
    status, body = await search(node, "xjt")
    assert status == 200 and codes(body)[:5] == ["I20", "I20.0", "I20.1", "I20.8", "I20.9"]
    assert body["results"][0]["description"] == "心绞痛"
    status, body = await search(node, "脑梗死")
    assert codes(body)[0] == "I63" and all(c.startswith("I63") for c in codes(body)[:10])
    status, body = await search(node, "xinjiaotong")
    assert codes(body)[0] == "I20"
    status, body = await search(node, "angina", lang="en")
    assert codes(body)[0] == "I20" and body["results"][0]["description"] == "Angina pectoris"
    assert body["results"][0]["description_zh"] == "心绞痛"


async def test_bad_queries_get_a_clear_answer(node: Node) -> None:
    status, body = await search(node, "x")
    assert status == 400 and body["error"]["code"] == "invalid_input"
    status, body = await search(node, "%%%" * 40)
    assert status == 200 and body["results"] == []


async def test_own_recent_and_department_codes_come_first_and_the_report_speaks_the_page_language(
        node: Node) -> None:
    cid = await accepted_consultation(node)
    draft = {**DRAFT, "diagnoses": [{"code": "I20.0"}]}
    status, _ = await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief", draft)
    assert status == 200
    status, _ = await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    assert status == 200
    status, body = await search(node, "")
    assert status == 200 and body["results"][0] == {**body["results"][0], "code": "I20.0", "preferred": "recent"}
    status, body = await search(node, "", user="neuro.assoc")
    assert body["results"][0]["code"] == "I20.0" and body["results"][0]["preferred"] == "frequent"
    # A word that matches many codes puts the one this department uses first.
    status, body = await search(node, "心绞痛", user="neuro.assoc")
    assert codes(body)[0] == "I20.0"
    # Another department's specialist has no such preference.
    status, body = await search(node, "", user="cardio.chief")
    assert body["results"] == []
    token = await node.token("village6")
    for lang, name in (("zh-CN", "不稳定性心绞痛"), ("en", "Unstable angina")):
        async with node.http.get(node.url(f"/records/{cid}"), headers={
                "Authorization": f"Bearer {token}", "Accept-Language": lang}) as resp:
            assert resp.status == 200
            assert name in await resp.text()


async def test_without_the_chinese_names_the_search_is_english_and_says_so(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    names = DiagnosisNames([tmp_path / "nothing-here"])
    app[DIAGNOSES] = names
    async with serve_app(app) as node:
        await names.ready.wait()
        status, body = await search(node, "angina")
        assert status == 200 and body["chinese"] is False and "英文" in body["message"]
        assert body["results"][0]["description"] == "Angina pectoris"


def serve_app(app: Any) -> Any:
    """`serve` for an app built here (to hand it a diagnosis loader of the test's own)."""
    import contextlib

    from aiohttp.test_utils import TestServer

    @contextlib.asynccontextmanager
    async def run() -> AsyncIterator[Node]:
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        node = Node(server)
        try:
            yield node
        finally:
            await node.close()
            await server.close()

    return run()
