"""Administrators manage the people and institutions of their alliance: accounts (create, edit, deactivate,
set a new password), organisations, and remote-care agreements with institutions outside the alliance.

An alliance administrator sees and changes only their alliance; a system administrator sees every
alliance and alone may create organisations outside one or other system administrators.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from telehealth.accounts import MIN_PASSWORD_LENGTH, hash_password_async
from telehealth.domain import SPECIALTIES, OrgLevel, Role, Title
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.models import Organisation, User
from telehealth.server import keys
from telehealth.server.admin_pages import admin_scope
from telehealth.server.api import audit, path_id
from telehealth.server.auth import current_user, page
from telehealth.server.pages import render, see_other

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,79}$")
ROLE_LEVELS = {
    Role.clinic_doctor: (OrgLevel.village_clinic, OrgLevel.township_centre),
    Role.specialist: (OrgLevel.county_hospital, OrgLevel.city_hospital),
    Role.admin: tuple(OrgLevel),
}


def _text(form: Mapping[str, Any], name: str, limit: int = 400) -> str:
    value = form.get(name, "")
    return value.strip()[: limit + 1] if isinstance(value, str) else ""


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


async def _scope(request: web.Request) -> tuple[int | None, dict[int, Organisation]]:
    """The administrator's alliance (None: all) and the organisations they manage."""
    alliance = await admin_scope(request, current_user(request))
    orgs = await request.app[keys.STORE].list_organisations(alliance)
    return alliance, {o.id: o for o in orgs}


async def _managed_user(request: web.Request, orgs: dict[int, Organisation]) -> User:
    """The account in the path, if this administrator may manage it (404 otherwise: no probing)."""
    user = await request.app[keys.STORE].get_user(path_id(request, "user_id"))
    admin = current_user(request)
    if user is None or (not admin.is_system_admin and (user.is_system_admin or user.organisation_id not in orgs)):
        raise TelehealthError(ErrorCode.not_found, "no such user in your alliance")
    return user


def _profile(form: Mapping[str, Any], role: Role) -> tuple[dict[str, Any], dict[str, str]]:
    """Display name, title and specialties, checked against the account's role."""
    errors: dict[str, str] = {}
    display_name = _text(form, "display_name", 200)
    if not display_name:
        errors["display_name"] = "Enter the name shown to colleagues."
    elif len(display_name) > 200:
        errors["display_name"] = "At most 200 characters."
    title: Title | None = None
    raw_title = _text(form, "title")
    if raw_title:
        if raw_title not in {t.value for t in Title}:
            errors["title"] = "Choose a professional title."
        else:
            title = Title(raw_title)
    elif role is Role.specialist:
        errors["title"] = "Choose a professional title."
    getall = getattr(form, "getall", None)
    specialties = tuple(dict.fromkeys(str(s) for s in (getall("specialties", []) if getall else [])))
    if any(s not in SPECIALTIES for s in specialties):
        errors["specialties"] = "Choose specialties from the list."
    elif role is Role.specialist and not specialties:
        errors["specialties"] = "A specialist needs at least one specialty."
    return {"display_name": display_name, "title": title, "specialties": specialties}, errors


def _password(form: Mapping[str, Any], errors: dict[str, str]) -> str:
    password = form.get("password", "")
    password = password if isinstance(password, str) else ""
    if len(password) < MIN_PASSWORD_LENGTH:
        errors["password"] = "A password has at least 8 characters."
    elif len(password) > 200:
        errors["password"] = "At most 200 characters."
    return password


# -- accounts ------------------------------------------------------------------------------------


async def _users_page(request: web.Request, *, values: dict[str, Any] | None = None,
                      errors: dict[str, str] | None = None, status: int = 200) -> web.Response:
    alliance, orgs = await _scope(request)
    admin = current_user(request)
    store = request.app[keys.STORE]
    q = request.query
    org_filter = _int(q.get("org", ""))
    role_filter = q.get("role") or ""
    users = await store.list_all_users(organisation_ids=None if alliance is None else list(orgs),
                                       include_system_admins=admin.is_system_admin)
    if org_filter is not None:
        users = [u for u in users if u.organisation_id == org_filter]
    if role_filter in {r.value for r in Role}:
        users = [u for u in users if u.role.value == role_filter]
    return render(request, "admin/users.html", {
        "users": users, "orgs": orgs, "organisations": sorted(orgs.values(), key=lambda o: o.name),
        "roles": [r.value for r in Role], "titles": [t.value for t in Title], "specialties": SPECIALTIES,
        "values": values or {"role": "clinic_doctor", "specialties": ()}, "errors": errors or {},
        "filters": {"org": org_filter, "role": role_filter}, "created": q.get("created"),
    }, status=status)


@page(Role.admin)
async def handle_users(request: web.Request) -> web.StreamResponse:
    return await _users_page(request)


@page(Role.admin)
async def handle_create_user(request: web.Request) -> web.StreamResponse:
    _, orgs = await _scope(request)
    admin = current_user(request)
    form = await request.post()
    errors: dict[str, str] = {}
    username = _text(form, "username", 80).lower()
    if not USERNAME.match(username):
        errors["username"] = "3 to 80 lower-case letters, digits, dots, dashes or underscores."
    raw_role = _text(form, "role")
    role = Role(raw_role) if raw_role in {r.value for r in Role} else None
    if role is None:
        errors["role"] = "Choose a role."
    org_id = _int(_text(form, "organisation"))
    org = orgs.get(org_id) if org_id is not None else None
    if org is None:
        errors["organisation"] = "Choose an organisation of your alliance."
    elif role is not None and org.level not in ROLE_LEVELS[role]:
        errors["organisation"] = "Clinic doctors belong to a clinic or township centre, specialists to a hospital."
    profile, profile_errors = _profile(form, role or Role.admin)
    errors.update(profile_errors)
    password = _password(form, errors)
    values = {"username": username, "role": raw_role, "organisation": org_id, "display_name": profile["display_name"],
              "title": profile["title"].value if profile["title"] else "", "specialties": profile["specialties"]}
    if errors or role is None or org is None:
        return await _users_page(request, values=values, errors=errors, status=400)
    store = request.app[keys.STORE]
    if await store.get_user_by_username(username) is not None:
        errors["username"] = "This username is taken."
        return await _users_page(request, values=values, errors=errors, status=400)
    user = await store.insert_user(
        username, await hash_password_async(password), profile["display_name"], role, organisation_id=org.id,
        now=dt.datetime.now(dt.UTC), title=profile["title"], specialties=profile["specialties"],
        language=admin.language)
    await audit(request, "user.create", f"user:{user.id}", {"role": role.value, "organisation": org.id})
    return see_other(f"/admin/users?created={user.id}")


async def _user_page(request: web.Request, user: User, orgs: dict[int, Organisation], *,
                     errors: dict[str, str] | None = None, notice: str | None = None,
                     status: int = 200) -> web.Response:
    return render(request, "admin/user.html", {
        "account": user, "org": orgs.get(user.organisation_id) if user.organisation_id else None,
        "titles": [t.value for t in Title], "specialties": SPECIALTIES, "errors": errors or {},
        "notice": notice or request.query.get("saved"), "is_self": user.id == current_user(request).id,
    }, status=status)


@page(Role.admin)
async def handle_user(request: web.Request) -> web.StreamResponse:
    _, orgs = await _scope(request)
    return await _user_page(request, await _managed_user(request, orgs), orgs)


@page(Role.admin)
async def handle_update_user(request: web.Request) -> web.StreamResponse:
    _, orgs = await _scope(request)
    user = await _managed_user(request, orgs)
    form = await request.post()
    profile, errors = _profile(form, user.role)
    active = form.get("active") == "on"
    if not active and user.id == current_user(request).id:
        errors["active"] = "You cannot deactivate your own account."
    if errors:
        return await _user_page(request, user, orgs, errors=errors, status=400)
    updated = await request.app[keys.STORE].update_user(user.id, active=active, **profile)
    changed = [k for k in ("display_name", "title", "specialties", "active")
               if getattr(updated, k) != getattr(user, k)]
    await audit(request, "user.update", f"user:{user.id}", {"changed": ",".join(changed)})
    return see_other(f"/admin/users/{user.id}?saved=profile")


@page(Role.admin)
async def handle_set_password(request: web.Request) -> web.StreamResponse:
    _, orgs = await _scope(request)
    user = await _managed_user(request, orgs)
    form = await request.post()
    errors: dict[str, str] = {}
    password = _password(form, errors)
    if errors:
        return await _user_page(request, user, orgs, errors=errors, status=400)
    await request.app[keys.STORE].update_user_password(user.id, await hash_password_async(password))
    await audit(request, "user.password", f"user:{user.id}")
    return see_other(f"/admin/users/{user.id}?saved=password")


# -- organisations and agreements ---------------------------------------------------------------------


async def _orgs_page(request: web.Request, *, values: dict[str, Any] | None = None,
                     errors: dict[str, str] | None = None, status: int = 200) -> web.Response:
    alliance, orgs = await _scope(request)
    store = request.app[keys.STORE]
    every = {o.id: o for o in await store.list_organisations()}
    agreements = await store.list_agreements(None if alliance is None else list(orgs))
    alliances = await store.list_alliances()
    users = await store.list_all_users(organisation_ids=list(orgs))
    staff: dict[int, int] = {}
    for u in users:
        if u.active and u.organisation_id is not None:
            staff[u.organisation_id] = staff.get(u.organisation_id, 0) + 1
    now = dt.datetime.now(dt.UTC)
    return render(request, "admin/organisations.html", {
        "organisations": sorted(orgs.values(), key=lambda o: (o.alliance_id or 0, o.level.value, o.name)),
        "alliances": {a.id: a for a in alliances}, "staff": staff, "levels": [lv.value for lv in OrgLevel],
        "agreements": [{"a": a, "clinic": every.get(a.clinic_org_id), "hospital": every.get(a.hospital_org_id),
                        "valid": a.valid_at(now)} for a in agreements],
        # Agreement partners may be outside the alliance: any grassroots institution or hospital.
        "clinics": [o for o in every.values() if not o.level.is_hospital],
        "hospitals": [o for o in every.values() if o.level.is_hospital],
        "values": values or {}, "errors": errors or {}, "scope": alliance, "today": now.date(),
        "saved": request.query.get("saved"),
    }, status=status)


@page(Role.admin)
async def handle_organisations(request: web.Request) -> web.StreamResponse:
    return await _orgs_page(request)


def _org_fields(form: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    name = _text(form, "name", 200)
    name_zh = _text(form, "name_zh", 200)
    region = _text(form, "region", 200)
    if not name:
        errors["name"] = "Enter the organisation's name."
    for key, value in (("name", name), ("name_zh", name_zh), ("region", region)):
        if len(value) > 200:
            errors[key] = "At most 200 characters."
    return {"name": name, "name_zh": name_zh, "region": region,
            "city_group_pilot": form.get("city_group_pilot") == "on"}


@page(Role.admin)
async def handle_create_organisation(request: web.Request) -> web.StreamResponse:
    alliance, _ = await _scope(request)
    store = request.app[keys.STORE]
    form = await request.post()
    errors: dict[str, str] = {}
    fields = _org_fields(form, errors)
    raw_level = _text(form, "level")
    if raw_level not in {lv.value for lv in OrgLevel}:
        errors["level"] = "Choose the kind of institution."
    target_alliance: int | None = alliance
    if alliance is None:
        target_alliance = _int(_text(form, "alliance"))
        if target_alliance is not None and target_alliance not in {a.id for a in await store.list_alliances()}:
            errors["alliance"] = "Choose an alliance."
    values = {**fields, "level": raw_level, "alliance": target_alliance}
    if not errors and await store.get_organisation_by_name(fields["name"]) is not None:
        errors["name"] = "An organisation of this name exists."
    if errors:
        return await _orgs_page(request, values=values, errors=errors, status=400)
    org = await store.insert_organisation(fields["name"], OrgLevel(raw_level), alliance_id=target_alliance,
                                          name_zh=fields["name_zh"], region=fields["region"],
                                          city_group_pilot=fields["city_group_pilot"])
    await audit(request, "organisation.create", f"organisation:{org.id}", {"level": raw_level})
    return see_other("/admin/organisations?saved=organisation")


@page(Role.admin)
async def handle_update_organisation(request: web.Request) -> web.StreamResponse:
    _, orgs = await _scope(request)
    org_id = path_id(request, "org_id")
    if org_id not in orgs:
        raise TelehealthError(ErrorCode.not_found, "no such organisation in your alliance")
    form = await request.post()
    errors: dict[str, str] = {}
    fields = _org_fields(form, errors)
    other = await request.app[keys.STORE].get_organisation_by_name(fields["name"]) if fields["name"] else None
    if other is not None and other.id != org_id:
        errors["name"] = "An organisation of this name exists."
    if errors:
        return await _orgs_page(request, values={**fields, "edit": org_id}, errors=errors, status=400)
    await request.app[keys.STORE].update_organisation(org_id, **fields)
    await audit(request, "organisation.update", f"organisation:{org_id}")
    return see_other("/admin/organisations?saved=organisation")


@page(Role.admin)
async def handle_create_agreement(request: web.Request) -> web.StreamResponse:
    _, orgs = await _scope(request)
    store = request.app[keys.STORE]
    form = await request.post()
    errors: dict[str, str] = {}
    clinic = await store.get_organisation(_int(_text(form, "clinic")) or 0)
    hospital = await store.get_organisation(_int(_text(form, "hospital")) or 0)
    if clinic is None or clinic.level.is_hospital:
        errors["clinic"] = "Choose a village clinic or township centre."
    if hospital is None or not hospital.level.is_hospital:
        errors["hospital"] = "Choose a county or city hospital."
    if clinic is not None and hospital is not None and clinic.id not in orgs and hospital.id not in orgs:
        errors["clinic"] = "One side of the agreement must belong to your alliance."
    valid_from = valid_to = None
    try:
        valid_from = dt.datetime.combine(dt.date.fromisoformat(_text(form, "valid_from")), dt.time(), dt.UTC)
        raw_to = _text(form, "valid_to")
        if raw_to:
            valid_to = dt.datetime.combine(dt.date.fromisoformat(raw_to), dt.time(), dt.UTC)
            if valid_to <= valid_from:
                errors["valid_to"] = "The end date comes after the start date."
    except ValueError:
        errors["valid_from"] = "Give dates such as 2026-12-01."
    if errors or clinic is None or hospital is None or valid_from is None:
        values = {"clinic": _int(_text(form, "clinic")), "hospital": _int(_text(form, "hospital")),
                  "valid_from": _text(form, "valid_from"), "valid_to": _text(form, "valid_to")}
        return await _orgs_page(request, values=values, errors=errors, status=400)
    agreement_id = await store.insert_agreement(clinic.id, hospital.id, valid_from=valid_from, valid_to=valid_to,
                                                created_by=current_user(request).id, now=dt.datetime.now(dt.UTC))
    await audit(request, "agreement.create", f"agreement:{agreement_id}",
                {"clinic": clinic.id, "hospital": hospital.id})
    return see_other("/admin/organisations?saved=agreement")


@page(Role.admin)
async def handle_end_agreement(request: web.Request) -> web.StreamResponse:
    _, orgs = await _scope(request)
    store = request.app[keys.STORE]
    agreement_id = path_id(request, "agreement_id")
    agreement = next((a for a in await store.list_agreements(list(orgs)) if a.id == agreement_id), None)
    if agreement is None:
        raise TelehealthError(ErrorCode.not_found, "no such agreement in your alliance")
    if not await store.end_agreement(agreement_id, now=dt.datetime.now(dt.UTC)):
        raise TelehealthError(ErrorCode.conflict, "this agreement has already ended")
    await audit(request, "agreement.end", f"agreement:{agreement_id}")
    return see_other("/admin/organisations?saved=agreement")


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
    r.add_post("/admin/agreements/{agreement_id}/end", handle_end_agreement)
