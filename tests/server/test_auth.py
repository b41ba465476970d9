"""Accounts and access: login, rate limit, CSRF, session cookie, role checks on every page, security headers."""

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from telehealth.server.app import create_app
from tests.conftest import csrf_from, logged_in_csrf, login, make_settings

HOMES = {"village1": "/clinic", "cardio.chief": "/specialist", "admin": "/admin"}
ROLE_PAGES = ["/clinic", "/specialist", "/admin"]


@pytest.mark.parametrize(("username", "home"), sorted(HOMES.items()))
async def test_each_role_logs_in_and_lands_on_its_home(client: TestClient, username: str, home: str) -> None:
    resp = await login(client, username)
    assert resp.status == 303 and resp.headers["Location"] == home
    cookie = resp.cookies["th_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    page = await client.get(home)
    assert page.status == 200
    assert "<h1>" in await page.text()


@pytest.mark.parametrize(("username", "home"), sorted(HOMES.items()))
async def test_each_role_is_refused_on_other_roles_pages(client: TestClient, username: str, home: str) -> None:
    await login(client, username)
    for path in ROLE_PAGES:
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == (200 if path == home else 403), path


async def test_pages_send_anonymous_visitors_to_login_and_api_answers_401(client: TestClient) -> None:
    resp = await client.get("/clinic", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=")
    resp = await client.get("/api/me")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "auth_required"


async def test_wrong_password_is_refused(client: TestClient) -> None:
    resp = await login(client, "village1", "not-the-password")
    assert resp.status == 401
    assert "th_session" not in resp.cookies
    assert "Wrong username or password" in await resp.text() or "用户名或密码错误" in await resp.text()


async def test_login_attempts_are_rate_limited(client: TestClient) -> None:
    for _ in range(5):
        assert (await login(client, "village2", "wrong-password")).status == 401
    # Even the right password is refused while the account is locked.
    resp = await login(client, "village2")
    assert resp.status == 429


async def test_login_form_without_its_token_is_refused(client: TestClient) -> None:
    resp = await client.post("/login", data={"username": "village1", "password": "demo-pass-2026",
                                             "csrf_token": "forged"}, allow_redirects=False)
    assert resp.status == 403


async def test_forms_with_a_forged_csrf_token_are_refused(client: TestClient) -> None:
    await login(client, "village1")
    resp = await client.post("/logout", data={"csrf_token": "forged"}, allow_redirects=False)
    assert resp.status == 403
    assert (await client.get("/clinic")).status == 200  # still logged in: nothing changed
    resp = await client.post("/api/consultations", json={}, headers={"X-CSRF-Token": "forged"})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "csrf_failed"
    token = await logged_in_csrf(client)
    resp = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303
    assert (await client.get("/clinic", allow_redirects=False)).status == 303


async def test_security_headers_on_pages(client: TestClient) -> None:
    resp = await client.get("/login")
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"


async def test_pages_in_both_languages(client: TestClient) -> None:
    zh = await client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "登录" in await zh.text()
    en = await client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Log in" in await en.text()
    page = await client.get("/login")
    resp = await client.post("/language", data={"language": "en", "next": "/login",
                                                "csrf_token": csrf_from(await page.text(), "/language")})
    assert "Log in" in await resp.text()


async def test_a_handler_without_access_declaration_is_refused(aiohttp_client: Any, tmp_path: Path) -> None:
    from aiohttp import web

    app = create_app(make_settings(tmp_path))

    async def undeclared(request: web.Request) -> web.Response:
        return web.Response(text="should never be seen")

    app.router.add_get("/undeclared", undeclared)
    client = await aiohttp_client(app)
    await login(client, "admin")
    resp = await client.get("/undeclared")
    assert resp.status == 403 and "should never be seen" not in await resp.text()


async def test_unknown_page_is_a_friendly_404(client: TestClient) -> None:
    resp = await client.get("/no/such/page")
    assert resp.status == 404
    assert "not_found" in await resp.text()
