"""Test results over HTTP: record one in a patient's record, list them as the caller's alliance recognises
them, import a FHIR Bundle of them, and read or set an alliance's mutually recognised items (over the API and
on the administrators' page)."""

from __future__ import annotations

from aiohttp import web

from telehealth.domain import Role
from telehealth.records.result_types import RESULT_TYPES
from telehealth.schema import InputError, parse
from telehealth.server import keys
from telehealth.server.api import path_id, read_body, read_json
from telehealth.server.auth import actor_of, allow, page
from telehealth.server.forms import integer, worded
from telehealth.server.pages import render, see_other, translator
from telehealth.services.results import PatientResults, RecognisedItemsInput, RecordResult
from telehealth.views import recognised_items_view, result_view


def results_view(listed: PatientResults) -> dict[str, object]:
    return {"patient_id": listed.patient_id, "alliance_id": listed.alliance_id, "today": listed.today.isoformat(),
            "results": [result_view(r) for r in listed.results]}


@allow(Role.clinic_doctor, Role.specialist)
async def handle_record_result(request: web.Request) -> web.StreamResponse:
    results, actor, pid = request.app[keys.SERVICES].results, actor_of(request), path_id(request, "patient_id")
    body = await read_body(request, RecordResult, lambda: results.authorize_record(actor, pid))
    created = await results.record(actor, pid, body)
    return web.json_response({"result": result_view(created)}, status=201)


@allow(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_list_results(request: web.Request) -> web.StreamResponse:
    listed = await request.app[keys.SERVICES].results.list_for_patient(actor_of(request),
                                                                      path_id(request, "patient_id"))
    return web.json_response(results_view(listed))


@allow(Role.clinic_doctor, Role.specialist)
async def handle_import_bundle(request: web.Request) -> web.StreamResponse:
    results, actor, pid = request.app[keys.SERVICES].results, actor_of(request), path_id(request, "patient_id")
    await results.authorize_record(actor, pid)  # an outsider hears forbidden before anything of the body
    created = await results.import_bundle(actor, pid, await read_json(request))
    return web.json_response({"imported": len(created), "results": [result_view(r) for r in created]}, status=201)


@allow(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_recognised_items(request: web.Request) -> web.StreamResponse:
    listed = await request.app[keys.SERVICES].results.recognised_items(actor_of(request),
                                                                      path_id(request, "alliance_id"))
    return web.json_response(recognised_items_view(listed))


@allow(Role.admin)
async def handle_set_recognised_items(request: web.Request) -> web.StreamResponse:
    results, actor, aid = request.app[keys.SERVICES].results, actor_of(request), path_id(request, "alliance_id")
    body = await read_body(request, RecognisedItemsInput, lambda: results.authorize_items(actor, aid))
    return web.json_response(recognised_items_view(await results.set_recognised_items(actor, aid, body)))


async def _items_page(request: web.Request, alliance_id: int | None, error: str = "",
                      status: int = 200) -> web.StreamResponse:
    alliances, listed = await request.app[keys.SERVICES].results.managed_list(actor_of(request), alliance_id)
    return render(request, "admin/recognised_items.html", {
        "alliances": alliances, "chosen": listed.alliance_id, "view": recognised_items_view(listed),
        "error": error}, status=status)


@page(Role.admin)
async def handle_items_page(request: web.Request) -> web.StreamResponse:
    """The alliance's recognised items: each test type ticked or not, with its validity in days."""
    chosen = request.query.get("alliance", "")
    return await _items_page(request, int(chosen) if chosen.isdigit() and len(chosen) < 10 else None)


@page(Role.admin)
async def handle_items_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    results, actor = request.app[keys.SERVICES].results, actor_of(request)
    _, listed = await results.managed_list(actor, None)
    wanted = integer(form, "alliance_id")
    alliance_id = wanted if isinstance(wanted, int) else listed.alliance_id
    await results.authorize_items(actor, alliance_id)
    items = []
    for kind in RESULT_TYPES:
        if form.get(f"on_{kind.code}"):
            days = integer(form, f"days_{kind.code}")
            items.append({"type_code": kind.code, "validity_days": days if days is not None else ""})
    try:
        body = parse(RecognisedItemsInput, {"items": items})
    except InputError as exc:
        return await _items_page(request, alliance_id, worded(exc, translator(request)), 400)
    await results.set_recognised_items(actor, alliance_id, body)
    return see_other(f"/admin/recognised-items?alliance={alliance_id}")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/recognised-items", handle_items_page)
    r.add_post("/admin/recognised-items", handle_items_form)
    r.add_post("/api/patients/{patient_id}/results", handle_record_result)
    r.add_get("/api/patients/{patient_id}/results", handle_list_results)
    r.add_post("/api/patients/{patient_id}/results/fhir", handle_import_bundle)
    r.add_get("/api/alliances/{alliance_id}/recognised-items", handle_recognised_items)
    r.add_put("/api/alliances/{alliance_id}/recognised-items", handle_set_recognised_items)
