"""Errors reach the user in their language, with the values filled in after translation: the JSON error's
`message` and the HTML error page in the user's language (else the cookie's or the browser's), and the JSON
error's English beside it in `message_en`."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from telehealth.server.i18n import LANGUAGE_COOKIE
from tests.conftest import csrf_from, logged_in_csrf, login

# A body whose one fault is the patient's birth year: the error names the field and the limits.
BAD_YEAR = {"patient": {"name": "张三", "sex": "female", "birth_year": 1800}, "specialty": "cardiology",
            "urgency": "routine", "chief_complaint": "胸痛两天",
            "consent": {"by": "patient", "name": "张三", "signature": ""}}


async def _speaking(client: TestClient, language: str, username: str = "village1") -> str:  # type: ignore[type-arg]
    """Log in and choose `language` as the account's own; the CSRF token for the API."""
    assert (await login(client, username)).status == 303
    home = await client.get("/")
    resp = await client.post("/language", data={"language": language, "next": "/",
                                                "csrf_token": csrf_from(await home.text(), "/language")},
                             allow_redirects=False)
    assert resp.status == 303
    # The account's language comes before the cookie's: let the cookie say the other one.
    client.session.cookie_jar.update_cookies({LANGUAGE_COOKIE: "en" if language == "zh_CN" else "zh_CN"})
    return await logged_in_csrf(client)


async def _error(resp: Any) -> dict[str, Any]:
    body = await resp.json()
    return dict(body["error"])


async def test_a_chinese_users_errors_come_in_chinese_with_their_values(client: TestClient) -> None:  # type: ignore[type-arg]
    csrf = await _speaking(client, "zh_CN")
    # Even when the cookie and the browser ask for English: the account's own language comes first.
    english_browser = {"Accept-Language": "en-GB,en;q=0.9"}

    resp = await client.get("/api/consultations/987654", headers=english_browser)
    assert resp.status == 404
    assert await _error(resp) == {"code": "not_found", "message": "会诊 987654 不存在",
                                  "message_en": "consultation 987654 does not exist"}

    resp = await client.post("/api/consultations", json=BAD_YEAR, headers={"X-CSRF-Token": csrf, **english_browser})
    assert resp.status == 400
    error = await _error(resp)
    assert error["message"] == "`patient.birth_year` 必须在 1900 至 2100 之间"
    assert error["message_en"] == "`patient.birth_year` must be between 1900 and 2100"

    page = await client.get("/clinic/consultations/987654", headers=english_browser)
    assert page.status == 404 and page.content_type == "text/html"
    html = await page.text()
    assert "会诊 987654 不存在" in html and "consultation 987654" not in html


async def test_an_english_users_errors_come_in_english(client: TestClient) -> None:  # type: ignore[type-arg]
    csrf = await _speaking(client, "en")
    chinese_browser = {"Accept-Language": "zh-CN,zh;q=0.9"}

    resp = await client.get("/api/consultations/987654", headers=chinese_browser)
    assert await _error(resp) == {"code": "not_found", "message": "consultation 987654 does not exist",
                                  "message_en": "consultation 987654 does not exist"}

    resp = await client.post("/api/consultations", json=BAD_YEAR, headers={"X-CSRF-Token": csrf, **chinese_browser})
    error = await _error(resp)
    assert error["message"] == error["message_en"] == "`patient.birth_year` must be between 1900 and 2100"

    page = await client.get("/clinic/consultations/987654", headers=chinese_browser)
    assert page.status == 404
    html = await page.text()
    assert "consultation 987654 does not exist" in html and "会诊 987654" not in html


async def test_without_an_account_the_browsers_language_decides(client: TestClient) -> None:  # type: ignore[type-arg]
    zh = await client.get("/api/no-such-thing", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert zh.status == 404
    assert await _error(zh) == {"code": "not_found", "message": "此地址不存在",
                                "message_en": "this address does not exist"}
    en = await client.get("/api/no-such-thing", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert (await _error(en))["message"] == "this address does not exist"

    wrong = await client.delete("/api/me", headers={"Accept-Language": "zh-CN"})
    assert await _error(wrong) == {"code": "invalid_input", "message": "此地址不接受 DELETE 请求",
                                   "message_en": "this address does not take DELETE requests"}

    # Before anyone logs in, the token call's refusal speaks the browser's language too.
    refused = await client.post("/api/tokens", json={"username": "village1"}, headers={"Accept-Language": "zh-CN"})
    assert refused.status == 400
    assert await _error(refused) == {"code": "invalid_input", "message": "`username` 和 `password` 为必填的字符串",
                                     "message_en": "`username` and `password` are required strings"}
