"""Middlewares: error mapping, access control on every handler, CSRF, security headers."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_urldispatcher import StaticResource

from telehealth import logs
from telehealth.errors import ErrorCode, TelehealthError, fill
from telehealth.server import keys
from telehealth.server.auth import CSRF_FIELD, CSRF_HEADER, Handler, access_of, check_csrf, load_identity
from telehealth.server.i18n import pick_language
from telehealth.strict_input import UNSTORABLE, storable

log = logging.getLogger("telehealth.http")
access_log = logging.getLogger("telehealth.access")

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@functools.cache
def content_security_policy(websocket_origin: str = "") -> str:
    """The pages' policy. `connect-src 'self'` covers their fetches and their WebSocket to the same host (CSP 3
    matches ws: and wss: to 'self'); a WebSocket served from elsewhere is named, alone, in the settings."""
    connect = f"'self' {websocket_origin}" if websocket_origin else "'self'"
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            f"media-src 'self' blob:; connect-src {connect}; font-src 'self'; object-src 'none'; "
            "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def wants_json(request: web.Request) -> bool:
    return (request.path.startswith("/api/") or request.path in ("/healthz", "/readyz", "/metrics")
            or "application/json" in request.headers.get("Accept", ""))


def error_response(request: web.Request, error: TelehealthError) -> web.StreamResponse:
    request.app[keys.METRICS].count_error(error.code)
    response = _error(request, error.http_status, error.code, error.template, error.params)
    if error.code is ErrorCode.login_rate_limited and "seconds" in error.params:
        response.headers["Retry-After"] = str(error.params["seconds"])
    return response


def _error(request: web.Request, status: int, code: ErrorCode, template: str,
           params: dict[str, Any]) -> web.StreamResponse:
    """The error in the request's language, its values filled after translation; a JSON error keeps the English
    beside it (`message_en`), which logs and integrations can match on whatever the user's language."""
    app = request.app
    renderer = app[keys.RENDERER]
    user = request.get(keys.USER)
    lang = pick_language(request, user.language if user else None, app[keys.SETTINGS].default_language)
    message = fill(renderer.translate(lang, template), params)
    if wants_json(request):
        return web.json_response({"error": {"code": code.value, "message": message,
                                            "message_en": fill(template, params)}}, status=status)
    html = renderer.render("error.html", lang, {
        "status": status, "code": code.value, "message": message, "user": user, "csrf": request.get(keys.CSRF, "")})
    return web.Response(text=html, status=status, content_type="text/html")


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Access control, then errors mapped to responses, in one coroutine: a WebSocket lives inside it for hours,
    and every coroutine still waiting on the handler is a frame kept alive for each open connection (the
    access check has finished before the handler starts).

    Every request gets a correlation id (the balancer's `X-Request-ID` when it sends one), echoed in the
    response and carried by every log line written while it is handled."""
    request_id = logs.new_request_id(request.headers.get("X-Request-ID"))
    started = time.perf_counter()
    with logs.bound(request_id=request_id):
        try:
            await check_access(request)
            response = await handler(request)
        except TelehealthError as exc:
            response = error_response(request, exc)
        except HttpProcessingError:
            # A body the parser cannot read (a broken multipart part header, say): the client's fault, not ours.
            response = error_response(request, TelehealthError(ErrorCode.invalid_input,
                                                               "The request body is malformed."))
        except web.HTTPException as exc:
            mapped = _http_error(request, exc)
            if mapped is None:
                raise
            response = mapped
        except Exception:
            # The traceback goes to the log; the client gets a code, never internals.
            log.exception("unhandled error in %s %s", request.method, request.rel_url.path)
            response = error_response(request, TelehealthError(ErrorCode.internal_error,
                                                               "Something went wrong on the server."))
        if not response.prepared:
            response.headers["X-Request-ID"] = request_id
        user = request.get(keys.USER)
        if not isinstance(response, web.WebSocketResponse) and not _is_static(request):
            access_log.info("%s %s %s", request.method, request.rel_url.path, response.status, extra={
                "method": request.method, "path": request.rel_url.path, "status": response.status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                **({"user_id": user.id} if user else {})})
    return response


def _is_static(request: web.Request) -> bool:
    return isinstance(request.match_info.route.resource, StaticResource)


def _http_error(request: web.Request, exc: web.HTTPException) -> web.StreamResponse | None:
    """aiohttp's own refusals (404, 405, 413) in the site's error shape; None for those that pass as they are
    (redirects, and what already answers JSON)."""
    if exc.status == 404 and not wants_json(request) and request.method == "GET":
        return error_response(request, TelehealthError(ErrorCode.not_found, "This page does not exist."))
    if exc.status == 413:
        return error_response(request, TelehealthError(ErrorCode.too_large, "The upload is too large."))
    if exc.status >= 400 and wants_json(request) and exc.content_type != "application/json":
        code = {404: ErrorCode.not_found, 405: ErrorCode.invalid_input}.get(exc.status, ErrorCode.invalid_input)
        template = {404: "this address does not exist",
                    405: "this address does not take {method} requests"}.get(exc.status, "the request was refused")
        return _error(request, exc.status, code, template, {"method": request.method})
    return None


async def check_access(request: web.Request) -> None:
    """Deny by default: a handler without an access declaration is refused to everyone. Returns when the
    request may go to its handler; raises otherwise."""
    route = request.match_info.route
    if isinstance(route.resource, StaticResource):
        return
    if request.match_info.http_exception is not None:
        await load_identity(request)
        return
    access = access_of(getattr(route, "handler", None))
    if access is None:
        log.error("route %s has no access declaration; refusing", route.resource.canonical if route.resource else "?")
        raise TelehealthError(ErrorCode.forbidden, "this address is not open to anyone")
    if request.content_type.startswith("multipart/") and "boundary=" not in request.headers.get("Content-Type", ""):
        # A multipart body without its boundary cannot be parsed: refuse it before anything reads it.
        raise TelehealthError(ErrorCode.invalid_input, "a multipart body needs its boundary in Content-Type")
    refuse_unstorable(request.query)
    if request.content_type == "application/x-www-form-urlencoded":
        refuse_unstorable(await request.post())
    await load_identity(request)
    if access.public:
        return
    user = request.get(keys.USER)
    if user is None:
        if access.page:
            raise web.HTTPSeeOther(f"/login?next={quote(request.rel_url.path_qs, safe='')}")
        raise TelehealthError(ErrorCode.auth_required, "log in first")
    if user.role not in access.roles:
        raise TelehealthError(ErrorCode.forbidden, "your role may not open this")
    if access.page and request.content_type == "multipart/form-data":
        # A page's form with a file is read whole by its handler anyway (aiohttp keeps what it read); its text
        # is held to the rule here whoever sent it, by token or with the CSRF header, not only with the field.
        refuse_unstorable(await request.post())
    if request.method in UNSAFE_METHODS and request.get(keys.AUTH) == "cookie":
        submitted = request.headers.get(CSRF_HEADER)
        if submitted is None and request.content_type in ("application/x-www-form-urlencoded",
                                                          "multipart/form-data"):
            form = await request.post()
            refuse_unstorable(form)
            value: Any = form.get(CSRF_FIELD)
            submitted = value if isinstance(value, str) else None
        check_csrf(request, submitted)


def refuse_unstorable(fields: Mapping[str, Any]) -> None:
    """Query strings and forms are refused, like JSON bodies, when a key or a value holds a NUL or an unpaired
    surrogate: no handler has to wonder whether the database can store what it was given."""
    for key, value in fields.items():
        text = value.filename if isinstance(value, web.FileField) else value  # of a file, its name
        if not storable(key) or (isinstance(text, str) and not storable(text)):
            raise TelehealthError(ErrorCode.invalid_message, UNSTORABLE)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if isinstance(response, web.WebSocketResponse) and response.status == 101:
        # A switch to the WebSocket protocol carries no document for these headers to govern, and its headers
        # stay in memory as long as the socket is open: thousands of idle sockets would each keep a copy.
        return
    headers = response.headers
    settings = request.app[keys.SETTINGS]
    headers.setdefault("Content-Security-Policy", content_security_policy(settings.security.websocket_origin))
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self), geolocation=()")
    if settings.cookie_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.get(keys.USER) is not None and not request.path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-store")
