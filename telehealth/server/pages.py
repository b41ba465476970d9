"""Server-rendered pages: login, logout, language, and each role's home."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import Any

from aiohttp import web

from telehealth.domain import Role
from telehealth.errors import ErrorCode, TelehealthError, fill
from telehealth.server import keys
from telehealth.server.auth import (
    CSRF_FIELD,
    actor_of,
    check_csrf,
    client_address,
    end_session,
    home_path,
    optional_user,
    page,
    public,
    start_session,
)
from telehealth.server.i18n import LANGUAGE_COOKIE, LANGUAGES, pick_language
from telehealth.server.redirects import local_path
from telehealth.services.accounts import Credentials

PRE_SESSION_COOKIE = "th_pre"


def render(request: web.Request, template: str, context: dict[str, Any] | None = None,
           status: int = 200) -> web.Response:
    app = request.app
    user = optional_user(request)
    lang = pick_language(request, user.language if user else None, app[keys.SETTINGS].default_language)
    ctx = {"user": user, "csrf": request.get(keys.CSRF, ""), "request_path": request.path, **(context or {})}
    html = app[keys.RENDERER].render(template, lang, ctx)
    return web.Response(text=html, status=status, content_type="text/html")


def translator(request: web.Request) -> Callable[[str], str]:
    """Translate a message into the language the page is shown in."""
    user = optional_user(request)
    lang = pick_language(request, user.language if user else None, request.app[keys.SETTINGS].default_language)
    renderer = request.app[keys.RENDERER]
    return lambda text: renderer.translate(lang, text)


def see_other(location: str) -> web.Response:
    """A redirect that can carry cookies (raising HTTPSeeOther would drop them), only ever to this site."""
    return web.Response(status=303, headers={"Location": local_path(location) or "/"})


@public
async def handle_index(request: web.Request) -> web.StreamResponse:
    user = optional_user(request)
    raise web.HTTPSeeOther(home_path(user) if user else "/login")


def _login_page(request: web.Request, error: str | None = None, status: int = 200,
                username: str = "", **params: object) -> web.Response:
    pre = request.cookies.get(PRE_SESSION_COOKIE) or secrets.token_urlsafe(24)
    response = render(request, "login.html", {
        "error": fill(translator(request)(error), params) if error else None, "pre_token": pre, "username": username,
        "next": local_path(request.query.get("next")) or "",
        "demo": request.app[keys.SETTINGS].demo}, status=status)
    response.set_cookie(PRE_SESSION_COOKIE, pre, httponly=True, samesite="Lax", path="/login",
                        secure=request.app[keys.SETTINGS].cookie_secure)
    return response


def _refused(request: web.Request, error: TelehealthError, username: str) -> web.Response:
    """A sign-in step refused: past the login limits, the seconds to wait (and Retry-After); otherwise the one
    answer for every other reason."""
    if error.code is ErrorCode.login_rate_limited:
        response = _login_page(request, "Too many attempts: wait {seconds} s and try again.", status=429,
                               username=username, seconds=error.params["seconds"])
        response.headers["Retry-After"] = str(error.params["seconds"])
        return response
    return _login_page(request, "Wrong username or password.", status=401, username=username)


@public
async def handle_login_form(request: web.Request) -> web.StreamResponse:
    if optional_user(request):
        raise web.HTTPSeeOther(home_path(optional_user(request)))  # type: ignore[arg-type]
    return _login_page(request)


@public
async def handle_login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    username = str(form.get("username", "")).strip()[:80]
    password = str(form.get("password", ""))[:1024]
    pre_cookie = request.cookies.get(PRE_SESSION_COOKIE, "")
    pre_form = str(form.get(CSRF_FIELD, ""))
    if not pre_cookie or not hmac.compare_digest(pre_cookie, pre_form):
        return _login_page(request, "The form has expired. Please try again.", status=403, username=username)
    try:
        signed = await request.app[keys.SERVICES].accounts.check_password(
            Credentials(username, password), client_address(request))
    except TelehealthError as exc:
        return _refused(request, exc, username)
    user = signed.user
    if signed.step != "done":
        from telehealth.server.second_factor_pages import next_step_redirect

        return next_step_redirect(request, user, signed.step, local_path(str(form.get("next", ""))) or "")
    target = local_path(str(form.get("next", ""))) or home_path(user)
    response = see_other(target)
    await start_session(request, response, user)
    response.del_cookie(PRE_SESSION_COOKIE, path="/login")
    return response


@page(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_logout(request: web.Request) -> web.StreamResponse:
    response = see_other("/login")
    await end_session(request, response)
    return response


@public
async def handle_language(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    lang = str(form.get("language", ""))
    if lang not in LANGUAGES:
        lang = request.app[keys.SETTINGS].default_language
    user = optional_user(request)
    if user is not None:
        # Changing one's own language is harmless, but a cookie-authenticated write still needs the token.
        check_csrf(request, str(form.get(CSRF_FIELD, "")))
        await request.app[keys.SERVICES].accounts.set_language(actor_of(request), lang)
    target = local_path(str(form.get("next", ""))) or "/"
    response = see_other(target)
    response.set_cookie(LANGUAGE_COOKIE, lang, samesite="Lax", path="/", max_age=365 * 86400)
    return response


@page(Role.clinic_doctor)
async def handle_clinic_home(request: web.Request) -> web.StreamResponse:
    home = await request.app[keys.SERVICES].consultations.clinic_home(actor_of(request))
    return await _role_home(request, "clinic/home.html", consultations=home.recent, to_decide=home.to_decide,
                            referrals=home.referrals)


@page(Role.specialist)
async def handle_specialist_home(request: web.Request) -> web.StreamResponse:
    services, actor = request.app[keys.SERVICES], actor_of(request)
    home = await services.consultations.specialist_home(actor)
    return await _role_home(request, "specialist/home.html", active=home.recent, referrals=home.referrals,
                            received=home.received, orgs=await services.organisations.by_id(actor))


@page(Role.admin)
async def handle_admin_home(request: web.Request) -> web.StreamResponse:
    return await _role_home(request, "admin/home.html")


async def _role_home(request: web.Request, template: str, **context: Any) -> web.StreamResponse:
    org = await request.app[keys.SERVICES].organisations.own(actor_of(request))
    return render(request, template, {"organisation": org, **context})
