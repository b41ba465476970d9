"""Attachments over HTTP: the clinic uploads test results and photos; both sides of the consultation see them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import BodyPartReader, web

from telehealth.domain import Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.server import keys
from telehealth.server.api import path_id
from telehealth.server.auth import actor_of, allow

CHUNK = 64 * 1024


def attachment_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "filename": row["filename"], "content_type": row["content_type"], "size": row["size"],
            "created_at": row["created_at"].isoformat(), "kind": row.get("kind", "clinical"),
            "url": f"/api/consultations/{row['consultation_id']}/attachments/{row['id']}"}


@allow(Role.clinic_doctor)
async def handle_upload(request: web.Request) -> web.StreamResponse:
    records, actor, cid = request.app[keys.SERVICES].records, actor_of(request), path_id(request)
    await records.authorize_upload(actor, cid)
    if not request.content_type.startswith("multipart/"):
        raise TelehealthError(ErrorCode.invalid_input, "send the file as multipart/form-data in a field named file")
    reader = await request.multipart()
    part = await reader.next()
    while part is not None and (not isinstance(part, BodyPartReader) or part.name != "file"):
        part = await reader.next()
    if not isinstance(part, BodyPartReader):
        raise TelehealthError(ErrorCode.invalid_input, "no field named file in the upload")

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await part.read_chunk(CHUNK):
            yield chunk

    row = await records.add_attachment(actor, cid, chunks(), part.filename)
    return web.json_response({"attachment": attachment_view(row)}, status=201)


@allow(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_list(request: web.Request) -> web.StreamResponse:
    rows = await request.app[keys.SERVICES].records.attachments(actor_of(request), path_id(request))
    return web.json_response({"attachments": [attachment_view(r) for r in rows]})


@allow(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_download(request: web.Request) -> web.StreamResponse:
    download = await request.app[keys.SERVICES].records.open_attachment(
        actor_of(request), path_id(request), path_id(request, "attachment_id"))
    return web.FileResponse(download.path, headers={
        "Content-Type": download.content_type, "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
        "Content-Disposition": f"inline; filename*=UTF-8''{_quote(download.filename)}"})


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/consultations/{consultation_id}/attachments", handle_upload)
    r.add_get("/api/consultations/{consultation_id}/attachments", handle_list)
    r.add_get("/api/consultations/{consultation_id}/attachments/{attachment_id}", handle_download)
