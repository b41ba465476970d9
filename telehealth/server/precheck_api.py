"""The pre-call connection check over HTTP: the clinic's browser (or the Python client) sends an offer, the
server's own WebRTC peer (in a worker process) answers and exchanges media for a few seconds, the client
reports what it received, and the verdict is returned and kept per clinic.

    GET  /api/precheck/config        ICE servers (those of a real call, TURN included) and the duration
    POST /api/precheck               {"sdp"}: the offer, with its candidates -> {"id", "sdp", "seconds", "warmup_s"}
    POST /api/precheck/{id}/report   the client's side -> {"verdict", "cause", "up", "down"}
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict

from aiohttp import web

from telehealth.domain import Role
from telehealth.media.precheck import PrecheckService
from telehealth.server import keys
from telehealth.server.api import read_body
from telehealth.server.auth import actor_of, allow, page
from telehealth.server.pages import render
from telehealth.services.prechecks import OfferBody, ReportBody


async def precheck_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS].precheck
    media = PrecheckService(settings.workers, settings.per_worker, settings.seconds, settings.addresses)
    app[keys.PRECHECK] = media
    app[keys.SERVICES].prechecks.media = media
    yield
    app[keys.SERVICES].prechecks.media = None
    await media.stop()


@allow(Role.clinic_doctor)
async def handle_config(request: web.Request) -> web.StreamResponse:
    settings = request.app[keys.SETTINGS]
    servers = request.app[keys.SERVICES].prechecks.ice(actor_of(request))
    return web.json_response({"ice_servers": servers, "seconds": settings.precheck.seconds,
                              "turn_configured": bool(settings.ice.turn_urls)})


@allow(Role.clinic_doctor)
async def handle_begin(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, OfferBody)
    started = await request.app[keys.SERVICES].prechecks.begin(actor_of(request), body)
    return web.json_response(asdict(started), status=201)


@allow(Role.clinic_doctor)
async def handle_report(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, ReportBody)
    outcome = await request.app[keys.SERVICES].prechecks.report(actor_of(request), request.match_info["check_id"],
                                                                body)
    return web.json_response(outcome)


@page(Role.clinic_doctor)
async def handle_precheck_page(request: web.Request) -> web.StreamResponse:
    return render(request, "clinic/precheck.html")


@page(Role.admin)
async def handle_network_page(request: web.Request) -> web.StreamResponse:
    """Each clinic's network readiness over time: its connection checks, newest first."""
    clinics, by_org = await request.app[keys.SERVICES].prechecks.network(actor_of(request))
    return render(request, "admin/network.html", {"clinics": clinics, "by_org": by_org})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/clinic/precheck", handle_precheck_page)
    app.router.add_get("/admin/network", handle_network_page)
    app.router.add_get("/api/precheck/config", handle_config)
    app.router.add_post("/api/precheck", handle_begin)
    app.router.add_post("/api/precheck/{check_id}/report", handle_report)
