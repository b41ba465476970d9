"""A user's own account (their password and API tokens) and administrators' view of an account's tokens,
as pages and as JSON."""

from __future__ import annotations

from aiohttp import web

from telehealth.domain import Role
from telehealth.records.models import ApiToken
from telehealth.schema import InputError
from telehealth.server import keys
from telehealth.server.api import path_id, read_body
from telehealth.server.auth import actor_of, allow, page
from telehealth.server.forms import beside, read_form
from telehealth.server.pages import render, see_other, translator
from telehealth.services.accounts import ChangePasswordInput

EVERYONE = (Role.clinic_doctor, Role.specialist, Role.admin)


def token_view(token: ApiToken, now: float) -> dict[str, object]:
    return {"id": token.id, "label": token.label, "created_at": token.created_at.isoformat(),
            "expires_at": token.expires_at.isoformat(),
            "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
            "live": token.revoked_at is None and token.expires_at.timestamp() > now}


async def account_page(request: web.Request, *, errors: dict[str, str] | None = None,
                        status: int = 200) -> web.Response:
    services = request.app[keys.SERVICES]
    actor = actor_of(request)
    tokens = await services.accounts.list_tokens(actor)
    now = services.clock()
    return render(request, "account.html", {
        "tokens": [token_view(t, now) for t in tokens], "errors": errors or {},
        "second_factor": await services.second_factors.status(actor.id),
        "second_factor_required": services.second_factors.required_for(actor.user),
        "saved": request.query.get("saved")}, status=status)


@page(*EVERYONE)
async def handle_account(request: web.Request) -> web.StreamResponse:
    return await account_page(request)


@page(*EVERYONE)
async def handle_change_password(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    translate = translator(request)
    body, errors = read_form(ChangePasswordInput, {"current_password": form.get("current_password", ""),
                                                   "new_password": form.get("new_password", "")}, translate)
    if body is None or errors:
        return await account_page(request, errors=errors, status=400)
    try:
        await request.app[keys.SERVICES].accounts.change_own_password(actor_of(request), body,
                                                                      request.get(keys.SESSION_DIGEST))
    except InputError as exc:
        return await account_page(request, errors=beside(exc, translate), status=400)
    return see_other("/account?saved=password")


@page(*EVERYONE)
async def handle_revoke_own_token(request: web.Request) -> web.StreamResponse:
    await request.app[keys.SERVICES].accounts.revoke_token(actor_of(request), path_id(request, "token_id"))
    return see_other("/account?saved=token")


@page(Role.admin)
async def handle_admin_revoke_token(request: web.Request) -> web.StreamResponse:
    user_id = path_id(request, "user_id")
    await request.app[keys.SERVICES].accounts.revoke_token(actor_of(request), path_id(request, "token_id"), user_id)
    return see_other(f"/admin/users/{user_id}?saved=token")


# -- JSON ------------------------------------------------------------------------------------------


@allow(*EVERYONE)
async def handle_api_change_password(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, ChangePasswordInput)
    await request.app[keys.SERVICES].accounts.change_own_password(actor_of(request), body,
                                                                  request.get(keys.SESSION_DIGEST))
    return web.json_response({"changed": True})


async def _tokens(request: web.Request, user_id: int | None) -> web.Response:
    services = request.app[keys.SERVICES]
    tokens = await services.accounts.list_tokens(actor_of(request), user_id)
    return web.json_response({"tokens": [token_view(t, services.clock()) for t in tokens]})


async def _revoke(request: web.Request, user_id: int | None) -> web.Response:
    await request.app[keys.SERVICES].accounts.revoke_token(actor_of(request), path_id(request, "token_id"), user_id)
    return web.json_response({"revoked": True})


@allow(*EVERYONE)
async def handle_api_tokens(request: web.Request) -> web.StreamResponse:
    return await _tokens(request, None)


@allow(*EVERYONE)
async def handle_api_revoke_token(request: web.Request) -> web.StreamResponse:
    return await _revoke(request, None)


@allow(Role.admin)
async def handle_api_user_tokens(request: web.Request) -> web.StreamResponse:
    return await _tokens(request, path_id(request, "user_id"))


@allow(Role.admin)
async def handle_api_revoke_user_token(request: web.Request) -> web.StreamResponse:
    return await _revoke(request, path_id(request, "user_id"))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/account", handle_account)
    r.add_post("/account/password", handle_change_password)
    r.add_post("/account/tokens/{token_id}/revoke", handle_revoke_own_token)
    r.add_post("/admin/users/{user_id}/tokens/{token_id}/revoke", handle_admin_revoke_token)
    r.add_post("/api/me/password", handle_api_change_password)
    r.add_get("/api/tokens", handle_api_tokens)
    r.add_delete("/api/tokens/{token_id}", handle_api_revoke_token)
    r.add_get("/api/admin/users/{user_id}/tokens", handle_api_user_tokens)
    r.add_delete("/api/admin/users/{user_id}/tokens/{token_id}", handle_api_revoke_user_token)
