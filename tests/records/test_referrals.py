"""Referrals through the API: booking a reserved slot and signing a referral up, the clinic seeing the booked
time and place, refer-down tasks and outcome at the receiving clinic only, the record page and its FHIR R4
export (validated against the fhir.resources models)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from telehealth.server import keys
from tests.conftest import csrf_from, make_settings
from tests.records.test_notes import DRAFT, accepted_consultation, api
from tests.support.wsclient import Node, serve

UP = {**DRAFT, "disposition": {"kind": "refer_up", "details": "Echocardiography; priority admission if worse"}}
DOWN = {**DRAFT, "disposition": {
    "kind": "refer_down", "details": "Continue amlodipine 5 mg; low-salt diet.",
    "tasks": [{"text": "Blood pressure twice a week", "due_date": "2026-12-10"}, {"text": "Call if headache"}]}}


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with serve(make_settings(tmp_path)) as n:
        yield n


async def book_first(node: Node, cid: int) -> dict[str, Any]:
    status, body = await api(node, "GET", f"/api/consultations/{cid}/slots", "neuro.chief")
    assert status == 200 and body["department"] == "neurology" and body["booking"] is None
    assert body["slots"] and all(s["reserved"] and not s["booked"] for s in body["slots"])
    slot = body["slots"][0]
    status, body = await api(node, "PUT", f"/api/consultations/{cid}/booking", "neuro.chief", {"slot_id": slot["id"]})
    assert status == 200 and body["booking"]["id"] == slot["id"]
    return slot


async def test_referral_up_books_a_reserved_slot_the_clinic_then_sees(node: Node) -> None:
    cid = await accepted_consultation(node)
    await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief", UP)
    status, body = await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    assert status == 400 and "slot" in body["error"]["message_en"]  # nothing booked yet: nothing signed
    slot = await book_first(node, cid)
    # Another specialist's consultation cannot take the same slot.
    other = await accepted_consultation(node)
    status, body = await api(node, "PUT", f"/api/consultations/{other}/booking", "neuro.chief", {"slot_id": slot["id"]})
    assert status == 409 and body["error"]["code"] == "slot_taken"
    status, body = await api(node, "PUT", f"/api/consultations/{cid}/booking", "neuro.assoc", {"slot_id": slot["id"]})
    assert status == 403
    status, body = await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    assert status == 200
    status, body = await api(node, "GET", f"/api/consultations/{cid}/booking", "village6")
    assert status == 200 and body["booking"]["id"] == slot["id"]
    assert body["booking"]["hospital"] and body["booking"]["local_time"] and body["booking"]["location"]
    # Signed: the booking can no longer change.
    status, body = await api(node, "DELETE", f"/api/consultations/{cid}/booking", "neuro.chief")
    assert status == 409
    status, body = await api(node, "GET", "/api/referrals?all=1", "neuro.chief")
    (ref,) = [r for r in body["referrals"] if r["consultation_id"] == cid]
    assert ref["direction"] == "up" and ref["priority"] is True and ref["slot_id"] == slot["id"]
    status, body = await api(node, "GET", f"/api/consultations/{cid}/booking", "village1")
    assert status == 403


async def test_a_slot_held_by_a_note_that_no_longer_refers_up_goes_back(node: Node) -> None:
    cid = await accepted_consultation(node)
    slot = await book_first(node, cid)
    await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief", DRAFT)  # follow-up at the clinic
    status, _ = await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    assert status == 200
    status, body = await api(node, "GET", f"/api/consultations/{cid}/booking", "village6")
    assert body["booking"] is None
    other = await accepted_consultation(node)
    status, body = await api(node, "PUT", f"/api/consultations/{other}/booking", "neuro.chief", {"slot_id": slot["id"]})
    assert status == 200


async def test_refer_down_tasks_and_outcome_belong_to_the_receiving_clinic(node: Node) -> None:
    cid = await accepted_consultation(node)
    status, body = await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief",
                             {**DOWN, "disposition": {**DOWN["disposition"], "tasks": [{"text": ""}]}})
    assert status == 400
    await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief", DOWN)
    status, _ = await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    assert status == 200
    status, body = await api(node, "GET", "/api/referrals", "village6")
    (ref,) = body["referrals"]
    assert ref["direction"] == "down" and ref["care_plan"].startswith("Continue amlodipine")
    assert [t["text"] for t in ref["tasks"]] == ["Blood pressure twice a week", "Call if headache"]
    task = ref["tasks"][0]["id"]
    for outsider in ("village1", "neuro.chief"):
        status, body = await api(node, "POST", f"/api/referrals/{ref['id']}/tasks/{task}/done", outsider)
        assert status == 403, outsider
    status, body = await api(node, "GET", "/api/referrals", "village1")
    assert body["referrals"] == []
    status, body = await api(node, "POST", f"/api/referrals/{ref['id']}/tasks/{task}/done", "village6")
    assert status == 200 and body["referral"]["tasks"][0]["done_at"]
    status, body = await api(node, "POST", f"/api/referrals/{ref['id']}/outcome", "village6", {"outcome": " "})
    assert status == 400
    status, body = await api(node, "POST", f"/api/referrals/{ref['id']}/outcome", "village6",
                             {"outcome": "BP controlled at 135/85; continues at the clinic."})
    assert status == 200 and body["referral"]["status"] == "closed"
    # The loop is closed for the referrer.
    status, body = await api(node, "GET", "/api/referrals?all=1", "neuro.chief")
    (mine,) = [r for r in body["referrals"] if r["id"] == ref["id"]]
    assert mine["outcome"].startswith("BP controlled")
    status, body = await api(node, "GET", "/api/referrals", "village6")
    assert body["referrals"] == []


async def test_refer_down_goes_only_to_a_member_unit_of_the_alliance(node: Node) -> None:
    cid = await accepted_consultation(node)
    status, body = await api(node, "GET", "/api/me", "neuro.chief")
    hospital = body["user"]["organisation_id"]
    await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief",
              {**DOWN, "disposition": {**DOWN["disposition"], "to_org_id": hospital}})
    status, body = await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    assert status == 400 and "alliance" in body["error"]["message_en"]
    status, body = await api(node, "GET", f"/api/consultations/{cid}/note", "neuro.chief")
    assert body["note"]["signed_at"] is None


async def test_fhir_export_validates_and_holds_the_whole_record(node: Node) -> None:
    cid = await accepted_consultation(node)
    await book_first(node, cid)
    await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief", UP)
    await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    await api(node, "POST", f"/api/consultations/{cid}/note/addenda", "neuro.chief", {"text": "BP target < 140/90."})
    token = await node.token("village6")
    async with node.http.get(node.url(f"/api/consultations/{cid}/fhir"),
                             headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200 and resp.content_type == "application/fhir+json"
        data = json.loads(await resp.text())
    bundle = Bundle.model_validate(data)
    assert bundle.type == "collection"
    resources = [e["resource"] for e in data["entry"]]
    for resource in resources:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    kinds = [r["resourceType"] for r in resources]
    for kind in ("Patient", "ServiceRequest", "Encounter", "Condition", "Composition", "Appointment", "Consent",
                 "RelatedPerson"):
        assert kind in kinds, kind
    consent = next(r for r in resources if r["resourceType"] == "Consent")
    related = next(e for e in data["entry"] if e["resource"]["resourceType"] == "RelatedPerson")
    # Consent by the patient's son: he is the performer, with the signature he drew.
    assert consent["performer"] == [{"reference": related["fullUrl"]}] and consent["status"] == "active"
    assert related["resource"]["relationship"][0]["text"] == "son"
    assert consent["sourceAttachment"]["contentType"] == "image/png" and consent["sourceAttachment"]["size"] > 0
    urls = {e["fullUrl"] for e in data["entry"]}
    for resource in resources:  # every reference resolves inside the bundle
        for ref in _references(resource):
            assert ref in urls, ref
    encounter = next(r for r in resources if r["resourceType"] == "Encounter")
    assert encounter["class"]["code"] == "VR" and encounter["status"] == "finished"
    codes = {r["code"]["coding"][0]["code"] for r in resources if r["resourceType"] == "Condition"}
    assert codes == {"I63.9", "I10"}
    composition = next(r for r in resources if r["resourceType"] == "Composition")
    assert [s["title"] for s in composition["section"]][:5] == ["Subjective", "Objective", "Assessment", "Plan",
                                                               "Disposition"]
    assert composition["section"][-1]["title"].startswith("Addendum")
    appointment = next(r for r in resources if r["resourceType"] == "Appointment")
    assert appointment["status"] == "booked"
    async with node.http.get(node.url(f"/api/consultations/{cid}/fhir"),
                             headers={"Authorization": f"Bearer {await node.token('village1')}"}) as resp:
        assert resp.status == 403
    audit = await node.server.app[keys.STORE].list_audit(limit=20)  # type: ignore[union-attr]
    assert any(e["action"] == "record.export_fhir" for e in audit)


def _references(value: Any) -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                found.append(item)
            else:
                found.extend(_references(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_references(item))
    return found


async def page_session(node: Node, username: str) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.get(node.url("/login")) as resp:
        token = csrf_from(await resp.text())
    async with session.post(node.url("/login"), data={"username": username, "password": "demo-pass-2026",
                                                      "csrf_token": token}) as resp:
        assert resp.status == 200
    return session


async def test_the_record_page_shows_the_booking_and_is_audited(node: Node) -> None:
    cid = await accepted_consultation(node)
    slot = await book_first(node, cid)
    await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief", UP)
    await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    session = await page_session(node, "village6")
    try:
        async with session.get(node.url(f"/records/{cid}")) as resp:
            assert resp.status == 200
            html = await resp.text()
        # The booked time as the Chinese page writes it: 2026-12-05 08:30 is 2026年12月5日 08:30.
        day, clock = slot["local_time"].split()
        year, month, date = (int(part) for part in day.split("-"))
        assert 'id="record-booking"' in html and f"{year}年{month}月{date}日 {clock}" in html
        assert "Probable ischaemic stroke" in html
    finally:
        await session.close()
    outsider = await page_session(node, "village1")
    try:
        async with outsider.get(node.url(f"/records/{cid}")) as resp:
            assert resp.status == 403
    finally:
        await outsider.close()
    actions = [e["action"] for e in await node.server.app[keys.STORE].list_audit(limit=50)]  # type: ignore[union-attr]
    assert "record.view" in actions and "consultation.view_denied" in actions


async def test_the_clinic_works_through_the_tasks_on_its_home_page(node: Node) -> None:
    cid = await accepted_consultation(node)
    await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief", DOWN)
    await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    status, body = await api(node, "GET", "/api/referrals", "village6")
    (ref,) = body["referrals"]
    task = ref["tasks"][0]["id"]
    session = await page_session(node, "village6")
    try:
        async with session.get(node.url("/clinic")) as resp:
            home = await resp.text()
        assert 'id="referrals"' in home and "Blood pressure twice a week" in home
        done = f"/clinic/referrals/{ref['id']}/tasks/{task}/done"
        csrf = csrf_from(home, done)
        async with session.post(node.url(done), data={"csrf_token": "forged"}) as resp:
            assert resp.status == 403
        async with session.post(node.url(done), data={"csrf_token": csrf}) as resp:
            assert resp.status == 200
        async with session.post(node.url(f"/clinic/referrals/{ref['id']}/outcome"),
                                data={"csrf_token": csrf, "outcome": "Stable; back to routine care."}) as resp:
            assert resp.status == 200 and 'id="referrals"' not in await resp.text()
    finally:
        await session.close()
    status, body = await api(node, "GET", "/api/referrals?all=1", "village6")
    assert status == 200
    (closed,) = body["referrals"]
    assert closed["status"] == "closed" and closed["tasks"][0]["done_at"] and not closed["tasks"][1]["done_at"]
