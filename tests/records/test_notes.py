"""The opinion report: drafts saved and reloaded, signing, immutability in the API and in the database,
addenda, access, and the ICD-10 look-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from telehealth.domain import EndReason
from telehealth.records.consent import synthetic_signature
from telehealth.server import keys
from tests.conftest import make_settings
from tests.support.wsclient import Node, serve

SIGNATURE = synthetic_signature()
CREATE = {
    "patient": {"name": "Hu Jun", "sex": "male", "birth_year": 1950}, "specialty": "neurology",
    "urgency": "urgent", "chief_complaint": "sudden weakness of the left arm",
    "consent": {"by": "relative", "name": "Hu Ping", "relation": "son", "signature": SIGNATURE},
}
DRAFT = {
    "subjective": "Weakness since 08:00.", "objective": "BP 170/100, left arm 3/5.",
    "assessment": "Probable ischaemic stroke.", "diagnoses": [{"code": "I63.9"}, {"code": "I10"}],
    "plan": "CT at the county hospital today.",
    "disposition": {"kind": "follow_up", "details": "Review blood pressure at the clinic", "follow_up_date": "2026-12-08"},
}


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with serve(make_settings(tmp_path)) as n:
        yield n


async def api(node: Node, method: str, path: str, user: str, body: Any = None) -> tuple[int, Any]:
    token = await node.token(user)
    async with node.http.request(method, node.url(path), json=body,
                                 headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.json()


async def accepted_consultation(node: Node, *, hang_up: bool = True) -> int:
    """A consultation taken by the chief neurologist; by default its call has already ended."""
    clinic = await node.connect("village6")
    specialist = await node.connect("neuro.chief")
    cid = (await clinic.ok("consultation.create", **CREATE))["consultation"]["id"]
    sid = (await specialist.ok("consultation.take", consultation_id=cid))["session_id"]
    await specialist.ok("session.join", consultation_id=cid)
    if hang_up:
        await specialist.ok("session.hangup", session_id=sid)
    return int(cid)


async def test_draft_is_saved_and_reloaded(node: Node) -> None:
    cid = await accepted_consultation(node)
    status, body = await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief", DRAFT)
    assert status == 200
    assert [d["code"] for d in body["note"]["diagnoses"]] == ["I63.9", "I10"]
    assert body["note"]["diagnoses"][0]["description"].startswith("Cerebral infarction")
    status, body = await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief",
                             {**DRAFT, "plan": "CT today; aspirin after CT."})
    status, body = await api(node, "GET", f"/api/consultations/{cid}/note", "neuro.chief")
    assert body["note"]["plan"] == "CT today; aspirin after CT." and body["note"]["signed_at"] is None
    # The clinic does not see a draft.
    status, body = await api(node, "GET", f"/api/consultations/{cid}/note", "village6")
    assert status == 200 and body["note"] is None


async def test_bad_drafts_are_refused(node: Node) -> None:
    cid = await accepted_consultation(node)
    status, body = await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief",
                             {**DRAFT, "diagnoses": [{"code": "X99.99"}]})
    assert status == 400 and "ICD-10" in body["error"]["message"]
    status, body = await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief",
                             {**DRAFT, "disposition": {"kind": "teleport"}})
    assert status == 400
    status, body = await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.assoc", DRAFT)
    assert status == 403


async def test_signing_makes_the_note_immutable_everywhere(node: Node) -> None:
    cid = await accepted_consultation(node)
    await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief", DRAFT)
    status, body = await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    assert status == 200 and body["note"]["signed_at"] and body["note"]["store_and_forward"] is False
    status, body = await api(node, "GET", f"/api/consultations/{cid}", "village6")
    assert body["consultation"]["state"] == "signed"
    status, body = await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief",
                             {**DRAFT, "assessment": "changed"})
    assert status == 409 and body["error"]["code"] == "note_signed"
    status, body = await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    assert status == 409
    # The database itself refuses, whatever code path tries.
    store = node.server.app[keys.STORE]  # type: ignore[union-attr]
    with pytest.raises(sa.exc.DBAPIError):
        async with store.engine.begin() as conn:
            await conn.execute(sa.text("UPDATE notes SET assessment = 'tampered' WHERE consultation_id = :c"),
                               {"c": cid})
    status, body = await api(node, "GET", f"/api/consultations/{cid}/note", "village6")
    assert body["note"]["assessment"] == "Probable ischaemic stroke."


async def test_corrections_are_signed_addenda_shown_beside_the_original(node: Node) -> None:
    cid = await accepted_consultation(node)
    await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief", DRAFT)
    status, _ = await api(node, "POST", f"/api/consultations/{cid}/note/addenda", "neuro.chief", {"text": "early"})
    assert status == 409  # nothing signed yet: edit the draft instead
    await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    status, body = await api(node, "POST", f"/api/consultations/{cid}/note/addenda", "neuro.chief",
                             {"text": "CT showed no haemorrhage; aspirin 300 mg started."})
    assert status == 201
    status, body = await api(node, "GET", f"/api/consultations/{cid}/note", "village6")
    assert body["note"]["assessment"] == "Probable ischaemic stroke."
    assert [a["text"] for a in body["note"]["addenda"]] == ["CT showed no haemorrhage; aspirin 300 mg started."]


async def test_another_clinic_cannot_read_the_record(node: Node) -> None:
    cid = await accepted_consultation(node)
    await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief", DRAFT)
    await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    for outsider in ("village1", "cardio.chief"):
        for path in (f"/api/consultations/{cid}", f"/api/consultations/{cid}/note",
                     f"/api/consultations/{cid}/events"):
            status, body = await api(node, "GET", path, outsider)
            assert status == 403 and body["error"]["code"] == "forbidden", (outsider, path)


async def test_icd10_lookup_by_code_or_words(node: Node) -> None:
    status, body = await api(node, "GET", "/api/icd10?q=I63", "neuro.chief")
    assert status == 200 and body["results"][0]["code"].startswith("I63")
    status, body = await api(node, "GET", "/api/icd10?q=cerebral+infarction", "neuro.chief")
    assert any(r["code"] == "I63.9" for r in body["results"])
    status, body = await api(node, "GET", "/api/icd10?q=a", "neuro.chief")
    assert status == 400


async def test_a_request_answered_in_writing_when_no_call_could_be_held(node: Node) -> None:
    cid = await accepted_consultation(node, hang_up=False)
    sessions = node.server.app[keys.SESSIONS]  # type: ignore[union-attr]
    session = await sessions.store.get_open_call_session(cid)
    await sessions.end(session.id, EndReason.network, actor_id=None)  # the call never held
    status, body = await api(node, "GET", f"/api/consultations/{cid}", "village6")
    assert body["consultation"]["state"] == "accepted"
    await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief", DRAFT)
    status, body = await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    assert status == 200 and body["note"]["store_and_forward"] is True
    status, body = await api(node, "GET", f"/api/consultations/{cid}/events", "village6")
    kinds = [e["kind"] for e in body["events"]]
    assert "answered_in_writing" in kinds and kinds[-1] == "note_signed"


async def test_the_clinic_decides_and_the_record_closes(node: Node) -> None:
    cid = await accepted_consultation(node)
    await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief", DRAFT)
    status, body = await api(node, "POST", f"/api/consultations/{cid}/decision", "village6",
                             {"decision": "accept_advice"})
    assert status == 409  # nothing signed to decide on yet
    await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    status, body = await api(node, "POST", f"/api/consultations/{cid}/decision", "village6",
                             {"decision": "adapt_advice"})
    assert status == 400  # adapting needs a word on how
    status, body = await api(node, "POST", f"/api/consultations/{cid}/decision", "neuro.chief",
                             {"decision": "accept_advice"})
    assert status == 403  # the specialist advises; the clinic decides
    status, body = await api(node, "POST", f"/api/consultations/{cid}/decision", "village1",
                             {"decision": "accept_advice"})
    assert status == 403  # another clinic
    status, body = await api(node, "POST", f"/api/consultations/{cid}/decision", "village6",
                             {"decision": "refer_as_suggested", "note": "Ambulance booked for 14:00."})
    assert status == 200 and body["consultation"]["state"] == "closed"
    status, body = await api(node, "GET", f"/api/consultations/{cid}/events", "village6")
    assert body["events"][-1]["kind"] == "acknowledged"
    assert body["events"][-1]["data"]["decision"] == "refer_as_suggested"
    status, body = await api(node, "POST", f"/api/consultations/{cid}/decision", "village6",
                             {"decision": "accept_advice"})
    assert status == 409  # closed: decided once
