"""The audit trail for administrators: who viewed, exported or changed what, when and from where; filtered,
paginated, and the hash chain checked on demand."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from telehealth.domain import Role
from telehealth.server import keys
from telehealth.server.admin_pages import admin_scope
from telehealth.server.api import audit
from telehealth.server.auth import current_user, page
from telehealth.server.pages import render
from telehealth.server.query import query_day, query_number

PAGE_SIZE = 50
# Families of actions, offered as filters beside the single actions seen so far.
FAMILIES = ("admin.", "record.", "note.", "consultation.", "attachment.", "referral.", "slot.", "slots.", "user.",
            "organisation.", "agreement.", "duty.", "login.")


async def _render(request: web.Request, verified: dict[str, Any] | None = None) -> web.Response:
    user = current_user(request)
    alliance = await admin_scope(request, user)
    store = request.app[keys.STORE]
    orgs = await store.list_organisations(alliance)
    people = await store.list_all_users(organisation_ids=None if alliance is None else [o.id for o in orgs],
                                        include_system_admins=alliance is None)
    names = {u.id: u.display_name for u in people}
    q = request.query
    actor_ids: list[int] | None = None if alliance is None else list(names)
    if q.get("actor"):
        match = [u.id for u in people if u.username == q["actor"].strip().lower()]
        actor_ids = match  # an unknown or out-of-reach username matches nothing
    page_no = query_number(q.get("page")) or 1
    end = query_day(q.get("to"))
    rows, total = await store.search_audit(
        actor_ids=actor_ids, action=(q.get("action") or None), target=(q.get("target") or "").strip() or None,
        start=query_day(q.get("from")), end=end + dt.timedelta(days=1) if end else None, limit=PAGE_SIZE,
        offset=(page_no - 1) * PAGE_SIZE)
    await audit(request, "admin.audit_view", "audit_log", {"page": page_no, "results": len(rows)})
    actions = await store.audit_actions()
    return render(request, "admin/audit.html", {
        "rows": rows, "names": names, "total": total, "page": page_no,
        "pages": max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE), "filters": dict(q),
        "actions": [*FAMILIES, *actions], "verified": verified,
        "query": urlencode(sorted((k, v) for k, v in q.items() if k != "page")),
    })


@page(Role.admin)
async def handle_audit_page(request: web.Request) -> web.StreamResponse:
    return await _render(request)


@page(Role.admin)
async def handle_verify(request: web.Request) -> web.StreamResponse:
    checked, broken = await request.app[keys.STORE].verify_audit_chain()
    await audit(request, "admin.audit_verify", "audit_log", {"checked": checked, "broken": broken})
    return await _render(request, verified={"checked": checked, "broken": broken})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/audit", handle_audit_page)
    app.router.add_post("/admin/audit/verify", handle_verify)
