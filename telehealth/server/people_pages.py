"""Administrators manage the people and institutions of their alliance: accounts (create, edit, deactivate,
set a new password), organisations, and remote-care agreements with institutions outside the alliance:
proposed by one side, approved or declined by the other, ended by either.

An alliance administrator sees and changes only their alliance; a system administrator sees every
alliance and alone may create organisations outside one or other system administrators.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from telehealth.domain import SPECIALTIES, OrgLevel, Role, Title
from telehealth.schema import InputError
from telehealth.server import keys
from telehealth.server.account_pages import token_view
from telehealth.server.api import path_id
from telehealth.server.auth import actor_of, current_user, page
from telehealth.server.forms import beside, integer, read_form, text
from telehealth.server.pages import render, see_other, translator
from telehealth.services.accounts import NewUserInput, PasswordInput, ProfileInput
from telehealth.services.organisations import (
    AgreementInput,
    NewOrganisationInput,
    OrganisationInput,
    ReasonInput,
)

# Schema fields whose form control has another name.
CONTROLS = {"organisation_id": "organisation", "clinic_org_id": "clinic", "hospital_org_id": "hospital",
            "alliance_id": "alliance"}


def _profile_values(form: Mapping[str, Any]) -> dict[str, Any]:
    getall = getattr(form, "getall", None)
    specialties = list(dict.fromkeys(str(s) for s in (getall("specialties", []) if getall else [])))
    return {"display_name": text(form, "display_name"), "title": text(form, "title") or None,
            "specialties": specialties}


# -- accounts ------------------------------------------------------------------------------------


async def _users_page(request: web.Request, *, values: dict[str, Any] | None = None,
                      errors: dict[str, str] | None = None, status: int = 200) -> web.Response:
    accounts, actor = request.app[keys.SERVICES].accounts, actor_of(request)
    _, orgs = await accounts.managed_organisations(actor)
    q = request.query
    org_filter = integer(q, "org")
    role_filter = q.get("role") or ""
    users = await accounts.list_users(
        actor, organisation_id=org_filter if isinstance(org_filter, int) else None,
        role=Role(role_filter) if role_filter in {r.value for r in Role} else None)
    return render(request, "admin/users.html", {
        "users": users, "orgs": orgs, "organisations": sorted(orgs.values(), key=lambda o: o.name),
        "roles": [r.value for r in Role], "titles": [t.value for t in Title], "specialties": SPECIALTIES,
        "values": values or {"role": "clinic_doctor", "specialties": ()}, "errors": errors or {},
        "filters": {"org": org_filter if isinstance(org_filter, int) else None, "role": role_filter},
        "created": q.get("created"),
    }, status=status)


@page(Role.admin)
async def handle_users(request: web.Request) -> web.StreamResponse:
    return await _users_page(request)


@page(Role.admin)
async def handle_create_user(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    data = {"username": text(form, "username").lower(), "role": text(form, "role"),
            "organisation_id": integer(form, "organisation"), "password": form.get("password", ""),
            **_profile_values(form)}
    values = {**data, "organisation": data["organisation_id"], "title": data["title"] or ""}
    values.pop("password")
    translate = translator(request)
    body, errors = read_form(NewUserInput, data, translate, CONTROLS)
    if body is None or errors:
        return await _users_page(request, values=values, errors=errors, status=400)
    try:
        user = await request.app[keys.SERVICES].accounts.create_user(actor_of(request), body)
    except InputError as exc:
        return await _users_page(request, values=values, errors=beside(exc, translate, CONTROLS), status=400)
    return see_other(f"/admin/users?created={user.id}")


async def _user_page(request: web.Request, user_id: int, *, errors: dict[str, str] | None = None,
                     status: int = 200) -> web.Response:
    accounts, actor = request.app[keys.SERVICES].accounts, actor_of(request)
    user = await accounts.managed_user(actor, user_id)
    _, orgs = await accounts.managed_organisations(actor)
    now = request.app[keys.SERVICES].clock()
    tokens = [token_view(t, now) for t in await accounts.list_tokens(actor, user.id)]
    second_factors = request.app[keys.SERVICES].second_factors
    return render(request, "admin/user.html", {
        "tokens": tokens, "second_factor": await second_factors.status(user.id),
        "second_factor_required": second_factors.required_for(user),
        "account": user, "org": orgs.get(user.organisation_id) if user.organisation_id else None,
        "titles": [t.value for t in Title], "specialties": SPECIALTIES, "errors": errors or {},
        "notice": request.query.get("saved"), "is_self": user.id == current_user(request).id,
    }, status=status)


@page(Role.admin)
async def handle_user(request: web.Request) -> web.StreamResponse:
    return await _user_page(request, path_id(request, "user_id"))


@page(Role.admin)
async def handle_update_user(request: web.Request) -> web.StreamResponse:
    user_id = path_id(request, "user_id")
    await request.app[keys.SERVICES].accounts.managed_user(actor_of(request), user_id)
    form = await request.post()
    translate = translator(request)
    body, errors = read_form(ProfileInput, {**_profile_values(form), "active": form.get("active") == "on"},
                             translate, CONTROLS)
    if body is None or errors:
        return await _user_page(request, user_id, errors=errors, status=400)
    try:
        await request.app[keys.SERVICES].accounts.update_profile(actor_of(request), user_id, body)
    except InputError as exc:
        return await _user_page(request, user_id, errors=beside(exc, translate, CONTROLS), status=400)
    return see_other(f"/admin/users/{user_id}?saved=profile")


@page(Role.admin)
async def handle_set_password(request: web.Request) -> web.StreamResponse:
    user_id = path_id(request, "user_id")
    await request.app[keys.SERVICES].accounts.managed_user(actor_of(request), user_id)
    form = await request.post()
    body, errors = read_form(PasswordInput, {"password": form.get("password", "")}, translator(request))
    if body is None or errors:
        return await _user_page(request, user_id, errors=errors, status=400)
    await request.app[keys.SERVICES].accounts.set_password(actor_of(request), user_id, body)
    return see_other(f"/admin/users/{user_id}?saved=password")


# -- organisations and agreements ---------------------------------------------------------------------


async def _orgs_page(request: web.Request, *, values: dict[str, Any] | None = None,
                     errors: dict[str, str] | None = None, status: int = 200) -> web.Response:
    view = await request.app[keys.SERVICES].organisations.overview(actor_of(request))
    return render(request, "admin/organisations.html", {
        "organisations": view.organisations, "alliances": view.alliances, "staff": view.staff,
        "levels": [lv.value for lv in OrgLevel],
        "agreements": view.agreements, "people": view.people,
        # Invitations waiting for this administrator's side, shown first with their buttons.
        "pending": [r for r in view.agreements if r.may_approve],
        "clinics": view.clinics, "hospitals": view.hospitals, "values": values or {}, "errors": errors or {},
        "scope": view.alliance_id, "today": request.app[keys.SERVICES].now().date(),
        "saved": request.query.get("saved"),
    }, status=status)


@page(Role.admin)
async def handle_organisations(request: web.Request) -> web.StreamResponse:
    return await _orgs_page(request)


def _org_values(form: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": text(form, "name"), "name_zh": text(form, "name_zh"), "region": text(form, "region"),
            "city_group_pilot": form.get("city_group_pilot") == "on"}


@page(Role.admin)
async def handle_create_organisation(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    data = {**_org_values(form), "level": text(form, "level"), "alliance_id": integer(form, "alliance")}
    values = {**data, "alliance": data["alliance_id"]}
    translate = translator(request)
    body, errors = read_form(NewOrganisationInput, data, translate, CONTROLS)
    if body is None or errors:
        return await _orgs_page(request, values=values, errors=errors, status=400)
    try:
        await request.app[keys.SERVICES].organisations.create(actor_of(request), body)
    except InputError as exc:
        return await _orgs_page(request, values=values, errors=beside(exc, translate, CONTROLS), status=400)
    return see_other("/admin/organisations?saved=organisation")


@page(Role.admin)
async def handle_update_organisation(request: web.Request) -> web.StreamResponse:
    org_id = path_id(request, "org_id")
    organisations, actor = request.app[keys.SERVICES].organisations, actor_of(request)
    await organisations.managed(actor, org_id)
    form = await request.post()
    data = _org_values(form)
    translate = translator(request)
    body, errors = read_form(OrganisationInput, data, translate, CONTROLS)
    if body is None or errors:
        return await _orgs_page(request, values={**data, "edit": org_id}, errors=errors, status=400)
    try:
        await organisations.update(actor, org_id, body)
    except InputError as exc:
        return await _orgs_page(request, values={**data, "edit": org_id},
                                errors=beside(exc, translate, CONTROLS), status=400)
    return see_other("/admin/organisations?saved=organisation")


@page(Role.admin)
async def handle_create_agreement(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    data = {"clinic_org_id": integer(form, "clinic") or 0, "hospital_org_id": integer(form, "hospital") or 0,
            "valid_from": text(form, "valid_from"), "valid_to": text(form, "valid_to")}
    values = {"clinic": integer(form, "clinic"), "hospital": integer(form, "hospital"),
              "valid_from": data["valid_from"], "valid_to": data["valid_to"]}
    translate = translator(request)
    body, errors = read_form(AgreementInput, data, translate, CONTROLS)
    if body is None or errors:
        return await _orgs_page(request, values=values, errors=errors, status=400)
    try:
        await request.app[keys.SERVICES].organisations.propose_agreement(actor_of(request), body)
    except InputError as exc:
        return await _orgs_page(request, values=values, errors=beside(exc, translate, CONTROLS), status=400)
    return see_other("/admin/organisations?saved=agreement")


@page(Role.admin)
async def handle_approve_agreement(request: web.Request) -> web.StreamResponse:
    await request.app[keys.SERVICES].organisations.approve_agreement(actor_of(request),
                                                                     path_id(request, "agreement_id"))
    return see_other("/admin/organisations?saved=agreement")


async def _with_reason(request: web.Request, decline: bool) -> web.StreamResponse:
    organisations, actor = request.app[keys.SERVICES].organisations, actor_of(request)
    agreement_id = path_id(request, "agreement_id")
    await organisations.authorize_agreement(actor, agreement_id)  # an outsider hears no more than that
    form = await request.post()
    data = {"reason": text(form, "reason")}
    body, errors = read_form(ReasonInput, data, translator(request))
    if body is None or errors:
        return await _orgs_page(request, values={"reason_for": agreement_id, **data}, errors=errors, status=400)
    if decline:
        await organisations.decline_agreement(actor, agreement_id, body)
    else:
        await organisations.end_agreement(actor, agreement_id, body)
    return see_other("/admin/organisations?saved=agreement")


@page(Role.admin)
async def handle_decline_agreement(request: web.Request) -> web.StreamResponse:
    return await _with_reason(request, decline=True)


@page(Role.admin)
async def handle_end_agreement(request: web.Request) -> web.StreamResponse:
    return await _with_reason(request, decline=False)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/users", handle_users)
    r.add_post("/admin/users", handle_create_user)
    r.add_get("/admin/users/{user_id}", handle_user)
    r.add_post("/admin/users/{user_id}", handle_update_user)
    r.add_post("/admin/users/{user_id}/password", handle_set_password)
    r.add_get("/admin/organisations", handle_organisations)
    r.add_post("/admin/organisations", handle_create_organisation)
    r.add_post("/admin/organisations/{org_id}", handle_update_organisation)
    r.add_post("/admin/agreements", handle_create_agreement)
    r.add_post("/admin/agreements/{agreement_id}/approve", handle_approve_agreement)
    r.add_post("/admin/agreements/{agreement_id}/decline", handle_decline_agreement)
    r.add_post("/admin/agreements/{agreement_id}/end", handle_end_agreement)
