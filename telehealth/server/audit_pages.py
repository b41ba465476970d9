"""The audit trail for administrators: who viewed, exported or changed what, when and from where; filtered,
paginated, and the hash chain checked on demand."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from telehealth.domain import Role
from telehealth.schema import from_query
from telehealth.server import keys
from telehealth.server.auth import actor_of, page
from telehealth.server.pages import render
from telehealth.services.oversight import AuditQuery

# Families of actions, offered as filters beside the single actions seen so far.
FAMILIES = ("admin.", "record.", "note.", "consultation.", "attachment.", "referral.", "slot.", "slots.", "user.",
            "organisation.", "agreement.", "duty.", "login.")


async def _render(request: web.Request, verified: dict[str, Any] | None = None) -> web.Response:
    q = request.query
    query = from_query(AuditQuery, q, {"start": "from", "end": "to"})
    log = await request.app[keys.SERVICES].oversight.audit_log(actor_of(request), query)
    return render(request, "admin/audit.html", {
        "rows": log.rows, "names": log.names, "total": log.total, "page": log.page, "pages": log.pages,
        "filters": dict(q), "actions": [*FAMILIES, *log.actions], "verified": verified,
        "query": urlencode(sorted((k, v) for k, v in q.items() if k != "page")),
    })


@page(Role.admin)
async def handle_audit_page(request: web.Request) -> web.StreamResponse:
    return await _render(request)


@page(Role.admin)
async def handle_verify(request: web.Request) -> web.StreamResponse:
    verdict = await request.app[keys.SERVICES].oversight.verify_audit(actor_of(request))
    point = verdict.anchor.last
    return await _render(request, verified={
        "ok": verdict.ok, "checked": verdict.check.checked, "broken": verdict.check.broken_id,
        "removed": verdict.removed, "anchored": point.seq if point else None, "rewritten_at": verdict.rewritten_at,
        "wrong_key": verdict.wrong_key, "unanchored": verdict.unanchored})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/audit", handle_audit_page)
    app.router.add_post("/admin/audit/verify", handle_verify)
