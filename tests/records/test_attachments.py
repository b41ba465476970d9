"""Attachments: accepted by content (not by name), size-capped, stored once by hash, nothing half written on
refusal, readable only by the consultation's participants."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from telehealth.records.consent import decode_signature
from tests.conftest import make_settings
from tests.records.test_notes import CREATE, SIGNATURE, api
from tests.support.wsclient import Node, serve

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(range(256)) * 8
PDF = b"%PDF-1.4\n" + b"1 0 obj << >> endobj\n" * 50 + b"%%EOF"


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with serve(make_settings(tmp_path, uploads={"max_bytes": 64 * 1024})) as n:
        n.data_dir = tmp_path / "data"  # type: ignore[attr-defined]
        yield n


async def upload(node: Node, user: str, cid: int, data: bytes, name: str) -> tuple[int, dict[str, object]]:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type="application/octet-stream")
    token = await node.token(user)
    async with node.http.post(node.url(f"/api/consultations/{cid}/attachments"), data=form,
                              headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.json()


def stored_files(node: Node) -> list[Path]:
    """Files kept for clinical attachments (the consent signature every request carries left out)."""
    root = node.data_dir / "attachments"  # type: ignore[attr-defined]
    signature = hashlib.sha256(decode_signature(SIGNATURE)).hexdigest()
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != signature) if root.exists() else []


async def new_consultation(node: Node) -> int:
    clinic = await node.connect("village6")
    return int((await clinic.ok("consultation.create", **CREATE))["consultation"]["id"])


async def test_photos_and_pdfs_are_stored_by_content_hash(node: Node) -> None:
    cid = await new_consultation(node)
    status, body = await upload(node, "village6", cid, JPEG, "ecg.jpg")
    assert status == 201 and body["attachment"]["content_type"] == "image/jpeg"  # type: ignore[index]
    status, body = await upload(node, "village6", cid, PDF, "blood-test.pdf")
    assert status == 201 and body["attachment"]["content_type"] == "application/pdf"  # type: ignore[index]
    status, _ = await upload(node, "village6", cid, JPEG, "ecg-again.jpg")  # same content, stored once
    files = stored_files(node)
    assert [f.name for f in files] == sorted([hashlib.sha256(JPEG).hexdigest(), hashlib.sha256(PDF).hexdigest()])
    status, listing = await api(node, "GET", f"/api/consultations/{cid}/attachments", "village6")
    assert [(a["filename"], a["kind"]) for a in listing["attachments"]] == [
        ("consent-signature.png", "consent"), ("ecg.jpg", "clinical"), ("blood-test.pdf", "clinical"),
        ("ecg-again.jpg", "clinical")]
    token = await node.token("village6")
    async with node.http.get(node.url(listing["attachments"][2]["url"]),
                             headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/pdf"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert await resp.read() == PDF


async def test_wrong_type_oversize_and_empty_uploads_leave_nothing(node: Node) -> None:
    cid = await new_consultation(node)
    status, body = await upload(node, "village6", cid, b"<html><script>alert(1)</script></html>", "photo.jpg")
    assert status == 415 and body["error"]["code"] == "unsupported_type"  # type: ignore[index]
    status, body = await upload(node, "village6", cid, JPEG + bytes(70 * 1024), "huge.jpg")
    assert status == 413 and body["error"]["code"] == "too_large"  # type: ignore[index]
    status, body = await upload(node, "village6", cid, b"", "empty.pdf")
    assert status == 400
    assert stored_files(node) == []  # no file, not even a temporary one
    status, listing = await api(node, "GET", f"/api/consultations/{cid}/attachments", "village6")
    assert [a["kind"] for a in listing["attachments"]] == ["consent"]


async def test_only_the_consultations_participants_see_attachments(node: Node) -> None:
    cid = await new_consultation(node)
    status, body = await upload(node, "village6", cid, JPEG, "rash.jpg")
    url = body["attachment"]["url"]  # type: ignore[index]
    for outsider in ("village1", "neuro.chief"):  # another clinic; a specialist who has not taken it
        status, _ = await api(node, "GET", f"/api/consultations/{cid}/attachments", outsider)
        assert status == 403
        token = await node.token(outsider)
        async with node.http.get(node.url(str(url)), headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 403
    status, _ = await upload(node, "village1", cid, JPEG, "intruder.jpg")
    assert status == 403
    specialist = await node.connect("neuro.chief")
    await specialist.ok("consultation.take", consultation_id=cid)
    status, listing = await api(node, "GET", f"/api/consultations/{cid}/attachments", "neuro.chief")
    assert status == 200 and [a["filename"] for a in listing["attachments"]] == ["consent-signature.png", "rash.jpg"]
