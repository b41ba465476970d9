"""Attachments over HTTP: the clinic uploads test results and photos; both sides of the consultation see them."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import BodyPartReader, web

from telehealth.domain import ConsultationState, Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.events import encode_event, user_channel
from telehealth.records.consent import attachments_root
from telehealth.records.files import FileStore
from telehealth.server import keys
from telehealth.server.api import audit, get_visible_consultation, path_id
from telehealth.server.auth import allow, current_user

CLOSED = (ConsultationState.closed, ConsultationState.cancelled)
CHUNK = 64 * 1024


def files(request: web.Request) -> FileStore:
    return FileStore(attachments_root(request.app[keys.SETTINGS].data_dir))


def attachment_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "filename": row["filename"], "content_type": row["content_type"], "size": row["size"],
            "created_at": row["created_at"].isoformat(), "kind": row.get("kind", "clinical"),
            "url": f"/api/consultations/{row['consultation_id']}/attachments/{row['id']}"}


def _clean_name(name: str | None) -> str:
    base = re.sub(r"[\x00-\x1f/\\]+", "_", (name or "attachment").rsplit("/", 1)[-1]).strip() or "attachment"
    return base[:200]


@allow(Role.clinic_doctor)
async def handle_upload(request: web.Request) -> web.StreamResponse:
    consultation = await get_visible_consultation(request, path_id(request))
    if consultation.state in CLOSED:
        raise TelehealthError(ErrorCode.invalid_transition, f"the consultation is {consultation.state}")
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

    stored = await files(request).save(chunks(), request.app[keys.SETTINGS].uploads.max_bytes)
    row = await request.app[keys.STORE].insert_attachment(
        consultation.id, stored.sha256, stored.content_type, stored.size, _clean_name(part.filename),
        current_user(request).id, now=dt.datetime.now(dt.UTC))
    await audit(request, "attachment.add", f"consultation:{consultation.id}")
    # Whoever has the consultation open sees it arrive (a snapshot taken during the call, say).
    event = encode_event("attachment_added", {"consultation_id": consultation.id, "attachment_id": row["id"],
                                              "content_type": row["content_type"]})
    people = {consultation.requesting_doctor_id, consultation.accompanying_doctor_id}
    if consultation.assigned_specialist_id is not None:
        people.add(consultation.assigned_specialist_id)
    for uid in people:
        await request.app[keys.BROKER].publish(user_channel(uid), event)
    return web.json_response({"attachment": attachment_view(row)}, status=201)


@allow(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_list(request: web.Request) -> web.StreamResponse:
    consultation = await get_visible_consultation(request, path_id(request))
    rows = await request.app[keys.STORE].list_attachments(consultation.id)
    return web.json_response({"attachments": [attachment_view(r) for r in rows]})


@allow(Role.clinic_doctor, Role.specialist, Role.admin)
async def handle_download(request: web.Request) -> web.StreamResponse:
    consultation = await get_visible_consultation(request, path_id(request))
    row = await request.app[keys.STORE].get_attachment(consultation.id, path_id(request, "attachment_id"))
    if row is None:
        raise TelehealthError(ErrorCode.not_found, "no such attachment")
    await audit(request, "attachment.view", f"consultation:{consultation.id}", {"attachment": row["id"]})
    path = files(request).path_for(row["sha256"])
    return web.FileResponse(path, headers={
        "Content-Type": row["content_type"], "X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store",
        "Content-Disposition": f"inline; filename*=UTF-8''{_quote(row['filename'])}"})


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/consultations/{consultation_id}/attachments", handle_upload)
    r.add_get("/api/consultations/{consultation_id}/attachments", handle_list)
    r.add_get("/api/consultations/{consultation_id}/attachments/{attachment_id}", handle_download)
