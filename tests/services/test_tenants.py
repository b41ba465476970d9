"""Tenants own their data, through the real server: a clinic with no hospital to consult is refused at once,
a named specialist is only a preference among the eligible, only grassroots institutions book reserved
slots, and consent given after the request moves it into the queue."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from telehealth.accounts import hash_password_async
from telehealth.domain import OrgLevel, Role
from telehealth.records.seed import ALLIANCE_NAME, DEMO_PASSWORD
from telehealth.records.store import Store
from telehealth.server import keys
from tests.conftest import csrf_from, make_settings
from tests.records.test_notes import CREATE, api
from tests.support.wsclient import Node, serve

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
async def node(tmp_path: Path, database_url: str, store: Store) -> AsyncIterator[Node]:
    # `store` has migrated the database (SQLite, and PostgreSQL when configured) for the server.
    async with serve(make_settings(tmp_path, database_url=database_url)) as n:
        yield n


def _store(node: Node) -> Store:
    assert not isinstance(node.server, str)
    store: Store = node.server.app[keys.STORE]
    return store


async def _clinic_doctor(node: Node, username: str, level: OrgLevel = OrgLevel.village_clinic,
                         alliance_id: int | None = None) -> int:
    """A clinic doctor at a new institution (outside every alliance unless `alliance_id`); its id."""
    store = _store(node)
    org = await store.insert_organisation(f"{username} institution", level, alliance_id=alliance_id)
    await store.insert_user(username, await hash_password_async(DEMO_PASSWORD), username, Role.clinic_doctor,
                            organisation_id=org.id, now=NOW)
    return org.id


async def page_session(node: Node, username: str) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.get(node.url("/login")) as resp:
        token = csrf_from(await resp.text())
    async with session.post(node.url("/login"), data={"username": username, "password": DEMO_PASSWORD,
                                                      "csrf_token": token}) as resp:
        assert resp.status == 200
    return session


def request_form(csrf: str, **extra: str) -> aiohttp.FormData:
    fields = {"csrf_token": csrf, "patient_name": "Gao Lan", "patient_sex": "female", "patient_birth_year": "1951",
              "specialty": "neurology", "urgency": "routine", "chief_complaint": "dizziness",
              "consent_by": "patient", "consent_name": "Gao Lan", "consent_signature": CREATE["consent"]["signature"],
              **extra}
    data = aiohttp.FormData()
    for key, value in fields.items():
        data.add_field(key, value)
    return data


async def post_form(node: Node, username: str, **extra: str) -> tuple[int, str]:
    session = await page_session(node, username)
    try:
        async with session.get(node.url("/clinic/consultations/new")) as resp:
            csrf = csrf_from(await resp.text(), "/clinic/consultations")
        async with session.post(node.url("/clinic/consultations"), data=request_form(csrf, **extra),
                                allow_redirects=False) as resp:
            return resp.status, await resp.text()
    finally:
        await session.close()


async def test_a_clinic_with_no_hospital_is_refused_at_once_on_every_path(node: Node) -> None:
    await _clinic_doctor(node, "lone.clinic")
    clinic = await node.connect("lone.clinic")
    reply = await clinic.call("consultation.create", **CREATE)
    assert not reply["success"] and reply["error"]["code"] == "no_agreement"
    assert "administrator" in reply["error"]["message_en"]
    status, body = await api(node, "POST", "/api/consultations", "lone.clinic", CREATE)
    assert status == 409 and body["error"]["code"] == "no_agreement"
    assert "agreement" in body["error"]["message_en"]
    # Without consent too: such a request could only ever wait for its time limit.
    status, body = await api(node, "POST", "/api/consultations", "lone.clinic",
                             {k: v for k, v in CREATE.items() if k != "consent"})
    assert status == 409 and body["error"]["code"] == "no_agreement"
    status, html = await post_form(node, "lone.clinic")
    assert status == 409 and 'id="form-refusal"' in html and "远程医疗协议" in html
    assert 'id="new-consultation"' in html  # the form again, with what was typed, not an error page
    assert "Gao Lan" in html
    assert await _store(node).list_consultations() == []
    # A clinic of the alliance is served as before.
    status, body = await api(node, "POST", "/api/consultations", "village6", CREATE)
    assert status == 201


async def test_an_agreement_gives_a_lone_clinic_its_hospital(node: Node) -> None:
    org = await _clinic_doctor(node, "lone.clinic")
    store = _store(node)
    county = await store.get_organisation_by_name("Heping County People's Hospital")
    assert county is not None
    await store.insert_agreement(org, county.id, valid_from=NOW - dt.timedelta(days=1), valid_to=None,
                                 created_by=None, now=NOW)
    status, body = await api(node, "POST", "/api/consultations", "lone.clinic", CREATE)
    assert status == 201, body


def _errors(body: Any) -> tuple[str, str]:
    return body["error"]["code"], body["error"]["message_en"]


async def _user_id(node: Node, username: str) -> int:
    user = await _store(node).get_user_by_username(username)
    assert user is not None
    return user.id


async def test_a_named_specialist_must_be_eligible_like_anyone_else(node: Node) -> None:
    org = await _clinic_doctor(node, "lone.clinic")
    store = _store(node)
    county = await store.get_organisation_by_name("Heping County People's Hospital")
    assert county is not None
    await store.insert_agreement(org, county.id, valid_from=NOW - dt.timedelta(days=1), valid_to=None,
                                 created_by=None, now=NOW)
    city_neurologist = await _user_id(node, "neuro.chief")  # at the city hospital: no agreement with it
    county_neurologist = await _user_id(node, "neuro.assoc")  # associate chief at the county hospital
    cardiologist = await _user_id(node, "cardio.attending")  # county, but cardiology
    clinic = await node.connect("lone.clinic")
    reply = await clinic.call("consultation.create", **CREATE, requested_specialist_id=city_neurologist)
    assert not reply["success"] and reply["error"]["code"] == "not_eligible"
    assert "agreement" in reply["error"]["message_en"]
    status, body = await api(node, "POST", "/api/consultations", "lone.clinic",
                             {**CREATE, "requested_specialist_id": cardiologist})
    assert status == 403 and _errors(body) == ("not_eligible", "the specialist you named does not practise neurology")
    status, body = await api(node, "POST", "/api/consultations", "lone.clinic",
                             {**CREATE, "requested_specialist_id": county_neurologist, "min_title": "chief"})
    assert status == 403 and body["error"]["code"] == "not_eligible" and "title" in body["error"]["message_en"]
    # The fallback does not help: while the name holds, the named one is rung under the title rule.
    status, body = await api(node, "POST", "/api/consultations", "lone.clinic",
                             {**CREATE, "requested_specialist_id": county_neurologist, "min_title": "chief",
                              "title_fallback": True})
    assert status == 403 and body["error"]["code"] == "not_eligible"
    status, html = await post_form(node, "lone.clinic", requested_specialist_id=str(city_neurologist))
    assert status == 403 and 'id="requested_specialist_id-error"' in html and 'id="form-refusal"' in html
    assert await store.list_consultations() == []
    # A name that can be honoured is rung first.
    specialist = await node.connect("neuro.assoc")
    await specialist.ok("presence.set", status="available")
    reply = await clinic.call("consultation.create", **CREATE, requested_specialist_id=county_neurologist,
                              min_title="associate_chief")
    assert reply["success"], reply
    offer = await specialist.event("offer")
    assert offer["consultation_id"] == reply["result"]["consultation"]["id"]


async def test_only_a_grassroots_institution_books_reserved_slots(node: Node) -> None:
    store = _store(node)
    alliance = await store.get_alliance_by_name(ALLIANCE_NAME)
    assert alliance is not None
    # A doctor placed at a hospital by hand (the account rules would not let them be created there).
    await _clinic_doctor(node, "hospital.doctor", OrgLevel.county_hospital, alliance_id=alliance.id)
    clinic = await node.connect("hospital.doctor")
    specialist = await node.connect("neuro.chief")
    cid = (await clinic.ok("consultation.create", **CREATE))["consultation"]["id"]
    sid = (await specialist.ok("consultation.take", consultation_id=cid))["session_id"]
    await specialist.ok("session.join", consultation_id=cid)
    await specialist.ok("session.hangup", session_id=sid)
    # No reserved slot is offered to it, and none can be booked for it.
    status, body = await api(node, "GET", f"/api/consultations/{cid}/slots", "neuro.chief")
    assert status == 403 and body["error"]["code"] == "not_eligible"
    city = await store.get_organisation_by_name("Qingshan First People's Hospital")
    assert city is not None
    slot = next(s.id for s in await store.list_slots(hospital_org_ids=[city.id], department="neurology",
                                                     open_reserved=True))
    status, body = await api(node, "PUT", f"/api/consultations/{cid}/booking", "neuro.chief", {"slot_id": slot})
    assert status == 403 and body["error"]["code"] == "not_eligible"
    assert "village clinics" in body["error"]["message_en"]
    status, body = await api(node, "GET", f"/api/consultations/{cid}/booking", "neuro.chief")
    assert status == 200 and body["booking"] is None
    assert "slot.book" not in [e["action"] for e in await store.list_audit(limit=50)]


WITHOUT_CONSENT = {k: v for k, v in CREATE.items() if k != "consent"}
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + b"\x00" * 200 + b"\xff\xd9"


async def test_consent_recorded_after_the_request_queues_it(node: Node) -> None:
    store = _store(node)
    specialist = await node.connect("neuro.chief")
    await specialist.ok("presence.set", status="available")
    status, body = await api(node, "POST", "/api/consultations", "village6", WITHOUT_CONSENT)
    assert status == 201 and body["consultation"]["state"] == "requested"
    cid = body["consultation"]["id"]
    path = f"/api/consultations/{cid}/consent"
    consent = CREATE["consent"]
    # Another clinic may not; a body without a signature is refused and changes nothing.
    status, body = await api(node, "POST", path, "village1", consent)
    assert status == 403
    status, body = await api(node, "POST", path, "village6", {**consent, "signature": ""})
    assert status == 400 and "signature" in body["error"]["message_en"]
    status, body = await api(node, "POST", path, "village6", {"by": "relative", "name": "Hu Ping",
                                                               "signature": consent["signature"]})
    assert status == 400 and "relation" in body["error"]["message_en"]
    assert (await store.get_consultation(cid)).state.value == "requested"  # type: ignore[union-attr]
    status, body = await api(node, "POST", path, "village6", consent)
    assert status == 200 and body["consultation"]["state"] in ("queued", "offered"), body
    assert body["consultation"]["consent_recorded"] is True
    assert (await specialist.event("offer"))["consultation_id"] == cid
    [document] = await store.list_attachments(cid)
    assert (document["kind"], document["content_type"]) == ("consent", "image/png")
    assert "consent_recorded" in [e.kind for e in await store.list_events(cid)]
    audited = [e for e in await store.list_audit(limit=50, action="consultation.consent")]
    assert [e["target"] for e in audited] == [f"consultation:{cid}"] and audited[0]["actor_id"] is not None
    status, body = await api(node, "POST", path, "village6", consent)
    assert status == 409 and body["error"]["code"] == "invalid_transition"


async def test_the_clinic_page_records_consent_with_a_photo(node: Node) -> None:
    store = _store(node)
    _, body = await api(node, "POST", "/api/consultations", "village6", WITHOUT_CONSENT)
    cid = body["consultation"]["id"]
    session = await page_session(node, "village6")
    action = f"/clinic/consultations/{cid}/consent"
    try:
        async with session.get(node.url(f"/clinic/consultations/{cid}")) as resp:
            page = await resp.text()
        assert 'id="signature-pad"' in page
        csrf = csrf_from(page, action)

        def form(**extra: Any) -> aiohttp.FormData:
            data = aiohttp.FormData()
            for key, value in {"csrf_token": csrf, "consent_by": "patient", "consent_name": "Hu Jun",
                               **extra}.items():
                if isinstance(value, bytes):
                    data.add_field(key, value, filename="consent.jpg", content_type="image/jpeg")
                else:
                    data.add_field(key, value)
            return data

        async with session.post(node.url(action), data=form(), allow_redirects=False) as resp:
            assert resp.status == 400 and 'id="consent_signature-error"' in await resp.text()
        assert (await store.get_consultation(cid)).state.value == "requested"  # type: ignore[union-attr]
        async with session.post(node.url(action), data=form(consent_form=JPEG), allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
        consultation = await store.get_consultation(cid)
        assert consultation is not None and consultation.state.value in ("queued", "offered")
        assert consultation.consent_name == "Hu Jun"
        [document] = await store.list_attachments(cid)
        assert (document["kind"], document["content_type"]) == ("consent", "image/jpeg")
        async with session.get(node.url(f"/clinic/consultations/{cid}")) as resp:
            assert action not in await resp.text()  # queued: nothing left to sign
    finally:
        await session.close()
