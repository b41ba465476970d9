"""Remote-care agreements over the JSON API: either side's administrator lists them, proposes one, approves or
declines an invitation waiting for their side, or ends one in effect (the same operations as the
organisations page)."""

from __future__ import annotations

from aiohttp import web

from telehealth.domain import Role
from telehealth.server import keys
from telehealth.server.api import path_id, read_body
from telehealth.server.auth import actor_of, allow
from telehealth.services.organisations import AgreementInput, ReasonInput
from telehealth.views import agreement_view


@allow(Role.admin)
async def handle_list_agreements(request: web.Request) -> web.StreamResponse:
    listed = await request.app[keys.SERVICES].organisations.agreements(actor_of(request))
    return web.json_response({"agreements": [agreement_view(r, listed.people) for r in listed.rows]})


@allow(Role.admin)
async def handle_propose_agreement(request: web.Request) -> web.StreamResponse:
    organisations, actor = request.app[keys.SERVICES].organisations, actor_of(request)
    body = await read_body(request, AgreementInput, lambda: organisations.agreements(actor))
    row, people = await organisations.propose_agreement(actor, body)
    return web.json_response({"agreement": agreement_view(row, people)}, status=201)


@allow(Role.admin)
async def handle_approve_agreement(request: web.Request) -> web.StreamResponse:
    row, people = await request.app[keys.SERVICES].organisations.approve_agreement(
        actor_of(request), path_id(request, "agreement_id"))
    return web.json_response({"agreement": agreement_view(row, people)})


@allow(Role.admin)
async def handle_decline_agreement(request: web.Request) -> web.StreamResponse:
    organisations, actor, aid = request.app[keys.SERVICES].organisations, actor_of(request), path_id(
        request, "agreement_id")
    body = await read_body(request, ReasonInput, lambda: organisations.authorize_agreement(actor, aid))
    row, people = await organisations.decline_agreement(actor, aid, body)
    return web.json_response({"agreement": agreement_view(row, people)})


@allow(Role.admin)
async def handle_end_agreement(request: web.Request) -> web.StreamResponse:
    organisations, actor, aid = request.app[keys.SERVICES].organisations, actor_of(request), path_id(
        request, "agreement_id")
    body = await read_body(request, ReasonInput, lambda: organisations.authorize_agreement(actor, aid))
    row, people = await organisations.end_agreement(actor, aid, body)
    return web.json_response({"agreement": agreement_view(row, people)})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/admin/agreements", handle_list_agreements)
    r.add_post("/api/admin/agreements", handle_propose_agreement)
    r.add_post("/api/admin/agreements/{agreement_id}/approve", handle_approve_agreement)
    r.add_post("/api/admin/agreements/{agreement_id}/decline", handle_decline_agreement)
    r.add_post("/api/admin/agreements/{agreement_id}/end", handle_end_agreement)
