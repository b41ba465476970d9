"""No request is queued before written consent: who consented, when, and the signature drawn on the screen
or a photo of the signed form, kept as the consultation's consent attachment and shown on the record."""

from __future__ import annotations

import base64

import aiohttp
from aiohttp.test_utils import TestClient

from telehealth.records.consent import decode_signature, synthetic_signature
from telehealth.server import keys
from tests.conftest import csrf_from, login

PATIENT = {"name": "Gao Lan", "sex": "female", "birth_year": 1951}
BODY = {"patient": PATIENT, "specialty": "cardiology", "urgency": "urgent", "chief_complaint": "dyspnoea"}
# A small JPEG header is enough for the content check of a "photo of the signed form".
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + b"\x00" * 200 + b"\xff\xd9"


async def token_headers(client: TestClient, username: str) -> dict[str, str]:  # type: ignore[type-arg]
    from telehealth.records.seed import DEMO_PASSWORD

    resp = await client.post("/api/tokens", json={"username": username, "password": DEMO_PASSWORD})
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}


def test_signatures_are_checked() -> None:
    assert decode_signature(synthetic_signature()).startswith(b"\x89PNG")
    for bad in ("", "data:image/jpeg;base64,AAAA", "data:image/png;base64,!!!!",
                "data:image/png;base64," + base64.b64encode(b"GIF89a" + b"\x00" * 80).decode(),
                "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 60_000).decode()):
        try:
            decode_signature(bad)
        except Exception as exc:
            assert getattr(exc, "code", None) in ("invalid_input", "too_large"), bad[:40]
        else:
            raise AssertionError(f"accepted {bad[:40]!r}")


async def test_the_api_refuses_a_request_without_a_signature(client: TestClient) -> None:  # type: ignore[type-arg]
    headers = await token_headers(client, "village1")
    store = client.app[keys.STORE]  # type: ignore[index]
    consent = {"by": "relative", "name": "Gao Ming", "relation": "daughter"}
    resp = await client.post("/api/consultations", json={**BODY, "consent": consent}, headers=headers)
    assert resp.status == 400 and "signature" in (await resp.json())["error"]["message"]
    resp = await client.post("/api/consultations", json={
        **BODY, "consent": {**consent, "signature": "data:image/png;base64,R0lGODlh"}}, headers=headers)
    assert resp.status == 400
    assert await store.list_consultations() == []
    resp = await client.post("/api/consultations", json={
        **BODY, "consent": {**consent, "signature": synthetic_signature()}}, headers=headers)
    assert resp.status == 201
    created = (await resp.json())["consultation"]
    assert created["state"] in ("queued", "offered") and created["consent_recorded"] is True
    [document] = await store.list_attachments(created["id"])
    assert (document["kind"], document["content_type"], document["filename"]) == \
        ("consent", "image/png", "consent-signature.png")
    # The record shows who consented, when, and the signature itself.
    page = await (await client.get(f"/records/{created['id']}", headers=headers)).text()
    assert "Gao Ming" in page and "daughter" in page and f"/attachments/{document['id']}" in page
    image = await client.get(f"/api/consultations/{created['id']}/attachments/{document['id']}", headers=headers)
    assert image.status == 200 and (await image.read()).startswith(b"\x89PNG")


async def test_the_form_needs_a_signature_or_the_signed_form(client: TestClient) -> None:  # type: ignore[type-arg]
    await login(client, "village2")
    store = client.app[keys.STORE]  # type: ignore[index]
    page = await (await client.get("/clinic/consultations/new")).text()
    assert 'id="signature-pad"' in page and 'enctype="multipart/form-data"' in page
    csrf = csrf_from(page, "/clinic/consultations")
    fields = {"csrf_token": csrf, "patient_name": "Gao Lan", "patient_sex": "female", "patient_birth_year": "1951",
              "specialty": "neurology", "urgency": "routine", "chief_complaint": "dizziness",
              "consent_by": "patient", "consent_name": "Gao Lan"}

    def form(**extra: object) -> aiohttp.FormData:
        data = aiohttp.FormData()
        for key, value in {**fields, **extra}.items():
            if isinstance(value, tuple):
                data.add_field(key, value[1], filename=value[0], content_type="application/octet-stream")
            else:
                data.add_field(key, str(value))
        return data

    resp = await client.post("/clinic/consultations", data=form(), allow_redirects=False)
    assert resp.status == 400 and 'id="consent_signature-error"' in await resp.text()
    resp = await client.post("/clinic/consultations", data=form(consent_form=("form.txt", b"I agree")),
                             allow_redirects=False)
    assert resp.status == 400 and 'id="consent_signature-error"' in await resp.text()
    assert await store.list_consultations() == []
    # A photo of the signed paper form.
    resp = await client.post("/clinic/consultations", data=form(consent_form=("consent.jpg", JPEG)),
                             allow_redirects=False)
    assert resp.status == 303
    cid = int(resp.headers["Location"].rsplit("/", 1)[1])
    [document] = await store.list_attachments(cid)
    assert (document["kind"], document["content_type"], document["filename"]) == ("consent", "image/jpeg",
                                                                                 "consent.jpg")
    # A signature drawn on the screen.
    resp = await client.post("/clinic/consultations", data=form(consent_signature=synthetic_signature()),
                             allow_redirects=False)
    assert resp.status == 303
    cid = int(resp.headers["Location"].rsplit("/", 1)[1])
    assert [d["kind"] for d in await store.list_attachments(cid)] == ["consent"]
    assert (await store.get_consultation(cid)).consent_at is not None
