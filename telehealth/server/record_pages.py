"""The referral record: one printable page per consultation, and its FHIR R4 export. Every view is audited."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from telehealth.domain import Role
from telehealth.server import keys
from telehealth.server.api import path_id
from telehealth.server.auth import actor_of, allow, page
from telehealth.server.pages import render
from telehealth.views import bed_view, referral_view, result_view, slot_view


@page(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_record_page(request: web.Request) -> web.StreamResponse:
    record = await request.app[keys.SERVICES].records.page(actor_of(request), path_id(request))
    parts, orgs = record.parts, record.organisations
    tz = request.app[keys.SETTINGS].slots.tz
    context: dict[str, Any] = {
        "accompanying": record.accompanying,
        "handovers": [{"at": h.at, "from_name": h.from_name, "to_name": h.to_name} for h in record.handovers],
        "consent_document": parts.consent_document,
        "consultation": parts.consultation, "patient": parts.patient, "clinic": parts.clinic,
        "requester": parts.requester, "specialist": parts.specialist, "sessions": parts.sessions,
        "durations": record.durations, "note": parts.note, "addenda": parts.addenda,
        "booking": slot_view(parts.booking, orgs, tz) if parts.booking else None,
        "bed": bed_view(parts.bed, orgs) if parts.bed else None,
        # The institutions themselves, so the page names them in its language.
        "referrals": [{**referral_view(r, orgs), "from_org": orgs.get(r.from_org_id), "to_org": orgs.get(r.to_org_id)}
                      for r in parts.referrals],
        "attachments": record.attachments,
        "results": {"results": [result_view(r) for r in record.results.results]},
    }
    return render(request, "record_page.html", context)


@allow(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_fhir_export(request: web.Request) -> web.StreamResponse:
    cid = path_id(request)
    bundle = await request.app[keys.SERVICES].records.fhir(actor_of(request), cid)
    return web.Response(text=json.dumps(bundle, ensure_ascii=False), content_type="application/fhir+json",
                        headers={"Content-Disposition": f'attachment; filename="consultation-{cid}.json"'})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/records/{consultation_id}", handle_record_page)
    app.router.add_get("/api/consultations/{consultation_id}/fhir", handle_fhir_export)
