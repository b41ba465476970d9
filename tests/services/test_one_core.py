"""The defects the service layer removes, through the real server: a failed sign keeps the booking, the
WebSocket create is audited like the HTTP one, a broker that fails after a committed write does not turn it
into an error, and an outsider hears `forbidden` before anything about their body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from telehealth.server import keys
from tests.conftest import make_settings
from tests.records.test_notes import CREATE, DRAFT, accepted_consultation, api
from tests.records.test_referrals import DOWN, book_first
from tests.support.wsclient import Node, serve


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with serve(make_settings(tmp_path)) as n:
        yield n


def _app(node: Node) -> Any:
    assert not isinstance(node.server, str)
    return node.server.app


async def test_a_failed_sign_leaves_the_booking_as_it_was(node: Node) -> None:
    cid = await accepted_consultation(node)
    slot = await book_first(node, cid)
    status, body = await api(node, "GET", "/api/me", "neuro.chief")
    hospital = body["user"]["organisation_id"]
    # A referral down to a hospital is refused at signing, after the booking would have been given back.
    await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief",
              {**DOWN, "disposition": {**DOWN["disposition"], "to_org_id": hospital}})
    status, body = await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    assert status == 400 and "alliance" in body["error"]["message_en"]
    status, body = await api(node, "GET", f"/api/consultations/{cid}/booking", "neuro.chief")
    assert status == 200 and body["booking"] is not None and body["booking"]["id"] == slot["id"]
    events = await _app(node)[keys.STORE].list_events(cid)
    assert "slot_cancelled" not in [e.kind for e in events]


async def test_the_websocket_create_is_audited_like_the_http_create(node: Node) -> None:
    clinic = await node.connect("village6")
    over_ws = (await clinic.ok("consultation.create", **CREATE))["consultation"]["id"]
    status, body = await api(node, "POST", "/api/consultations", "village6", CREATE)
    assert status == 201
    over_http = body["consultation"]["id"]
    store = _app(node)[keys.STORE]
    created = {e["target"]: e for e in await store.list_audit(limit=50, action="consultation.create")}
    ws_entry, http_entry = created[f"consultation:{over_ws}"], created[f"consultation:{over_http}"]
    assert ws_entry["actor_id"] == http_entry["actor_id"] is not None
    assert ws_entry["remote"] and http_entry["remote"]
    # Exactly alike: the same action, actor, address, details and chain version; only what is the entry's own
    # (its number, time, target and place in the hash chain) differs.
    own = {"id", "at", "target", "prev_hash", "hash", "seq"}
    assert {k: v for k, v in ws_entry.items() if k not in own} == {k: v for k, v in http_entry.items() if k not in own}
    assert ws_entry["remote"] == "127.0.0.1"
    assert [e["action"] for e in await store.list_audit(limit=50) if e["target"] == f"consultation:{over_ws}"] == \
        [e["action"] for e in await store.list_audit(limit=50) if e["target"] == f"consultation:{over_http}"]

async def test_a_broker_failure_after_a_committed_sign_is_not_an_error(node: Node) -> None:
    cid = await accepted_consultation(node)
    await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief", DRAFT)
    services = _app(node)[keys.SERVICES]

    async def broker_down(channel: str, data: bytes) -> None:
        raise ConnectionError("the broker is gone")

    kept = services.events._publish
    services.events._publish = broker_down
    try:
        status, body = await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    finally:
        services.events._publish = kept
    assert status == 200 and body["note"]["signed_at"]
    status, body = await api(node, "GET", f"/api/consultations/{cid}/note", "village6")
    assert body["note"]["signed_at"]


async def test_an_outsider_is_refused_before_their_body_is_judged(node: Node) -> None:
    cid = await accepted_consultation(node)
    for method, path in (("POST", f"/api/consultations/{cid}/note/addenda"),
                         ("PUT", f"/api/consultations/{cid}/booking"),
                         ("PUT", f"/api/consultations/{cid}/note")):
        status, body = await api(node, method, path, "neuro.assoc", {"unknown": 1})
        assert status == 403, (path, body)
        status, body = await api(node, method, path, "neuro.chief", {"unknown": 1})
        assert status == 400 and body["error"]["code"] == "invalid_message", (path, body)
