"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

import asyncio

from aiohttp import web

from telehealth import __version__
from telehealth.server import keys
from telehealth.server.auth import public

READY_TIMEOUT_S = 2.0


@public
async def handle_healthz(request: web.Request) -> web.StreamResponse:
    """The process is up and its event loop answers."""
    return web.json_response({"status": "ok", "version": __version__})


@public
async def handle_readyz(request: web.Request) -> web.StreamResponse:
    """Ready to serve: the database answers and, when configured, Redis answers."""
    app = request.app
    checks: dict[str, str] = {}
    ok = True
    try:
        await asyncio.wait_for(app[keys.SERVICES].ping(), READY_TIMEOUT_S)
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the reason is in the body
        ok = False
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        await asyncio.wait_for(app[keys.BROKER].ping(), READY_TIMEOUT_S)
        checks["broker"] = "ok"
    except Exception as exc:
        ok = False
        checks["broker"] = f"unavailable: {type(exc).__name__}"
    sessions = app.get(keys.SESSIONS)
    if sessions is not None and sessions.draining:
        ok = False
        checks["node"] = "draining"
    return web.json_response({"status": "ready" if ok else "not_ready", "checks": checks, "node": app[keys.NODE]},
                             status=200 if ok else 503)
