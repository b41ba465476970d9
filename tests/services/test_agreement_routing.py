"""An ended agreement stops routing at once on every node: two real servers share one Redis and one database
(SQLite, and PostgreSQL when configured). The clinic's node holds the clinic's partner hospitals from its
last request; the agreement is ended on the other node; neither the ring already sounding, nor a new request,
nor a waiting one goes to that hospital any more."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from telehealth.accounts import hash_password_async
from telehealth.domain import ConsultationState, OrgLevel, Role
from telehealth.records.seed import DEMO_PASSWORD
from telehealth.records.store import Store
from telehealth.server import keys
from tests.conftest import make_settings
from tests.records.test_notes import CREATE, api
from tests.support.wsclient import Node, serve

REDIS_URL = "redis://127.0.0.1:6379/0"
HOSPITAL = "Songxi County People's Hospital"
ASK = {**CREATE, "specialty": "cardiology"}


@pytest.fixture
async def nodes(tmp_path: Path, database_url: str, store: Store) -> AsyncIterator[tuple[Node, Node]]:
    prefix = f"agr{uuid.uuid4().hex[:8]}"
    # Rings and presence outlast the test, so nothing but the agreement decides where a request goes.
    shared = {"database_url": database_url, "redis_url": REDIS_URL, "redis_prefix": prefix,
              "matching": {"ring_timeout_s": 120, "presence_ttl_s": 120}}
    try:
        async with serve(make_settings(tmp_path, **shared)) as first:
            async with serve(make_settings(tmp_path, **shared)) as second:
                yield first, second
    finally:
        client = aioredis.from_url(REDIS_URL)
        keys_left = [k async for k in client.scan_iter(match=f"{{{prefix}}}*", count=1000)]
        if keys_left:
            await client.delete(*keys_left)
        await client.aclose()


def _store(node: Node) -> Store:
    assert not isinstance(node.server, str)
    store: Store = node.server.app[keys.STORE]
    return store


async def _state(node: Node, consultation_id: int) -> ConsultationState:
    consultation = await _store(node).get_consultation(consultation_id)
    assert consultation is not None
    return consultation.state


async def test_an_ended_agreement_stops_routing_on_every_node_for_new_and_waiting_requests(
        nodes: tuple[Node, Node]) -> None:
    clinic_node, other_node = nodes
    store = _store(clinic_node)
    now = dt.datetime.now(dt.UTC)
    # A clinic in no alliance consults two hospitals by agreement: Songxi's (whose internist practises
    # cardiology) and one with nobody on duty, which keeps its requests possible once Songxi's ends.
    lone = await store.insert_organisation("Lone village clinic", OrgLevel.village_clinic, alliance_id=None)
    await store.insert_user("lone.doc", await hash_password_async(DEMO_PASSWORD), "Lone doctor", Role.clinic_doctor,
                            organisation_id=lone.id, now=now)
    songxi = await store.get_organisation_by_name(HOSPITAL)
    quiet = await store.insert_organisation("Quiet hospital", OrgLevel.city_hospital, alliance_id=None)
    assert songxi is not None
    agreement = await store.insert_agreement(lone.id, songxi.id, valid_from=now - dt.timedelta(days=1),
                                             valid_to=None, created_by=None, now=now)
    await store.insert_agreement(lone.id, quiet.id, valid_from=now - dt.timedelta(days=1), valid_to=None,
                                 created_by=None, now=now)

    internist = await other_node.connect("songxi.internist")
    await internist.ok("presence.set", status="available")
    doctor = await clinic_node.connect("lone.doc")
    first = (await doctor.ok("consultation.create", **ASK))["consultation"]["id"]
    await internist.event("offer", consultation_id=first, timeout=10)
    assert await _state(clinic_node, first) is ConsultationState.offered

    # Songxi's administrator ends it on the other node while the ring sounds.
    status, body = await api(other_node, "POST", f"/api/admin/agreements/{agreement}/end", "songxi.admin",
                             {"reason": "the internist moves to the county community's own clinics"})
    assert status == 200 and body["agreement"]["state"] == "ended", body
    await internist.event("offer_withdrawn", consultation_id=first, timeout=10)
    assert await _state(clinic_node, first) is ConsultationState.queued

    # A new request on the clinic's node, which held Songxi among the partners: it waits, nobody is rung.
    second = (await doctor.ok("consultation.create", **ASK))["consultation"]["id"]
    assert await _state(clinic_node, second) is ConsultationState.queued
    # The internist free again is rung for neither waiting request.
    await internist.ok("presence.set", status="busy")
    await internist.ok("presence.set", status="available")
    assert await _state(other_node, first) is ConsultationState.queued
    assert await _state(other_node, second) is ConsultationState.queued
    assert not internist.has_event("offer", consultation_id=second)
    # Nor may the internist take one from the queue.
    assert await internist.error("consultation.take", consultation_id=first) == "not_eligible"
    assert (await internist.ok("consultation.take_next"))["consultation"] is None


async def test_an_agreement_coming_into_effect_offers_the_waiting_requests_at_once(nodes: tuple[Node, Node]) -> None:
    clinic_node, other_node = nodes
    store = _store(clinic_node)
    now = dt.datetime.now(dt.UTC)
    lone = await store.insert_organisation("Lone village clinic", OrgLevel.village_clinic, alliance_id=None)
    await store.insert_user("lone.doc", await hash_password_async(DEMO_PASSWORD), "Lone doctor", Role.clinic_doctor,
                            organisation_id=lone.id, now=now)
    quiet = await store.insert_organisation("Quiet hospital", OrgLevel.city_hospital, alliance_id=None)
    await store.insert_agreement(lone.id, quiet.id, valid_from=now - dt.timedelta(days=1), valid_to=None,
                                 created_by=None, now=now)
    songxi = await store.get_organisation_by_name(HOSPITAL)
    assert songxi is not None
    internist = await other_node.connect("songxi.internist")
    await internist.ok("presence.set", status="available")
    doctor = await clinic_node.connect("lone.doc")
    waiting = (await doctor.ok("consultation.create", **ASK))["consultation"]["id"]
    # Songxi invites itself; until the clinic's side approves, the request is not offered there.
    status, body = await api(other_node, "POST", "/api/admin/agreements", "songxi.admin", {
        "clinic_org_id": lone.id, "hospital_org_id": songxi.id, "valid_from": (now - dt.timedelta(days=1)).date()
        .isoformat()})
    assert status == 201 and body["agreement"]["state"] == "hospital_approved", body
    await internist.ok("presence.set", status="busy")
    await internist.ok("presence.set", status="available")
    assert await _state(clinic_node, waiting) is ConsultationState.queued
    # The clinic is in no alliance: the system administrator speaks for it, and approves.
    status, body = await api(clinic_node, "POST", f"/api/admin/agreements/{body['agreement']['id']}/approve",
                             "admin")
    assert status == 200 and body["agreement"]["state"] == "in_effect", body
    assert await _state(other_node, waiting) is ConsultationState.offered
    await internist.event("offer", consultation_id=waiting, timeout=10)
