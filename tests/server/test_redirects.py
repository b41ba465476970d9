"""`next` after login and after a language change leads only to a path on this site, however it is written."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from telehealth.records.seed import DEMO_PASSWORD
from telehealth.server.redirects import local_path
from tests.conftest import csrf_from

ELSEWHERE = ["//evil.example/x", "/\\evil.example", "\\\\evil.example", "/\t/evil.example", "/\n/evil.example",
             "/\r/evil.example", " //evil.example", "https://evil.example/",
             "HTTPS:evil.example", "javascript:alert(1)", "data:text/html,hi", "/%2F%2Fevil.example",
             "/%2f/evil.example", "/%5Cevil.example", "%2F%2Fevil.example", "/%09/evil.example",
             "/%252F%252Fevil.example", "/%25252F%25252F%25252Fevil.example", "evil.example", "/x\x85y"]
HERE = ["/clinic/consultations/5?tab=notes", "/admin/consultations?from=2026-11-01&clinic=3", "/admin#people",
        "/clinic?q=a%2Fb"]


async def log_in_with_next(client: TestClient, target: str) -> str:  # type: ignore[type-arg]
    """Where the login form sends village1 when it was opened with `?next=target` and posts it back."""
    client.session.cookie_jar.clear()
    form_page = await client.get("/login", params={"next": target})
    assert form_page.status == 200
    html = await form_page.text()
    kept = re.search(r'action="/login".*?name="next" value="([^"]*)"', html, re.S)
    assert kept is not None
    resp = await client.post("/login", data={"username": "village1", "password": DEMO_PASSWORD,
                                             "csrf_token": csrf_from(html), "next": target}, allow_redirects=False)
    assert resp.status == 303
    return f"{kept.group(1)} -> {resp.headers['Location']}"


async def test_login_and_language_never_send_anyone_elsewhere(client: TestClient) -> None:  # type: ignore[type-arg]
    landed = {target: await log_in_with_next(client, target) for target in ELSEWHERE}
    assert landed == {target: " -> /clinic" for target in ELSEWHERE}
    client.session.cookie_jar.clear()
    after_language = {}
    for target in ELSEWHERE:
        resp = await client.post("/language", data={"language": "en", "next": target}, allow_redirects=False)
        after_language[target] = (resp.status, resp.headers.get("Location"))
    assert after_language == {target: (303, "/") for target in ELSEWHERE}
    # A NUL is refused with the rest of the request, before any redirect is considered.
    assert (await client.get("/login", params={"next": "/\0/evil.example"})).status == 400
    resp = await client.post("/language", data={"language": "en", "next": "/\0/evil.example"},
                             allow_redirects=False)
    assert resp.status == 400


async def test_a_path_on_this_site_is_kept(client: TestClient) -> None:  # type: ignore[type-arg]
    landed = {target: await log_in_with_next(client, target) for target in HERE}
    assert landed == {target: f"{target.replace('&', '&amp;')} -> {target}" for target in HERE}


def test_every_decoding_is_judged() -> None:
    assert [local_path(t) for t in [*ELSEWHERE, "/\0/evil.example"]] == [None] * (len(ELSEWHERE) + 1)
    assert [local_path(t) for t in HERE] == HERE
    assert local_path("/" + "a" * 3000) is None and local_path(None) is None and local_path("") is None
