"""Who is asking: session cookies, API tokens, CSRF, and the access rule every handler declares."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from telehealth.domain import Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.models import User
from telehealth.server import keys, proxies
from telehealth.services.context import Actor

SESSION_COOKIE = "th_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
ACCESS_ATTR = "__telehealth_access__"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True)
class Access:
    """Who may call a handler. `roles` empty and `public` False would deny everyone."""

    public: bool = False
    roles: frozenset[Role] = frozenset()
    # Pages send people without a session to the login page; the API answers 401.
    page: bool = False


def public(handler: H) -> H:
    setattr(handler, ACCESS_ATTR, Access(public=True))
    return handler


def allow(*roles: Role, page: bool = False) -> Callable[[H], H]:
    """Declare the roles that may call a handler; `access_middleware` refuses everyone else."""

    def mark(handler: H) -> H:
        setattr(handler, ACCESS_ATTR, Access(roles=frozenset(roles), page=page))
        return handler

    return mark


def page(*roles: Role) -> Callable[[H], H]:
    return allow(*roles, page=True)


def access_of(handler: Any) -> Access | None:
    seen = handler
    for _ in range(5):  # look through functools.partial / wrapped handlers
        found = getattr(seen, ACCESS_ATTR, None)
        if found is not None:
            return found  # type: ignore[no-any-return]
        seen = getattr(seen, "__wrapped__", None) or getattr(seen, "func", None)
        if seen is None:
            break
    return None


def current_user(request: web.Request) -> User:
    user = request.get(keys.USER)
    if user is None:
        raise TelehealthError(ErrorCode.auth_required, "log in first")
    return user  # type: ignore[no-any-return]


def client_address(request: web.Request) -> str:
    """The client's address for the audit and the login limits: X-Forwarded-For counts only from a trusted proxy."""
    return proxies.client_address(request)


def actor_of(request: web.Request) -> Actor:
    """The signed-in user as the service operations see them."""
    return Actor(current_user(request), client_address(request))


def optional_user(request: web.Request) -> User | None:
    return request.get(keys.USER)


async def load_identity(request: web.Request) -> None:
    """Attach `user` (and `csrf`, `auth` = "cookie" | "token") to the request when it carries credentials."""
    accounts = request.app[keys.SERVICES].accounts
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        identity = await accounts.token_identity(header[7:].strip())
        if identity is None:
            raise TelehealthError(ErrorCode.auth_failed, "the API token is not valid")
        request[keys.AUTH] = "token"
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        found = await accounts.web_session(cookie) if cookie else None
        if found is None:
            return
        identity = found
        request[keys.CSRF] = identity.csrf_token
        request[keys.SESSION_DIGEST] = identity.session_digest
        request[keys.AUTH] = "cookie"
    request[keys.USER] = identity.user
    request[keys.CREDENTIAL] = identity.credential
    request[keys.CREDENTIAL_EXPIRES] = identity.expires


async def start_session(request: web.Request, response: web.StreamResponse, user: User) -> None:
    settings = request.app[keys.SETTINGS]
    session = await request.app[keys.SERVICES].accounts.start_web_session(user)
    response.set_cookie(SESSION_COOKIE, session.cookie, httponly=True, samesite="Lax",
                        secure=settings.cookie_secure, path="/", max_age=settings.security.session_ttl_s)


async def end_session(request: web.Request, response: web.StreamResponse) -> None:
    digest = request.get(keys.SESSION_DIGEST)
    if digest:
        await request.app[keys.SERVICES].accounts.end_web_session(current_user(request), digest)
    response.del_cookie(SESSION_COOKIE, path="/")


def check_csrf(request: web.Request, submitted: str | None) -> None:
    """Cookie-authenticated writes must echo the session's CSRF token (form field or header)."""
    if request.get(keys.AUTH) != "cookie":
        return
    expected = request.get(keys.CSRF, "")
    if not submitted or not hmac.compare_digest(submitted, expected):
        raise TelehealthError(ErrorCode.csrf_failed, "the form has expired or did not come from this site; "
                                                     "reload the page and try again")


def require_roles(user: User, roles: Iterable[Role]) -> None:
    if user.role not in set(roles):
        raise TelehealthError(ErrorCode.forbidden, "your role may not do this")


def home_path(user: User) -> str:
    return {Role.clinic_doctor: "/clinic", Role.specialist: "/specialist", Role.admin: "/admin"}[user.role]
