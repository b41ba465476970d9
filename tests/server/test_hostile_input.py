"""Input that must be refused at parsing, not crash later: NaN and Infinity, NUL characters and unpaired
surrogates in JSON bodies, WebSocket messages, query strings and forms, on SQLite and on PostgreSQL; and
nothing is stored or relayed for a refused message."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from telehealth.records import schema as t
from telehealth.records.consent import synthetic_signature
from telehealth.records.db import create_engine, migrate
from telehealth.records.seed import DEMO_PASSWORD
from telehealth.server import keys
from telehealth.server.app import create_app
from tests.conftest import csrf_from, logged_in_csrf, login, make_settings
from tests.support.wsclient import Node

PATIENT = {"name": "Lin Meiyu", "sex": "female", "birth_year": 1961, "local_id": ""}
CREATE = {"patient": PATIENT, "specialty": "cardiology", "urgency": "routine", "chief_complaint": "palpitations",
          "consent": {"by": "patient", "name": "Lin Meiyu", "signature": synthetic_signature()}}
NUMBERS = [float("nan"), float("inf"), float("-inf")]
PNG = base64.b64decode(synthetic_signature().split(",", 1)[1])


@pytest.fixture
async def app_client(aiohttp_client: Any, tmp_path: Path, database_url: str) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    if database_url.startswith("postgresql"):
        engine = create_engine(database_url)
        await migrate(engine)
        await engine.dispose()
    yield await aiohttp_client(create_app(make_settings(tmp_path, database_url=database_url)))


async def post_json(client: TestClient, path: str, text: str | bytes, token: str = "") -> tuple[int, str]:  # type: ignore[type-arg]
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    resp = await client.post(path, data=text.encode() if isinstance(text, str) else text, headers=headers)
    body = await resp.json()
    return resp.status, body["error"]["code"] if "error" in body else "ok"


async def consultations(client: TestClient) -> int:  # type: ignore[type-arg]
    async with client.app[keys.STORE].engine.connect() as conn:  # type: ignore[index]
        return int((await conn.execute(sa.select(sa.func.count()).select_from(t.consultations))).scalar() or 0)


async def test_the_json_api_refuses_them_at_parsing(app_client: TestClient) -> None:  # type: ignore[type-arg]
    login_body = {"username": "village1", "password": DEMO_PASSWORD}
    refused = {}
    for number in NUMBERS:
        refused[repr(number)] = await post_json(app_client, "/api/tokens", json.dumps({**login_body, "label": number}))
    refused["1e400"] = await post_json(app_client, "/api/tokens", json.dumps(login_body)[:-1] + ', "label": 1e400}')
    refused["NUL"] = await post_json(app_client, "/api/tokens", json.dumps({**login_body, "username": "village1\0"}))
    refused["surrogate"] = await post_json(app_client, "/api/tokens", json.dumps({**login_body, "label": "\ud800"}))
    refused["surrogate key"] = await post_json(app_client, "/api/tokens", json.dumps({**login_body, "\udfff": 1}))
    refused["deep"] = await post_json(app_client, "/api/tokens", "[" * 100_000 + "]" * 100_000)
    assert refused == {k: (400, "invalid_message") for k in refused}
    # An unpaired surrogate encoded as UTF-8 bytes is not UTF-8 at all.
    assert await post_json(app_client, "/api/tokens", b'{"username": "\xed\xa0\x80", "password": "x"}') == \
        (400, "invalid_json")
    # A surrogate pair is one character, and welcome.
    status, token = 0, ""
    resp = await app_client.post("/api/tokens", json={**login_body, "label": "phone \U0001F4F1"})
    status, token = resp.status, (await resp.json())["token"]
    assert status == 201

    before = await consultations(app_client)
    for bad in ({"chief_complaint": "pain\0"}, {"patient": {**PATIENT, "name": "Lin\0Meiyu"}},
                {"history": "\udc00"}, {"patient": {**PATIENT, "birth_year": float("nan")}}):
        assert await post_json(app_client, "/api/consultations", json.dumps({**CREATE, **bad}), token) == \
            (400, "invalid_message"), bad
    assert await consultations(app_client) == before
    assert await post_json(app_client, "/api/consultations", json.dumps(CREATE), token) == (201, "ok")


async def test_the_websocket_refuses_them_and_relays_nothing(app_client: TestClient) -> None:  # type: ignore[type-arg]
    node = Node(app_client.server)
    try:
        specialist = await node.connect("cardio.chief")
        await specialist.ok("presence.set", status="available")
        clinic = await node.connect("village1")
        before = await consultations(app_client)
        for bad in ({"chief_complaint": "pain\0"}, {"patient": {**PATIENT, "name": "\ud83d"}}):
            clinic.next_id += 1
            await clinic.raw(json.dumps({"id": clinic.next_id, "type": "consultation.create", **CREATE, **bad}))
            reply = await clinic.result(clinic.next_id)
            assert reply["error"]["code"] == "invalid_message", reply
        assert await consultations(app_client) == before

        created = await clinic.ok("consultation.create", **CREATE)
        cid = created["consultation"]["id"]
        await specialist.event("offer", consultation_id=cid)
        sid = (await specialist.ok("offer.accept", consultation_id=cid))["session_id"]
        await specialist.ok("session.join", consultation_id=cid)
        await clinic.ok("session.join", consultation_id=cid)
        seen = len(specialist.events)
        for number in NUMBERS:
            clinic.next_id += 1
            await clinic.raw(json.dumps({"id": clinic.next_id, "type": "session.signal", "session_id": sid,
                                         "kind": "candidate", "payload": {"candidate": "c", "sdpMLineIndex": number}}))
            reply = await clinic.result(clinic.next_id)
            assert reply["error"]["code"] == "invalid_message", reply
        clinic.next_id += 1
        await clinic.raw(json.dumps({"id": clinic.next_id, "type": "session.chat", "session_id": sid, "text": "a\0b"}))
        assert (await clinic.result(clinic.next_id))["error"]["code"] == "invalid_message"
        # The same signal with a number goes through: nothing of the refused ones came before it.
        await clinic.ok("session.signal", session_id=sid, kind="candidate",
                        payload={"candidate": "c", "sdpMLineIndex": 0})
        signal = await specialist.event("signal", session_id=sid)
        assert signal["payload"]["sdpMLineIndex"] == 0
        assert not any(name == "chat" for name, _ in specialist.events[seen:])
    finally:
        await node.close()


async def test_query_strings_and_forms_refuse_nul(app_client: TestClient) -> None:  # type: ignore[type-arg]
    form_page = await app_client.get("/login")
    token = csrf_from(await form_page.text())
    resp = await app_client.post("/login", data={"username": "village1\0", "password": DEMO_PASSWORD,
                                                 "csrf_token": token}, allow_redirects=False)
    assert resp.status == 400
    resp = await app_client.post("/language", data={"language": "en\0", "csrf_token": token},
                                 headers={"Accept": "application/json"}, allow_redirects=False)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_message"
    await login(app_client, "admin")
    for path in ("/admin/audit?target=%00", "/admin/audit?actor=a%00", "/admin/consultations?x%00=1"):
        resp = await app_client.get(path, headers={"Accept": "application/json"})
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_message", path
    assert (await app_client.get("/admin/audit?target=user:1")).status == 200


async def test_a_form_with_a_file_refuses_them_however_it_is_authenticated(app_client: TestClient) -> None:  # type: ignore[type-arg]
    """The consultation form with a photo of the signed consent, sent with an API token, or from the page with
    the CSRF token in its header instead of a field: a NUL in a field or in the file's name is refused too."""
    token = (await (await app_client.post("/api/tokens", json={"username": "village1", "password": DEMO_PASSWORD})
                    ).json())["token"]
    fields = {"patient_name": "Lin Meiyu", "patient_sex": "female", "patient_birth_year": "1961",
              "specialty": "cardiology", "urgency": "routine", "chief_complaint": "palpitations",
              "consent_by": "patient", "consent_name": "Lin Meiyu"}

    def form(changes: dict[str, str], filename: str = "consent.png") -> tuple[bytes, str]:
        """The body as a browser sends it (the client library refuses to write a NUL in a file's name)."""
        boundary = "----form-boundary-5f3a"
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
                 for key, value in {**fields, **changes}.items()]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="consent_form"; filename="{filename}"'
                     '\r\nContent-Type: image/png\r\n\r\n'.encode() + PNG + b"\r\n")
        return b"".join([*parts, f"--{boundary}--\r\n".encode()]), f"multipart/form-data; boundary={boundary}"

    async def post(changes: dict[str, str], headers: dict[str, str], filename: str = "consent.png") -> Any:
        body, content_type = form(changes, filename)
        return await app_client.post("/clinic/consultations", data=body, allow_redirects=False,
                                     headers={**headers, "Content-Type": content_type})

    before = await consultations(app_client)
    by_token = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    for changes in ({"chief_complaint": "pain\0"}, {"patient_name": "Lin\0"}):
        resp = await post(changes, by_token)
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_message", changes
    # A NUL in a part's header (the file's name) is already a malformed body to the multipart parser.
    assert (await post({}, by_token, "consent\0.png")).status == 400
    resp = await post({}, by_token)
    assert resp.status == 303 and await consultations(app_client) == before + 1
    await login(app_client, "village1")
    resp = await post({"history": "a\0b"}, {"X-CSRF-Token": await logged_in_csrf(app_client),
                                              "Accept": "application/json"})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_message"
    assert await consultations(app_client) == before + 1
