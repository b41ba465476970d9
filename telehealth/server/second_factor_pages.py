"""The second factor's pages: the code step of signing in, enrolling an authenticator app (at sign-in when the
role requires one, or from the account page), new recovery codes, and an administrator's reset; with JSON for
the reset."""

from __future__ import annotations

import hmac
from urllib.parse import quote

import segno
from aiohttp import web
from markupsafe import Markup

from telehealth.domain import Role
from telehealth.errors import ErrorCode, TelehealthError, fill
from telehealth.records.models import User
from telehealth.server import keys
from telehealth.server.api import path_id
from telehealth.server.auth import (
    CSRF_FIELD,
    actor_of,
    allow,
    client_address,
    current_user,
    home_path,
    page,
    public,
    start_session,
)
from telehealth.server.pages import PRE_SESSION_COOKIE, render, see_other, translator
from telehealth.server.redirects import local_path
from telehealth.services.context import Actor
from telehealth.services.second_factors import PENDING_TTL_S, Enrolment, Pending, Step

PENDING_COOKIE = "th_second"
EVERYONE = (Role.clinic_doctor, Role.specialist, Role.admin)
STEP_PATHS: dict[Step, str] = {"code": "/login/code", "enrol": "/login/enrol"}


def qr_svg(uri: str, title: str) -> Markup:
    """The otpauth:// address as an inline SVG QR code (no script, no request: it passes the page's CSP)."""
    svg = segno.make(uri, error="m").svg_inline(scale=4, border=4, omitsize=True, light="#fff", title=title,
                                               svgclass="qr-code")
    # segno's own markup: the modules drawn as paths, the title escaped by segno.
    return Markup(svg)


def set_pending(request: web.Request, response: web.StreamResponse, user: User, step: Step) -> None:
    token = request.app[keys.SERVICES].second_factors.pending_token(user, step)
    response.set_cookie(PENDING_COOKIE, token, httponly=True, samesite="Strict", path="/login",
                        secure=request.app[keys.SETTINGS].cookie_secure, max_age=PENDING_TTL_S)


def next_step_redirect(request: web.Request, user: User, step: Step, target: str) -> web.Response:
    """After the right password: on to the code or the enrolment, carrying the sign-in in a cookie."""
    response = see_other(STEP_PATHS[step] + (f"?next={quote(target, safe='/')}" if target else ""))
    set_pending(request, response, user, step)
    return response


async def _pending(request: web.Request, step: Step) -> Pending | web.Response:
    """The sign-in in progress, or where to go instead: back to the login page when there is none (or it ran
    out), or to the step that stands now."""
    token = request.cookies.get(PENDING_COOKIE, "")
    found = await request.app[keys.SERVICES].second_factors.pending(token) if token else None
    if found is None:
        response = see_other("/login")
        response.del_cookie(PENDING_COOKIE, path="/login")
        return response
    if found.step != step:
        return see_other(STEP_PATHS[found.step] + _next_query(request))
    return found


def _next_query(request: web.Request) -> str:
    target = local_path(request.query.get("next"))
    return f"?next={quote(target, safe='/')}" if target else ""


def _form_token_ok(request: web.Request, submitted: object) -> bool:
    """The login pages' own CSRF check (no session yet): the form echoes the pre-session cookie."""
    pre = request.cookies.get(PRE_SESSION_COOKIE, "")
    return bool(pre) and isinstance(submitted, str) and hmac.compare_digest(pre, submitted)


async def _signed_in(request: web.Request, user: User) -> web.Response:
    response = see_other(local_path(request.query.get("next")) or home_path(user))
    await start_session(request, response, user)
    response.del_cookie(PENDING_COOKIE, path="/login")
    response.del_cookie(PRE_SESSION_COOKIE, path="/login")
    return response


def _error_text(request: web.Request, error: TelehealthError) -> str:
    return fill(translator(request)(error.template), error.params)


def _retry_after(response: web.Response, error: TelehealthError) -> web.Response:
    """A step held by the login limits says when to come back, as the login page does."""
    if error.code is ErrorCode.login_rate_limited and "seconds" in error.params:
        response.headers["Retry-After"] = str(error.params["seconds"])
    return response


# -- the code step ----------------------------------------------------------------------------------------


def _code_page(request: web.Request, pending: Pending, error: str | None = None, status: int = 200) -> web.Response:
    return render(request, "login_code.html", {
        "error": error, "pre_token": request.cookies.get(PRE_SESSION_COOKIE, ""), "account": pending.user,
        "action": "/login/code" + _next_query(request)}, status=status)


@public
async def handle_code_form(request: web.Request) -> web.StreamResponse:
    found = await _pending(request, "code")
    return found if isinstance(found, web.Response) else _code_page(request, found)


@public
async def handle_code(request: web.Request) -> web.StreamResponse:
    found = await _pending(request, "code")
    if isinstance(found, web.Response):
        return found
    form = await request.post()
    if not _form_token_ok(request, form.get(CSRF_FIELD)):
        return _code_page(request, found, translator(request)("The form has expired. Please try again."), 403)
    code = str(form.get("code", ""))[:40]
    try:
        await request.app[keys.SERVICES].second_factors.verify(found.user, code, client_address(request))
    except TelehealthError as exc:
        status = 429 if exc.code is ErrorCode.login_rate_limited else 401
        return _retry_after(_code_page(request, found, _error_text(request, exc), status), exc)
    return await _signed_in(request, found.user)


# -- enrolment --------------------------------------------------------------------------------------------


def _enrol_page(request: web.Request, enrolment: Enrolment, *, action: str, error: str | None = None,
                status: int = 200, token: str = "") -> web.Response:
    translate = translator(request)
    return render(request, "second_factor_enrol.html", {
        "qr": qr_svg(enrolment.uri, translate("QR code for your authenticator app")),
        "secret": enrolment.grouped_secret, "action": action, "error": error, "form_token": token,
        "next": local_path(request.query.get("next")) or ""}, status=status)


def _codes_page(request: web.Request, codes: list[str], continue_to: str, *, fresh: bool) -> web.Response:
    return render(request, "recovery_codes.html", {"codes": codes, "continue_to": continue_to, "fresh": fresh})


@public
async def handle_enrol_at_sign_in_form(request: web.Request) -> web.StreamResponse:
    found = await _pending(request, "enrol")
    if isinstance(found, web.Response):
        return found
    enrolment = await request.app[keys.SERVICES].second_factors.begin_enrolment(found.user)
    return _enrol_page(request, enrolment, action="/login/enrol" + _next_query(request),
                       token=request.cookies.get(PRE_SESSION_COOKIE, ""))


@public
async def handle_enrol_at_sign_in(request: web.Request) -> web.StreamResponse:
    found = await _pending(request, "enrol")
    if isinstance(found, web.Response):
        return found
    services = request.app[keys.SERVICES]
    form = await request.post()
    actor = Actor(found.user, client_address(request))
    action = "/login/enrol" + _next_query(request)
    pre = request.cookies.get(PRE_SESSION_COOKIE, "")
    if not _form_token_ok(request, form.get(CSRF_FIELD)):
        enrolment = await services.second_factors.begin_enrolment(found.user)
        return _enrol_page(request, enrolment, action=action, token=pre, status=403,
                           error=translator(request)("The form has expired. Please try again."))
    try:
        codes = await services.second_factors.confirm_enrolment(actor, str(form.get("code", ""))[:40])
    except TelehealthError as exc:
        enrolment = await services.second_factors.begin_enrolment(found.user)
        status = 429 if exc.code is ErrorCode.login_rate_limited else 400
        return _retry_after(_enrol_page(request, enrolment, action=action, token=pre, status=status,
                                        error=_error_text(request, exc)), exc)
    await services.second_factors.finish_enrolment_sign_in(actor)
    # The session starts with this page: the codes are shown once, then the user goes on to their home.
    response = _codes_page(request, codes, local_path(request.query.get("next")) or home_path(found.user),
                           fresh=True)
    await start_session(request, response, found.user)
    response.del_cookie(PENDING_COOKIE, path="/login")
    response.del_cookie(PRE_SESSION_COOKIE, path="/login")
    return response


@page(*EVERYONE)
async def handle_enrol_form(request: web.Request) -> web.StreamResponse:
    enrolment = await request.app[keys.SERVICES].second_factors.begin_enrolment(current_user(request))
    return _enrol_page(request, enrolment, action="/account/second-factor", token=request.get(keys.CSRF, ""))


@page(*EVERYONE)
async def handle_enrol(request: web.Request) -> web.StreamResponse:
    services, actor = request.app[keys.SERVICES], actor_of(request)
    form = await request.post()
    try:
        codes = await services.second_factors.confirm_enrolment(actor, str(form.get("code", ""))[:40])
    except TelehealthError as exc:
        if exc.code not in (ErrorCode.invalid_input, ErrorCode.login_rate_limited):
            raise
        enrolment = await services.second_factors.begin_enrolment(actor.user)
        return _retry_after(_enrol_page(request, enrolment, action="/account/second-factor",
                                        token=request.get(keys.CSRF, ""), error=_error_text(request, exc),
                                        status=exc.http_status), exc)
    return _codes_page(request, codes, "/account", fresh=True)


@page(*EVERYONE)
async def handle_renew_recovery_codes(request: web.Request) -> web.StreamResponse:
    services, actor = request.app[keys.SERVICES], actor_of(request)
    form = await request.post()
    try:
        codes = await services.second_factors.renew_recovery_codes(actor, str(form.get("code", ""))[:40])
    except TelehealthError as exc:
        if exc.code not in (ErrorCode.invalid_input, ErrorCode.login_rate_limited):
            raise
        from telehealth.server.account_pages import account_page  # it links here: import when needed

        return _retry_after(await account_page(request, errors={"recovery_code": _error_text(request, exc)},
                                               status=exc.http_status), exc)
    return _codes_page(request, codes, "/account", fresh=False)


# -- administrators ---------------------------------------------------------------------------------------


@page(Role.admin)
async def handle_admin_reset(request: web.Request) -> web.StreamResponse:
    user_id = path_id(request, "user_id")
    await request.app[keys.SERVICES].second_factors.reset(actor_of(request), user_id)
    return see_other(f"/admin/users/{user_id}?saved=second_factor")


@allow(Role.admin)
async def handle_api_admin_reset(request: web.Request) -> web.StreamResponse:
    removed = await request.app[keys.SERVICES].second_factors.reset(actor_of(request), path_id(request, "user_id"))
    return web.json_response({"reset": True, "had_one": removed})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/login/code", handle_code_form)
    r.add_post("/login/code", handle_code)
    r.add_get("/login/enrol", handle_enrol_at_sign_in_form)
    r.add_post("/login/enrol", handle_enrol_at_sign_in)
    r.add_get("/account/second-factor", handle_enrol_form)
    r.add_post("/account/second-factor", handle_enrol)
    r.add_post("/account/second-factor/recovery-codes", handle_renew_recovery_codes)
    r.add_post("/admin/users/{user_id}/second-factor/reset", handle_admin_reset)
    r.add_delete("/api/admin/users/{user_id}/second-factor", handle_api_admin_reset)
