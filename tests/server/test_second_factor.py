"""The second factor through the real server, with pyotp computing the codes an authenticator app would show:
enrolment at sign-in (the QR code and the key), the code step, recovery codes, the login limits on the code,
the API token, an administrator's reset, and the audit of each."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from telehealth.config import load_settings
from telehealth.media.client import TelehealthClient
from telehealth.records import schema as t
from telehealth.records.db import create_engine, migrate
from telehealth.records.seed import DEMO_PASSWORD
from telehealth.second_factor import provisioning_uri
from telehealth.server import keys
from telehealth.server.app import create_app
from telehealth.server.second_factor_pages import qr_svg
from telehealth.services.second_factors import ISSUER
from tests.conftest import csrf_from, logged_in_csrf, make_settings


class Clock:
    """The server's clock, moved by the test: a new TOTP step without waiting 30 s."""

    def __init__(self) -> None:
        # The start of a step, so that moving 30 s is exactly the next step.
        self.now = float(int(time.time()) // 30 * 30)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def world(aiohttp_client: Any, tmp_path: Path, database_url: str) -> tuple[TestClient, Clock]:  # type: ignore[type-arg]
    # On SQLite, and on PostgreSQL when it is configured (migrated first: only the embedded database migrates
    # itself at start).
    if database_url.startswith("postgresql"):
        engine = create_engine(database_url)
        await migrate(engine)
        await engine.dispose()
    settings = make_settings(tmp_path, database_url=database_url, security={"second_factor_roles": ["admin"]})
    client = await aiohttp_client(create_app(settings))
    clock = Clock()
    client.app[keys.SERVICES].clock = clock  # type: ignore[index]
    return client, clock


async def password_step(client: TestClient, username: str, password: str = DEMO_PASSWORD) -> Any:  # type: ignore[type-arg]
    client.session.cookie_jar.clear()
    page = await client.get("/login")
    return await client.post("/login", data={"username": username, "password": password,
                                             "csrf_token": csrf_from(await page.text())}, allow_redirects=False)


async def post_code(client: TestClient, path: str, code: str) -> Any:  # type: ignore[type-arg]
    page = await client.get(path, allow_redirects=False)
    assert page.status == 200, await page.text()
    return await client.post(path, data={"code": code, "csrf_token": csrf_from(await page.text(), path)},
                             allow_redirects=False)


def secret_on(page: str) -> str:
    match = re.search(r'id="secret"[^>]*>([A-Z2-7 ]+)</p>', page)
    assert match, "no key on the enrolment page"
    return match.group(1).replace(" ", "")


def recovery_codes_on(page: str) -> list[str]:
    return re.findall(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>", page)


async def enrol(client: TestClient, clock: Clock, username: str) -> tuple[str, list[str]]:  # type: ignore[type-arg]
    resp = await password_step(client, username)
    assert resp.status == 303 and resp.headers["Location"] == "/login/enrol"
    page = await (await client.get("/login/enrol")).text()
    secret = secret_on(page)
    resp = await post_code(client, "/login/enrol", pyotp.TOTP(secret).at(clock.now))
    assert resp.status == 200
    return secret, recovery_codes_on(await resp.text())


async def audited(client: TestClient, action: str) -> list[tuple[str, Any]]:  # type: ignore[type-arg]
    a = t.audit_log
    async with client.app[keys.STORE].engine.connect() as conn:  # type: ignore[index]
        rows = await conn.execute(sa.select(a.c.target, a.c.detail).where(a.c.action == action).order_by(a.c.id))
        return [(r.target, r.detail) for r in rows]


def test_by_default_administrators_need_a_second_factor() -> None:
    assert load_settings(env={}).security.second_factor_roles == ("admin",)
    assert load_settings(profile="test", env={}).security.second_factor_roles == ()


async def test_an_administrator_sets_up_the_app_at_sign_in_then_signs_in_with_its_codes(
        world: tuple[TestClient, Clock]) -> None:  # type: ignore[type-arg]
    client, clock = world
    resp = await password_step(client, "admin")
    assert resp.status == 303 and resp.headers["Location"] == "/login/enrol"
    assert "th_session" not in resp.cookies
    # No session before the enrolment is confirmed.
    assert (await client.get("/admin", allow_redirects=False)).status == 303
    page = await (await client.get("/login/enrol")).text()
    assert "设置两步验证" in page
    secret = secret_on(page)
    assert len(secret) == 32
    # The QR code on the page is the otpauth:// address of this key for this account, drawn as inline SVG.
    uri = provisioning_uri(secret, "admin", ISSUER)
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri
    assert str(qr_svg(uri, "供身份验证器应用扫描的二维码")) in page
    # Reloading shows the same key (the one the phone may have scanned already).
    assert secret_on(await (await client.get("/login/enrol")).text()) == secret
    wrong = await post_code(client, "/login/enrol", "000000" if pyotp.TOTP(secret).at(clock.now) != "000000"
                            else "111111")
    assert wrong.status == 400 and "验证码不正确" in await wrong.text()
    resp = await post_code(client, "/login/enrol", pyotp.TOTP(secret).at(clock.now))
    assert resp.status == 200 and "th_session" in resp.cookies
    codes = recovery_codes_on(await resp.text())
    assert len(codes) == 10 and len(set(codes)) == 10
    assert (await client.get("/admin")).status == 200
    assert len(await audited(client, "second_factor.enrol")) == 1
    # They are stored as argon2 hashes only.
    async with client.app[keys.STORE].engine.connect() as conn:  # type: ignore[index]
        hashes = list((await conn.execute(sa.select(t.recovery_codes.c.code_hash))).scalars())
    assert len(hashes) == 10 and all(h.startswith("$argon2") for h in hashes)
    assert not any(c.replace("-", "") in h for c in codes for h in hashes)

    # The next sign-in asks for the code. The code of the step the enrolment used is spent.
    resp = await password_step(client, "admin")
    assert resp.status == 303 and resp.headers["Location"] == "/login/code"
    replay = await post_code(client, "/login/code", pyotp.TOTP(secret).at(clock.now))
    assert replay.status == 401 and "th_session" not in replay.cookies
    clock.advance(30)
    resp = await post_code(client, "/login/code", pyotp.TOTP(secret).at(clock.now))
    assert resp.status == 303 and resp.headers["Location"] == "/admin"
    assert (await client.get("/admin")).status == 200
    assert (await audited(client, "second_factor.use"))[-1] == ("user:1", {"method": "totp"})
    # That code, once used, opens nothing again.
    await password_step(client, "admin")
    assert (await post_code(client, "/login/code", pyotp.TOTP(secret).at(clock.now))).status == 401


async def test_a_recovery_code_signs_in_once(world: tuple[TestClient, Clock]) -> None:  # type: ignore[type-arg]
    client, clock = world
    _, codes = await enrol(client, clock, "admin")
    await password_step(client, "admin")
    resp = await post_code(client, "/login/code", codes[3].upper().replace("-", " "))
    assert resp.status == 303 and resp.headers["Location"] == "/admin"
    account = await (await client.get("/account")).text()
    assert re.search(r"剩余恢复码：</?\w*>?\s*<strong>9</strong>", account) or "<strong>9</strong>" in account
    await password_step(client, "admin")
    assert (await post_code(client, "/login/code", codes[3])).status == 401
    assert [d for _, d in await audited(client, "second_factor.use")] == [{"method": "recovery"}]
    assert len(await audited(client, "second_factor.failed")) == 1


async def test_wrong_codes_wait_like_wrong_passwords_and_the_password_does_not_clear_them(
        world: tuple[TestClient, Clock]) -> None:  # type: ignore[type-arg]
    client, clock = world
    secret, _ = await enrol(client, clock, "admin")
    clock.advance(30)
    right = pyotp.TOTP(secret).at(clock.now)
    wrong = "000000" if right != "000000" else "111111"
    await password_step(client, "admin")
    for _ in range(5):
        assert (await post_code(client, "/login/code", wrong)).status == 401
    resp = await post_code(client, "/login/code", right)
    assert resp.status == 429 and resp.headers["Retry-After"] == "2"
    # Starting again with the right password does not clear the code's count.
    assert (await password_step(client, "admin")).headers["Location"] == "/login/code"
    assert (await post_code(client, "/login/code", right)).status == 429
    clock.advance(2)
    resp = await post_code(client, "/login/code", right)
    assert resp.status == 303 and resp.headers["Location"] == "/admin"


async def test_an_api_token_needs_the_code_of_an_account_that_has_one(
        world: tuple[TestClient, Clock]) -> None:  # type: ignore[type-arg]
    client, clock = world
    secret, _ = await enrol(client, clock, "admin")
    clock.advance(30)
    credentials = {"username": "admin", "password": DEMO_PASSWORD}
    resp = await client.post("/api/tokens", json=credentials)
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "second_factor_required"
    resp = await client.post("/api/tokens", json={**credentials, "code": "12345x"})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "auth_failed"
    resp = await client.post("/api/tokens", json={**credentials, "code": pyotp.TOTP(secret).at(clock.now)})
    assert resp.status == 201
    # The Python client passes the code along.
    clock.advance(30)
    python_client = await TelehealthClient.login(str(client.make_url("")).rstrip("/"), "admin", DEMO_PASSWORD,
                                                 code=pyotp.TOTP(secret).at(clock.now))
    try:
        assert python_client.user is not None and python_client.user["role"] == "admin"
    finally:
        await python_client.close()
    # An administrator without an app sets one up in the browser first; a clinic doctor needs none.
    resp = await client.post("/api/tokens", json={"username": "alliance.admin", "password": DEMO_PASSWORD})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "second_factor_enrolment_required"
    assert (await client.post("/api/tokens", json={"username": "village1", "password": DEMO_PASSWORD})).status == 201


async def test_an_administrator_resets_a_lost_second_factor(world: tuple[TestClient, Clock]) -> None:  # type: ignore[type-arg]
    client, clock = world
    await enrol(client, clock, "alliance.admin")
    await enrol(client, clock, "admin")
    users = t.users
    async with client.app[keys.STORE].engine.connect() as conn:  # type: ignore[index]
        uid = (await conn.execute(sa.select(users.c.id).where(users.c.username == "alliance.admin"))).scalar_one()
    page = await (await client.get(f"/admin/users/{uid}")).text()
    assert 'id="reset-second-factor"' in page
    resp = await client.post(f"/admin/users/{uid}/second-factor/reset",
                             data={"csrf_token": csrf_from(page, f"/admin/users/{uid}/second-factor/reset")},
                             allow_redirects=False)
    assert resp.status == 303
    assert await audited(client, "second_factor.reset") == [(f"user:{uid}", {"had_one": True})]
    # Their next sign-in sets it up again.
    assert (await password_step(client, "alliance.admin")).headers["Location"] == "/login/enrol"
    # An alliance's administrator may not reset the system administrator's.
    await enrol(client, clock, "alliance.admin")
    resp = await client.delete("/api/admin/users/1/second-factor", headers={"X-CSRF-Token": await logged_in_csrf(client)})
    assert resp.status == 404
    assert len(await audited(client, "second_factor.reset")) == 1


async def test_anyone_may_set_one_up_from_their_account_page(world: tuple[TestClient, Clock]) -> None:  # type: ignore[type-arg]
    client, clock = world
    resp = await password_step(client, "village1")
    assert resp.status == 303 and resp.headers["Location"] == "/clinic"
    account = await (await client.get("/account")).text()
    assert "未开启" in account and 'href="/account/second-factor"' in account
    page = await (await client.get("/account/second-factor")).text()
    secret = secret_on(page)
    resp = await post_code(client, "/account/second-factor", pyotp.TOTP(secret).at(clock.now))
    assert resp.status == 200 and len(recovery_codes_on(await resp.text())) == 10
    assert "已开启" in await (await client.get("/account")).text()
    # New recovery codes for a current code; the old ones stop working.
    clock.advance(30)
    account = await (await client.get("/account")).text()
    resp = await client.post("/account/second-factor/recovery-codes", data={
        "code": pyotp.TOTP(secret).at(clock.now),
        "csrf_token": csrf_from(account, "/account/second-factor/recovery-codes")}, allow_redirects=False)
    assert resp.status == 200
    fresh = recovery_codes_on(await resp.text())
    assert len(fresh) == 10
    assert len(await audited(client, "second_factor.recovery_codes")) == 1
    resp = await password_step(client, "village1")
    assert resp.headers["Location"] == "/login/code"
    assert (await post_code(client, "/login/code", fresh[0])).status == 303


async def test_the_code_step_needs_the_password_step_first(world: tuple[TestClient, Clock]) -> None:  # type: ignore[type-arg]
    client, clock = world
    await enrol(client, clock, "admin")
    client.session.cookie_jar.clear()
    resp = await client.get("/login/code", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    # A forged pending cookie is no sign-in either.
    client.session.cookie_jar.update_cookies({"th_second": "MS5jb2RlLjk5OTk5OTk5OTkuYWJjLmRlYWRiZWVm"})
    resp = await client.get("/login/code", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"


async def test_the_pages_in_english_and_at_phone_width(world: tuple[TestClient, Clock]) -> None:  # type: ignore[type-arg]
    client, _ = world
    await password_step(client, "admin")
    page = await client.get("/login/enrol", headers={"Accept-Language": "en"})
    text = await page.text()
    assert "Set up the second factor" in text and 'viewBox="0 0' in text
    # The QR code scales with the page (no fixed size): the stylesheet caps it at 240 px.
    assert not re.search(r'<svg[^>]*\bwidth=', text)
    assert html.escape("otpauth") not in text  # the address itself is not printed, only drawn


async def test_the_page_asked_for_is_reached_after_the_code_and_only_on_this_site(
        world: tuple[TestClient, Clock]) -> None:  # type: ignore[type-arg]
    client, clock = world
    secret, _ = await enrol(client, clock, "admin")
    for asked, reached in (("/admin/audit", "/admin/audit"), ("//evil.example/x", "/admin")):
        clock.advance(30)
        client.session.cookie_jar.clear()
        page = await client.get("/login")
        resp = await client.post("/login", data={"username": "admin", "password": DEMO_PASSWORD, "next": asked,
                                                 "csrf_token": csrf_from(await page.text())}, allow_redirects=False)
        step = resp.headers["Location"]
        assert step == ("/login/code?next=/admin/audit" if reached != "/admin" else "/login/code")
        resp = await post_code(client, step, pyotp.TOTP(secret).at(clock.now))
        assert resp.status == 303 and resp.headers["Location"] == reached


async def test_wrong_codes_at_enrolment_wait_too(world: tuple[TestClient, Clock]) -> None:  # type: ignore[type-arg]
    client, clock = world
    await password_step(client, "admin")
    secret = secret_on(await (await client.get("/login/enrol")).text())
    right = pyotp.TOTP(secret).at(clock.now)
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(5):
        assert (await post_code(client, "/login/enrol", wrong)).status == 400
    resp = await post_code(client, "/login/enrol", right)
    assert resp.status == 429 and resp.headers["Retry-After"] == "2"
    assert len(await audited(client, "second_factor.enrol_failed")) == 5
    clock.advance(2)
    assert (await post_code(client, "/login/enrol", right)).status == 200
